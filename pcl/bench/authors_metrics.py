"""The paper authors' offline PSNR/SSIM path, rebuilt for the metrics benchmark.

Why it exists: the released per-image logs were scored by the authors' script (docs/protocols.md
§3: ``cv2.imread`` -> BGR floats in [0, 1] -> MATLAB luma -> 4-px shave -> a numpy PSNR and an SSIM
whose five local statistics are ``cv2.filter2D`` with OpenCV's 11-tap Gaussian). That is what an
SR researcher would otherwise run to get the same numbers, so ``pcl bench metrics`` times our
scorer against it. This module follows those steps one by one, in float64 as the script does
(``x / 255.`` on uint8 gives float64), with OpenCV doing the filtering; it is not used to score
anything in the harness.

OpenCV is an optional extra (``pip install .[bench]``); without it the benchmark leaves this
row out and says so.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

#: BGR order, because cv2 reads BGR: 24.966 B + 128.553 G + 65.481 R.
_BGR_LUMA = np.array([24.966, 128.553, 65.481])
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2


def load_cv2() -> ModuleType | None:
    """OpenCV when installed, else ``None`` (it is a benchmark-only extra)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def bgr_to_y(bgr_unit: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of BGR floats in [0, 1], returned in [0, 1] and not rounded."""
    return (bgr_unit * 255.0 @ _BGR_LUMA / 255.0 + 16.0) / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two 0-255 float arrays; inf when equal."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 20.0 * math.log10(255.0 / math.sqrt(mse))


def ssim(cv2: ModuleType, a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two 0-255 2-D float arrays: 11x11 Gaussian (sigma 1.5) 'valid' statistics."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    g = cv2.getGaussianKernel(11, 1.5)
    window = g @ g.T

    def local_mean(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    mu_a, mu_b = local_mean(a), local_mean(b)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = local_mean(a * a) - mu_aa
    var_b = local_mean(b * b) - mu_bb
    cov = local_mean(a * b) - mu_ab
    num = (2.0 * mu_ab + _C1) * (2.0 * cov + _C2)
    den = (mu_aa + mu_bb + _C1) * (var_a + var_b + _C2)
    return float(np.mean(num / den))


def psnr_ssim(cv2: ModuleType, sr_bgr: np.ndarray, hr_bgr: np.ndarray, scale: int) -> tuple[float, float]:
    """The script's per-image work from two BGR uint8 arrays (as ``cv2.imread`` returns them).

    The GT is mod-cropped to ``scale`` and ``scale`` pixels are shaved on every side of both.
    """
    gt, sr = hr_bgr / 255.0, sr_bgr / 255.0
    h, w = gt.shape[:2]
    gt = gt[: h - h % scale, : w - w % scale]
    y_gt, y_sr = bgr_to_y(gt), bgr_to_y(sr)
    crop = (slice(scale, -scale), slice(scale, -scale))
    y_gt, y_sr = y_gt[crop] * 255.0, y_sr[crop] * 255.0
    return psnr(y_gt, y_sr), ssim(cv2, y_gt, y_sr)
