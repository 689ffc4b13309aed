"""Per-image result rows: schema, CSV I/O and per-set summaries.

Why one row per image: every table, gain and check aggregates from these rows, so a printed mean
can always be recomputed and a partial set is visible as a smaller image count.  Files live at
``results/<tier>/<experiment>/<protocol>/<dataset>.csv`` (see ``result_path``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from pcl.atomic import atomic_write_text
from pcl.errors import PCLError
from pcl.metrics.psnr_ssim import PROTOCOLS
from pcl.names import DATASET_SIZES, DATASETS, OWN_REPORT_TIERS, TIERS

__all__ = [
    "DATASETS",
    "DATASET_SIZES",
    "OPTIONAL_COLUMNS",
    "PROTOCOLS",
    "RESULT_COLUMNS",
    "SOURCE_COLUMN",
    "SUMMARY_KEYS",
    "TIERS",
    "UNCERTAINTY_COLUMNS",
    "display_path",
    "empty_results",
    "read_results",
    "read_sidecar",
    "result_path",
    "sidecar_field",
    "summarise",
    "write_rows",
]

RESULT_COLUMNS: tuple[str, ...] = (
    "tier",
    "experiment",
    "backbone",
    "method",
    "dataset",
    "image",
    "scale",
    "protocol",
    "psnr",
    "ssim",
    "height",
    "width",
    "channels",
    "seed",
    "run_id",
)
"""Required columns, in file order."""

OPTIONAL_COLUMNS: tuple[str, ...] = ("lpips", "niqe", "niqe_y")
"""Columns written after the required ones when a metric was computed (``niqe``: the official
MATLAB convention on rgb2gray input; ``niqe_y``: on MATLAB's Y of YCbCr)."""

UNCERTAINTY_COLUMNS: tuple[str, ...] = ("niqe_spread", "niqe_y_spread")
"""Columns written after ``OPTIONAL_COLUMNS`` when computed: how far ``niqe``/``niqe_y`` of the same
row can move under the floating-point filters MATLAB could be running (``pcl.metrics.niqe_spread``).
They qualify a score and are not metrics of their own: gains and checks never compare them."""

_STRING_COLUMNS = ("tier", "experiment", "backbone", "method", "dataset", "image", "protocol", "run_id")
_INT_COLUMNS = ("scale", "height", "width", "channels", "seed")
_FLOAT_COLUMNS = ("psnr", "ssim", *OPTIONAL_COLUMNS, *UNCERTAINTY_COLUMNS)
_EXTRA_COLUMNS = (*OPTIONAL_COLUMNS, *UNCERTAINTY_COLUMNS)  # optional, in file order

SUMMARY_KEYS: tuple[str, ...] = ("tier", "experiment", "backbone", "method", "dataset", "protocol", "scale")

SOURCE_COLUMN = "source_file"
"""Column ``read_results(..., source=True)`` adds: the file each row was read from, as given, so
that a table cell can name the files it aggregates (``display_path``) and ``pcl check`` can judge
every file and its sidecar."""

# --- paths and writing ------------------------------------------------------------------------


def result_path(results_dir: Path, tier: str, experiment: str, protocol: str, dataset: str) -> Path:
    """Canonical location of one set's rows: ``<results_dir>/<tier>/<experiment>/<protocol>/<dataset>.csv``."""
    return Path(results_dir) / tier / experiment / protocol / f"{dataset}.csv"


def display_path(path: Path) -> str:
    """How reports name a result file: relative to the working directory when under it (the
    workflow runs from the repository root, giving ``results/<tier>/...``), else from the results
    folder on when the file sits at its canonical place (``<results_dir>/<tier>/<experiment>/<protocol>/<dataset>.csv``),
    else the path as given.  Forward slashes on every platform, so reports do not depend on the OS."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        pass
    parts = path.parts
    if len(parts) >= 5 and parts[-4] in TIERS and parts[-1].endswith(".csv"):
        return "/".join(parts[-5:])
    return path.as_posix()


def _format_cell(value: object) -> str:
    """CSV text of one value: full float precision (``repr``), NaN as 'nan', None/NA as empty."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def write_rows(path: Path, rows: list[dict]) -> Path:
    """Write result rows to ``path`` atomically (temp file + rename) and return the path.

    Why atomic: a crash mid-write must not leave a half file that later reads as a partial set.
    Every row must hold all ``RESULT_COLUMNS``; ``lpips``/``niqe``/``niqe_y`` and then
    ``niqe_spread``/``niqe_y_spread`` are optional; other keys are refused so that a typo cannot
    silently drop a value.  ``None`` is written as an empty cell.
    """
    path = Path(path)
    optional_present = [c for c in _EXTRA_COLUMNS if any(c in row for row in rows)]
    columns = [*RESULT_COLUMNS, *optional_present]
    allowed = set(columns)
    for i, row in enumerate(rows):
        missing = [c for c in RESULT_COLUMNS if c not in row]
        if missing:
            raise PCLError(f"result row {i} for {path} lacks column(s) {', '.join(missing)}; every row needs {', '.join(RESULT_COLUMNS)}")
        extra = sorted(set(row) - allowed)
        if extra:
            raise PCLError(f"result row {i} for {path} has unknown column(s) {', '.join(extra)}; allowed: {', '.join(columns)}")
    lines = [",".join(columns)]
    for row in rows:
        cells = []
        for c in columns:
            text = _format_cell(row.get(c))
            if any(ch in text for ch in ',"\n'):
                text = '"' + text.replace('"', '""') + '"'
            cells.append(text)
        lines.append(",".join(cells))
    return atomic_write_text(path, "\n".join(lines) + "\n")


# --- reading ----------------------------------------------------------------------------------

REDO = "re-run the rule that wrote it: delete it and run snakemake again (or the `pcl evaluate` command that made it)"
"""What to do about a damaged result file or sidecar: every one is an output of the pipeline."""


def _first_line(exc: BaseException) -> str:
    """An exception's message as one line (pandas parser errors span several)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _read_csv(path: Path) -> pd.DataFrame:
    """One result CSV as text cells; every way it can be unreadable becomes one PCLError line."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise PCLError(f"result file {path} not found; run the evaluation that writes it") from None
    except IsADirectoryError:
        raise PCLError(f"result file {path} is a folder; pass result CSV files or the folder that holds them") from None
    except pd.errors.EmptyDataError:
        raise PCLError(f"result file {path} is empty (no header); {REDO}") from None
    except UnicodeDecodeError as exc:
        raise PCLError(f"result file {path} is not UTF-8 CSV text (byte {exc.start}: {exc.reason}); {REDO}") from None
    except ValueError as exc:  # pandas' ParserError and other malformed-CSV errors
        raise PCLError(f"result file {path} is not valid CSV ({_first_line(exc)}); {REDO}") from None
    except OSError as exc:
        raise PCLError(f"result file {path} cannot be read ({exc.strerror or exc}); check its permissions or {REDO}") from None


def read_sidecar(csv_path: Path) -> dict | None:
    """The JSON sidecar beside a result CSV (``<stem>.json``) as a dict, or None when there is none.

    Why one reader: several reports look up settings in the sidecars (the checkpoint sha256, the
    folder of saved SR images); a damaged sidecar must stop them with one line naming it instead
    of a traceback, or of being silently skipped.
    """
    sidecar = Path(csv_path).with_suffix(".json")
    try:
        text = sidecar.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PCLError(f"sidecar {sidecar} cannot be read as text ({_first_line(exc)}); {REDO}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PCLError(f"sidecar {sidecar} is not valid JSON ({exc.msg}, line {exc.lineno}); {REDO}") from None
    if not isinstance(data, dict):
        raise PCLError(f"sidecar {sidecar} holds a JSON {type(data).__name__}, not an object of settings; {REDO}")
    return data


def sidecar_field(csv_path: Path, *keys: str) -> object | None:
    """A nested value of a result file's sidecar (``"checkpoint", "sha256"``), None where absent.

    A key path that runs into a non-object (``"checkpoint": "x"``) is malformed and raises
    PCLError naming the sidecar, the key and what to do.
    """
    value: object = read_sidecar(csv_path)
    for depth, key in enumerate(keys):
        if value is None:
            return None
        if not isinstance(value, dict):
            where = ".".join(keys[:depth])
            raise PCLError(f"sidecar {Path(csv_path).with_suffix('.json')}: {where!r} holds {type(value).__name__}, "
                           f"not an object with {key!r}; {REDO}")
        value = value.get(key)
    return value


def empty_results() -> pd.DataFrame:
    """A results frame with no rows and the schema's dtypes."""
    return _coerce(pd.DataFrame({c: pd.Series([], dtype=str) for c in RESULT_COLUMNS}), Path("<empty>"))


def _coerce(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if col in _STRING_COLUMNS:
            out[col] = out[col].astype(str)
            continue
        if col not in _INT_COLUMNS and col not in _FLOAT_COLUMNS:
            continue
        text = out[col].astype(str).str.strip()
        numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = (text != "") & numbers.isna() & ~text.str.lower().isin(["nan", "inf", "-inf"])
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise PCLError(f"{path}: line {i + 2}, column {col!r} holds {text.iloc[i]!r}, not a number; fix or regenerate the file")
        if col in _INT_COLUMNS:
            if (numbers.dropna() % 1 != 0).any():
                raise PCLError(f"{path}: column {col!r} must hold whole numbers; fix or regenerate the file")
            out[col] = numbers.astype("Int64")
        else:
            out[col] = numbers.astype(float)
    return out


def _check_values(frame: pd.DataFrame, path: Path) -> None:
    for col, allowed in (("tier", TIERS), ("protocol", PROTOCOLS), ("dataset", DATASETS)):
        bad = ~frame[col].isin(allowed)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise PCLError(
                f"{path}: line {i + 2}, {col} {frame[col].iloc[i]!r} is not one of {', '.join(allowed)}; fix or regenerate the file"
            )


def read_results(paths: Iterable[Path], *, source: bool = False) -> pd.DataFrame:
    """Read and validate result CSVs into one frame (required columns first, then lpips/niqe, then
    the NIQE spreads).

    Empty PSNR/SSIM cells become NaN rather than errors: a failed image must stay visible so
    that ``pcl check`` can flag it.  Missing columns, non-numeric numbers and unknown tier,
    protocol or dataset names raise ``PCLError`` naming the file.  ``source=True`` adds the
    column ``SOURCE_COLUMN`` (last) naming each row's file.
    """
    frames = []
    for path in paths:
        path = Path(path)
        raw = _read_csv(path)
        missing = [c for c in RESULT_COLUMNS if c not in raw.columns]
        if missing:
            raise PCLError(f"result file {path} lacks column(s) {', '.join(missing)} (not a result file of this harness?); {REDO}")
        keep = [*RESULT_COLUMNS, *[c for c in _EXTRA_COLUMNS if c in raw.columns]]
        frame = _coerce(raw[keep], path)
        _check_values(frame, path)
        if source:
            frame[SOURCE_COLUMN] = str(path)
        frames.append(frame)
    if not frames:
        out = empty_results()
        if source:
            out[SOURCE_COLUMN] = pd.Series([], dtype=str)
        return out
    frames = [f for f in frames if len(f)] or frames[:1]
    out = pd.concat(frames, ignore_index=True)
    ordered = [*RESULT_COLUMNS, *[c for c in _EXTRA_COLUMNS if c in out.columns]]
    return out[ordered + ([SOURCE_COLUMN] if source else [])]


# --- summaries --------------------------------------------------------------------------------


def paper_side(results: pd.DataFrame) -> pd.DataFrame:
    """The rows that Tables II-VII, the gains and the paper's verdict are made of: all but those of
    the study's tiers (``pcl.names.OWN_REPORT_TIERS``), whose grid answers its own question
    (``pcl study``) and whose +PCL/control pairs are not the paper's.  A folder such as ``results``
    holds both, so every paper-side reader filters here."""
    if results.empty or "tier" not in results.columns:
        return results
    return results[~results["tier"].isin(OWN_REPORT_TIERS)].reset_index(drop=True)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR/SSIM (and lpips/niqe when present) and image count per set, over seeds.

    Grouped by tier, experiment, backbone, method, dataset, protocol and scale (scale too, so
    that x2 and x4 rows can never be averaged together).  A NaN image makes the set mean NaN on
    purpose: a failed image must not be skipped silently.  Rows of several seeds of one experiment
    (column ``seed``: training seeds, or NLSN's inference seed) are averaged per seed first, then
    across seeds: ``n_seeds`` counts them, ``<metric>_seed_sd`` is the sample standard deviation of
    the seed means (NaN for one seed), and ``n_images`` is the smallest count of DISTINCT images of
    a seed, so a seed that misses images marks the set partial, and so does a duplicated row (the
    rows of a set with one image twice and another missing must not pass as a full set).

    ``niqe_spread``/``niqe_y_spread``, when present, are averaged the same way but get no
    ``_seed_sd``: the mean of the per-image spreads bounds how far the set's mean NIQE can move
    under the other filter arithmetics (each image moves by at most its spread).
    """
    metrics = [c for c in ("psnr", "ssim", *OPTIONAL_COLUMNS) if c in df.columns]
    uncertain = [c for c in UNCERTAINTY_COLUMNS if c in df.columns]
    seed_sds = [f"{m}_seed_sd" for m in metrics]
    columns = [*SUMMARY_KEYS, *metrics, *uncertain, "n_images", "n_seeds", *seed_sds]
    if df.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    keys = list(SUMMARY_KEYS)
    seeded = df.assign(_seed=df["seed"].astype("string").fillna("") if "seed" in df.columns else "")
    per_seed = seeded.groupby([*keys, "_seed"], dropna=False, sort=True)
    means = per_seed[[*metrics, *uncertain]].agg(lambda s: s.mean(skipna=False))
    means["n_images"] = per_seed["image"].nunique(dropna=False) if "image" in df.columns else per_seed.size()
    grouped = means.reset_index().groupby(keys, dropna=False, sort=True)
    out = grouped[[*metrics, *uncertain]].agg(lambda s: s.mean(skipna=False))
    out["n_images"] = grouped["n_images"].min()
    out["n_seeds"] = grouped.size()
    for metric, seed_sd in zip(metrics, seed_sds):
        out[seed_sd] = grouped[metric].std(ddof=1)
    return out.reset_index()[columns]
