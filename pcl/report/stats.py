"""Paired statistics for per-image gains: bootstrap interval, Wilcoxon signed-rank test, Holm.

Why paired and per image: the paper's gains are 0.01-0.25 dB on sets of 5-109 images whose
PSNRs spread over 10 dB, so only the per-image differences between two models on the same images
say whether a gain is larger than the image-to-image noise.  The bootstrap resamples images (the
unit the benchmark samples), the Wilcoxon test asks whether the differences are centred on zero
without assuming normality, and Holm's step-down adjustment controls the family-wise error over
the cells of one table (e.g. 4 backbones x 5 sets).

Why also a minimum detectable effect: with 5 images the smallest two-sided exact Wilcoxon p is
2/2^5 = 0.0625, so a test alone can never call a Set5 cell significant.  ``mde`` says instead how
large a gain the images of one cell could resolve: (z_0.975 + z_0.80) * sd(diff) / sqrt(n), with
normal quantiles and the sample sd (ddof 1) -- the version that reproduces the figures measured
on the released logs (EDSR-L Set5 0.078 dB, NLSN Set5 0.235 dB; the t-quantile version gives
0.103 and 0.311 for n = 5).

Why a hierarchical bootstrap: with several training seeds, the seed is a second sampling unit.
Resampling only images of seed-averaged values would leave training variance out of the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Bootstrap draws and the seed of their generator (recorded in every gains file).
BOOTSTRAP_DRAWS = 10_000
BOOTSTRAP_SEED = 20230101
CONFIDENCE = 0.95
#: Power and two-sided level of the minimum detectable effect.
POWER = 0.80
MDE_ALPHA = 0.05


@dataclass(frozen=True)
class GainStats:
    """Summary of one vector of per-image gains (positive = the first model is better)."""

    n: int
    mean_gain: float
    ci_low: float
    ci_high: float
    p_value: float
    improved: int
    mde: float = math.nan
    sd_diff: float = math.nan


def bootstrap_interval(
    gains: np.ndarray, *, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile interval of the mean gain over ``draws`` resamplings of the images (with replacement).

    Draws are made in chunks so that 10,000 x 109 indices never sit in memory at once.
    """
    g = np.asarray(gains, dtype=np.float64)
    if g.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(draws)
    chunk = max(1, 2_000_000 // g.size)
    for start in range(0, draws, chunk):
        stop = min(draws, start + chunk)
        idx = rng.integers(0, g.size, size=(stop - start, g.size))
        means[start:stop] = g[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def hierarchical_interval(
    gains: np.ndarray, *, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile interval of the mean gain, resampling seeds and then images (both with replacement).

    ``gains`` is seeds x images: row s holds the per-image gains of the two arms' runs with training
    seed s (or of one arm's seed s against a fixed reference).  One draw picks S seed rows and n
    image columns; both arms share those indices because each entry is already their difference.
    """
    g = np.asarray(gains, dtype=np.float64)
    if g.ndim != 2 or g.size == 0:
        return math.nan, math.nan
    n_seeds, n_images = g.shape
    rng = np.random.default_rng(seed)
    means = np.empty(draws)
    chunk = max(1, 2_000_000 // max(1, g.size))
    for start in range(0, draws, chunk):
        stop = min(draws, start + chunk)
        k = stop - start
        seed_idx = rng.integers(0, n_seeds, size=(k, n_seeds))
        image_idx = rng.integers(0, n_images, size=(k, n_images))
        per_seed = g[:, image_idx].mean(axis=2)  # seeds x k: every seed's mean over the drawn images
        means[start:stop] = np.take_along_axis(per_seed.T, seed_idx, axis=1).mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def mde(gains: np.ndarray, *, power: float = POWER, alpha: float = MDE_ALPHA) -> float:
    """Minimum detectable mean gain at ``power`` for a two-sided level ``alpha`` test of paired diffs.

    (z_{1-alpha/2} + z_{power}) * sd(diff, ddof=1) / sqrt(n); NaN below two values.
    """
    from scipy.stats import norm

    g = np.asarray(gains, dtype=np.float64)
    if g.size < 2:
        return math.nan
    return float((norm.ppf(1.0 - alpha / 2.0) + norm.ppf(power)) * g.std(ddof=1) / math.sqrt(g.size))


def wilcoxon_p(gains: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value (scipy's default method); 1.0 when every gain is zero.

    scipy drops zero differences (``zero_method='wilcox'``, the classic test) and refuses a sample
    with none left; "no difference at all" is reported as p = 1.
    """
    from scipy.stats import wilcoxon

    g = np.asarray(gains, dtype=np.float64)
    if g.size == 0:
        return math.nan
    if not np.any(g != 0):
        return 1.0
    return float(wilcoxon(g).pvalue)


def holm(p_values: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaNs stay NaN and do not count towards the family size)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def gain_stats(gains: np.ndarray, *, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED,
               per_seed: np.ndarray | None = None) -> GainStats:
    """Mean, bootstrap interval, Wilcoxon p-value, images improved and MDE of per-image gains.

    ``gains`` are the seed-averaged per-image gains; ``per_seed`` (seeds x images), when it has more
    than one row, makes the interval hierarchical (seeds, then images).
    """
    g = np.asarray(gains, dtype=np.float64)
    if per_seed is not None and np.asarray(per_seed).ndim == 2 and np.asarray(per_seed).shape[0] > 1:
        low, high = hierarchical_interval(per_seed, draws=draws, seed=seed)
    else:
        low, high = bootstrap_interval(g, draws=draws, seed=seed)
    return GainStats(
        n=int(g.size),
        mean_gain=float(g.mean()) if g.size else math.nan,
        ci_low=low,
        ci_high=high,
        p_value=wilcoxon_p(g),
        improved=int(np.sum(g > 0)),
        mde=mde(g),
        sd_diff=float(g.std(ddof=1)) if g.size > 1 else math.nan,
    )
