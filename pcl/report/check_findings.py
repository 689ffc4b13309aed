"""`pcl check` on the findings: every number of gains.csv must follow from the result rows, and the
verdict must list every claim of the claims catalog with the status its rule gives.

Why recompute the statistics and not only the means: an interval bound or a p-value typed over by
hand (or left over from other rows) changes what the verdict concludes while the means still
agree.  gains.csv records its bootstrap settings (columns ``draws`` and ``bootstrap_seed``, one
value for the whole file), so the check reruns ``pcl.report.gains.compute_gains`` with them on the
same rows and compares column by column (tolerances: ``EXACT_COLUMNS`` and ``FLOAT_SLACK``).

The verdict's own check is ``pcl.report.check_verdict`` (``check_verdict_file`` is importable here too).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pcl.report.check_report import MISS, OK, CheckItem, CheckReport
from pcl.report.check_verdict import check_verdict_file
from pcl.report.gains import GAIN_COLUMNS, compute_gains

__all__ = ["check_gains_file", "check_verdict_file", "compare_gains", "recorded_settings"]

KEY_COLUMNS: tuple[str, ...] = ("tier", "protocol", "comparison", "dataset", "metric")
"""What names one gains.csv row (a pairing of two experiments on one set and metric)."""
SETTINGS_COLUMNS: tuple[str, ...] = ("draws", "bootstrap_seed")
"""The recorded bootstrap settings the recomputation reuses."""
EXACT_COLUMNS: frozenset[str] = frozenset({"n", "improved", "n_seeds", "draws", "bootstrap_seed", "p_value", "p_holm"})
"""Compared bit for bit.  The Wilcoxon p-value depends on the ranks of the gains and scipy's
exact null distribution (or its normal approximation, n > 50): no summation order is involved,
so any difference is an edit; Holm's adjustment is products and maxima of those p-values."""
MAX_DRAWS = 1_000_000
"""More recorded draws than this are refused rather than rerun (an edited count must not make the
check run for hours); `pcl gains` writes 10,000."""
FLOAT_SLACK = 1e-12
"""Absolute slack for the columns that are sums of floats (means, bootstrap bounds, seed sd).
On the machine that wrote gains.csv the recomputation is bitwise equal (numpy's PCG64 draws
are platform independent and the bootstrap runs in one thread); another CPU may sum the same
values in another order (SIMD width), which moves a mean by a few units in the last place, about
1e-16 for gains of 0.01-1 dB.  1e-12 is far below any printed digit (3-4 decimals) and far above
that rounding."""


def _key(rec: dict) -> tuple[str, ...]:
    return tuple(str(rec[c]) for c in KEY_COLUMNS)


def _differs(column: str, stored: object, text: str, fresh: object) -> bool:
    """True when a stored gains.csv value is not what the rows give.

    ``stored`` is the value as pandas parses it, ``text`` the cell's raw text (text columns such
    as ``seeds`` are compared as written: "0" must not become 0.0 beside an empty cell); NaN
    equals NaN.
    """
    if isinstance(fresh, str):
        return text != fresh
    try:
        a, b = float(stored), float(fresh)
    except (TypeError, ValueError):
        return True
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) != math.isnan(b)
    return a != b if column in EXACT_COLUMNS else abs(a - b) > FLOAT_SLACK


def recorded_settings(gains: pd.DataFrame) -> tuple[tuple[int, int] | None, str]:
    """(draws, seed) recorded in gains.csv, or None and why not (mixed, missing or not integers)."""
    if gains.empty:
        return None, "no rows"
    pairs = set()
    for rec in gains[list(SETTINGS_COLUMNS)].to_dict("records"):
        try:
            draws, seed = float(rec["draws"]), float(rec["bootstrap_seed"])
        except (TypeError, ValueError):
            return None, f"draws/bootstrap_seed {rec['draws']!r}/{rec['bootstrap_seed']!r} are not integers"
        if not (draws.is_integer() and seed.is_integer()) or draws < 1:
            return None, f"draws/bootstrap_seed {rec['draws']!r}/{rec['bootstrap_seed']!r} are not integers"
        if draws > MAX_DRAWS or seed < 0:
            return None, f"draws {int(draws)} / bootstrap_seed {int(seed)} outside 1..{MAX_DRAWS:,} / >= 0"
        pairs.add((int(draws), int(seed)))
    if len(pairs) > 1:
        return None, f"the rows record different bootstrap settings {sorted(pairs)}; `pcl gains` writes one"
    return pairs.pop(), ""


def compare_gains(results: pd.DataFrame, gains: pd.DataFrame, raw: pd.DataFrame | None = None) -> list[str]:
    """Problems where gains.csv differs from a recomputation on ``results`` (empty = it follows).

    ``gains`` as ``pd.read_csv`` parses the file, ``raw`` the same file read as text (default:
    ``gains`` as strings).  Each problem names the line of gains.csv (the header is line 1), its
    pairing and the column.
    """
    raw = gains.astype(str) if raw is None else raw
    settings, why = recorded_settings(gains)
    if settings is None and why != "no rows":
        return [f"cannot recompute: {why}; run `pcl gains`"]
    draws, seed = settings or (1, 0)  # no rows: only the pairings matter (each is missing)
    fresh = compute_gains(results, draws=draws, seed=seed)
    by_key = {_key(rec): rec for rec in fresh.to_dict("records")}
    problems, seen = [], set()
    columns = [c for c in GAIN_COLUMNS if c not in KEY_COLUMNS]
    for i, (rec, text) in enumerate(zip(gains.to_dict("records"), raw.to_dict("records"))):
        key, where = _key(rec), f"line {i + 2} ({'/'.join(_key(rec))})"
        if key in seen:
            problems.append(f"{where}: the same pairing appears twice")
            continue
        seen.add(key)
        ours = by_key.get(key)
        if ours is None:
            problems.append(f"{where}: no result rows behind this gain")
            continue
        for column in columns:
            if _differs(column, rec[column], text[column], ours[column]):
                problems.append(f"{where} column {column}: gains.csv says {text[column]!r}, the rows give {ours[column]!r}")
    problems += [f"{'/'.join(k)}: a pair in the rows but not in gains.csv" for k in sorted(set(by_key) - seen)]
    return problems


def check_gains_file(results: pd.DataFrame, gains_csv: Path, report: CheckReport) -> None:
    """Every gains.csv row recomputes from the result rows (all statistics), none is missing."""
    try:
        gains = pd.read_csv(gains_csv)
        raw = pd.read_csv(gains_csv, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        report.items.append(CheckItem("", "gains", str(gains_csv), "", "", "", None, "", "readable", MISS,
                                      f"cannot read ({exc.__class__.__name__}); run `pcl gains`"))
        return
    missing = [c for c in GAIN_COLUMNS if c not in gains.columns]
    problems = [f"missing column(s) {', '.join(missing)}"] if missing else compare_gains(results, gains, raw)
    settings, _ = recorded_settings(gains) if not missing else (None, "")
    recorded = f"{settings[0]} draws, seed {settings[1]}" if settings else "recorded settings"
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    report.items.append(CheckItem("", "gains", str(gains_csv), "", "", "all columns", None, "",
                                  f"p exact, bounds ±{FLOAT_SLACK:g}", MISS if problems else OK,
                                  shown or f"{len(gains)} gains, intervals and p-values recompute from the result rows "
                                           f"({recorded})"))
