"""`pcl check` on the findings: gains.csv must follow from the result rows, and the verdict must
list every claim of the claims catalog (a claim silently dropped is a defect, not a result)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pcl.report.check_report import MISS, OK, CheckItem, CheckReport
from pcl.report.gains import GAIN_COLUMNS, recompute_means


def check_gains_file(results: pd.DataFrame, gains_csv: Path, report: CheckReport) -> None:
    """Every gains.csv row recomputes from the result rows (mean, n, improved) and none is missing."""
    try:
        gains = pd.read_csv(gains_csv)
    except (FileNotFoundError, pd.errors.EmptyDataError) as exc:
        report.items.append(CheckItem("", "gains", str(gains_csv), "", "", "", None, "", "readable", MISS,
                                      f"cannot read ({exc.__class__.__name__}); run `pcl gains`"))
        return
    missing = [c for c in GAIN_COLUMNS if c not in gains.columns]
    problems = [f"missing column(s) {', '.join(missing)}"] if missing else recompute_means(results, gains)
    from pcl.report.gains import pairings_by_key

    listed = {(r["tier"], r["protocol"], r["comparison"], r["dataset"], r["metric"]) for r in gains.to_dict("records")} if not missing else set()
    absent = sorted(set(pairings_by_key(results)) - listed) if not missing else []
    problems += [f"{'/'.join(k)}: a pair in the rows but not in gains.csv" for k in absent]
    report.items.append(CheckItem("", "gains", str(gains_csv), "", "", "mean_gain", None, "", "recomputed",
                                  MISS if problems else OK,
                                  "; ".join(problems[:5]) if problems else f"{len(gains)} gains equal the result rows"))


def check_verdict_file(verdict_md: Path, claims: list[dict], report: CheckReport) -> None:
    """The verdict has exactly one line per claim id, each with a known status."""
    try:
        text = Path(verdict_md).read_text()
    except OSError as exc:
        report.items.append(CheckItem("", "verdict", str(verdict_md), "", "", "", None, "", "readable", MISS,
                                      f"cannot read ({exc.__class__.__name__}); run `pcl verdict`"))
        return
    found = dict(re.findall(r"^- \*\*([^*]+)\*\*: (supported|not significant|contradicted|not testable here)\.", text, re.M))
    ids = [c["id"] for c in claims]
    lacking = [i for i in ids if i not in found]
    unknown = sorted(set(found) - set(ids))
    detail = "; ".join(filter(None, [f"claims without a line: {', '.join(lacking)}" if lacking else "",
                                     f"lines for no claim: {', '.join(unknown)}" if unknown else ""]))
    report.items.append(CheckItem("", "verdict", str(verdict_md), "", "", "claims", None, "", f"{len(ids)} claims",
                                  MISS if detail else OK, detail or f"every claim has its line ({len(ids)})"))
