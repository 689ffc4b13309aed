"""The rules that turn numbers into statuses: one cell, then one claim.

Why not a p-value threshold: with 5 images the smallest two-sided exact Wilcoxon p is
2/2^5 = 0.0625, so a rule "significant when Holm p < 0.05" calls every Set5 cell "not significant"
whatever the data.  A cell is decided instead on its paired bootstrap 95% interval together with a
stated minimum effect (``min_effect`` in config/claims.yaml: the paper's printing precision), and
its minimum detectable effect (MDE, 80% power) says whether the images could resolve the gain in
question at all.  Wilcoxon and Holm stay in gains.csv as reported evidence.

Cell rule, for a gain whose claimed direction is positive (mean m, interval [lo, hi], minimum effect
e, MDE d, gain in question q = |printed gain| where the paper prints one, else |m|), first match:

1. ``supported``: lo > 0 and m >= e.
2. ``contradicted``: hi < 0 and m <= -e (the whole interval on the wrong side, by at least e).
3. ``too few images to decide``: lo <= 0 <= hi and d > q (the images cannot resolve q).
4. ``not significant``: everything else (the interval includes 0 although d <= q, or the interval
   excludes 0 but the mean is smaller than e).

Claim rule (quantifier ``all``, the default): contradicted when any cell is; supported when every
cell is; too few images to decide when every cell that is not supported is "too few"; otherwise not
significant.  Quantifier ``most`` (the paper's "in most cases"): supported when more than half of
the cells are supported; contradicted when at least half are contradicted; too few images to decide
when supported and "too few" cells together are more than half; otherwise not significant.  No cell
at all: ``not testable here``.  ``printed value not reproduced`` is not a cell status: it is given to
a printed number (a mean gain) that the authors' own per-image logs do not give at the printed
precision, a reporting discrepancy rather than sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pcl.errors import PCLError

SUPPORTED = "supported"
NOT_SIGNIFICANT = "not significant"
TOO_FEW = "too few images to decide"
CONTRADICTED = "contradicted"
NOT_REPRODUCED = "printed value not reproduced"
NOT_TESTABLE = "not testable here"
STATUSES: tuple[str, ...] = (SUPPORTED, NOT_SIGNIFICANT, TOO_FEW, CONTRADICTED, NOT_REPRODUCED, NOT_TESTABLE)
CELL_STATUSES: tuple[str, ...] = (SUPPORTED, NOT_SIGNIFICANT, TOO_FEW, CONTRADICTED)
QUANTIFIERS: tuple[str, ...] = ("all", "most")
METRICS_WITH_EFFECT: tuple[str, ...] = ("psnr", "ssim", "lpips", "niqe", "niqe_y")


def cell_status(mean: float, low: float, high: float, *, min_effect: float, mde: float, in_question: float | None = None) -> str:
    """Status of one cell by the rule of the module docstring (gain sign: positive = claimed direction)."""
    if any(math.isnan(v) for v in (mean, low, high)):
        return NOT_TESTABLE
    if low > 0 and mean >= min_effect:
        return SUPPORTED
    if high < 0 and mean <= -min_effect:
        return CONTRADICTED
    q = abs(in_question) if in_question is not None and not math.isnan(in_question) else abs(mean)
    if low <= 0 <= high and not math.isnan(mde) and mde > q:
        return TOO_FEW
    return NOT_SIGNIFICANT


def combine(statuses: list[str], quantifier: str = "all") -> str:
    """Status of a claim from its cells' statuses (module docstring)."""
    cells = [s for s in statuses if s != NOT_TESTABLE]
    if not cells:
        return NOT_TESTABLE
    n, sup, con, few = len(cells), cells.count(SUPPORTED), cells.count(CONTRADICTED), cells.count(TOO_FEW)
    if quantifier == "most":
        if 2 * sup > n:
            return SUPPORTED
        if 2 * con >= n:
            return CONTRADICTED
        return TOO_FEW if 2 * (sup + few) > n else NOT_SIGNIFICANT
    if con:
        return CONTRADICTED
    if sup == n:
        return SUPPORTED
    return TOO_FEW if sup + few == n else NOT_SIGNIFICANT


def min_effects(data: Mapping, path: object) -> dict[str, float]:
    """``min_effect`` of the claims file: a positive number per metric (the paper's printing precision)."""
    raw = data.get("min_effect")
    if not isinstance(raw, Mapping):
        raise PCLError(f"{path}: expected a mapping 'min_effect' (metric -> smallest gain that counts, e.g. psnr: 0.01)")
    out = {}
    for metric in METRICS_WITH_EFFECT:
        value = raw.get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise PCLError(f"{path}: min_effect.{metric} is {value!r}; give a positive number (the paper's printing "
                           "precision for that metric)")
        out[metric] = float(value)
    return out


def printed_decimals(value: float) -> int:
    """Decimals of a number as the paper prints it (0.16 -> 2, 0.0022 -> 4)."""
    text = repr(float(value))
    return len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0


def reproduces(printed: float, measured: float) -> bool:
    """Whether ``measured`` rounds to ``printed`` at the printed precision."""
    half = 0.5 * 10.0 ** -printed_decimals(printed)
    return abs(measured - printed) <= half + 1e-12


def resolvable_text(mdes: Mapping[str, list[float]], questions: Mapping[str, list[float]], unit: str, digits: int) -> str:
    """``Set5: MDE 0.078-0.235 dB, resolves 0 of 8 gains in question; ...`` per data set."""
    parts = []
    for dataset, values in mdes.items():
        values = [v for v in values if not math.isnan(v)]
        if not values:
            continue
        qs = questions.get(dataset, [])
        ok = sum(1 for m, q in zip(mdes[dataset], qs) if not math.isnan(m) and q is not None and m <= abs(q))
        span = f"{min(values):.{digits}f}" + (f"-{max(values):.{digits}f}" if max(values) > min(values) else "")
        parts.append(f"{dataset} MDE {span}{unit}: resolves {ok} of {len(qs)}")
    return "; ".join(parts)
