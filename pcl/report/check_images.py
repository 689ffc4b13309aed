"""``pcl check`` on result files: each image of a set appears once.

Why: a set is complete when it holds every image of the benchmark, not when it holds as many
rows.  A file whose last row was overwritten by a copy of the first has the full row count, yet
one image is missing and another is counted twice in the mean.  ``summarise`` counts distinct
images, so such a set already shows as partial; this check names the file and the duplicated
image, which is what the user has to fix.

A row is a duplicate of another when it has the same tier, experiment, backbone, method,
dataset, protocol, scale, seed and image: the rows ``summarise`` would average together.  Rows of
one image with different seeds (several training runs) are not duplicates.  Duplicates spread
over two files (the same results passed twice under different paths) are caught too.
"""

from __future__ import annotations

import pandas as pd

from pcl.report.check_report import MISS, CheckItem, CheckReport
from pcl.report.results import SUMMARY_KEYS
from pcl.report.tables import result_files

IMAGE_KEY: tuple[str, ...] = (*SUMMARY_KEYS, "seed", "image")
"""Columns that identify one scored image of one run."""


def duplicated_images(results: pd.DataFrame) -> pd.DataFrame:
    """The rows whose ``IMAGE_KEY`` occurs more than once (every copy), with a ``_file`` column."""
    if results.empty or "image" not in results.columns:
        return results.iloc[:0].assign(_file=pd.Series([], dtype=object))
    key = results[[c for c in IMAGE_KEY if c in results.columns]].astype("string").fillna("")
    twice = key.duplicated(keep=False)
    return results[twice].assign(_file=result_files(results)[twice])


def check_distinct_images(results: pd.DataFrame, report: CheckReport) -> None:
    """A ``images`` miss for each result file that holds an image twice (or shares it with another
    file of the same run), naming the file(s) and the image(s); a note counts the files that pass."""
    if results.empty:
        return
    dups = duplicated_images(results)
    files = set(result_files(results))
    bad_files: set[str] = set()
    for _, rows in dups.groupby([c for c in IMAGE_KEY[:-1] if c in dups.columns], dropna=False, sort=True):
        first = rows.iloc[0]
        names = list(dict.fromkeys(rows["_file"]))
        bad_files.update(names)
        counts = rows.groupby("image", sort=True).size()
        listed = ", ".join(f"{image} x{n}" for image, n in counts.items())
        where = names[0] if len(names) == 1 else " and ".join(names)
        todo = ("delete the file and run snakemake again" if len(names) == 1
                else "pass each result file once (or delete the stray copy)")
        detail = f"{len(counts)} image(s) more than once in {where}: {listed}; {todo}"
        report.items.append(CheckItem(str(first["tier"]), "images", where, "", str(first["dataset"]), "image",
                                      None, "", "each image once", MISS, detail))
    if files - bad_files:
        report.notes.append(f"{len(files - bad_files)} result file(s) with each image once")
