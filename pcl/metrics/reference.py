"""Plain float64 numpy/scipy reference for PSNR/SSIM, written the straightforward way.

Why it exists: the vectorised torch path in :mod:`pcl.metrics.psnr_ssim` is what the harness
runs; this module re-derives the same numbers one image at a time, the way the authors' cv2
script and MATLAB's ``Evaluate_PSNR_SSIM.m`` spell them (docs/protocols.md §3, §7.2): Y conversion,
mod-crop, shave, MSE, and SSIM from a full 11x11 2-D Gaussian window correlated in 'valid' mode
(MATLAB ``filter2(..., 'valid')``).  It deliberately shares no code with the torch path, so
the tests and the benchmark compare two independent implementations.  Speed is not a goal.

Protocol rules (identical by specification, see the torch module's docstring): ``matlab``
scores a gray GT on its gray values (a 3-channel SR is mapped back by (Y - 16) * 255 / 219);
``authors`` replicates gray images to RGB and takes Y.  A float SR is clipped to [0, 255] and
rounded half to even (``numpy.round``, same rule as ``torch.round``).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import correlate2d


def _ycbcr_luma(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr luma of an (H, W, 3) 0-255 float image, unrounded."""
    return 16.0 + (65.481 * rgb[:, :, 0] + 128.553 * rgb[:, :, 1] + 24.966 * rgb[:, :, 2]) / 255.0


def _scored_plane(img: np.ndarray, gt_is_gray: bool, protocol: str) -> np.ndarray:
    """The single channel that the protocol compares, as float64 on the 0-255 scale."""
    if img.ndim == 2:
        if gt_is_gray and protocol == "matlab":
            return img
        return _ycbcr_luma(np.stack([img, img, img], axis=2))
    luma = _ycbcr_luma(img)
    if gt_is_gray and protocol == "matlab":
        return (luma - 16.0) * 255.0 / 219.0
    return luma


def _gaussian_window() -> np.ndarray:
    """11x11 Gaussian, sigma 1.5, normalised to sum 1 (MATLAB fspecial('gaussian', 11, 1.5))."""
    ax = np.arange(-5, 6, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    win = np.exp(-(xx**2 + yy**2) / (2.0 * 1.5**2))
    return win / win.sum()


def reference_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two 0-255 float planes: 10 log10(255^2 / MSE), inf when they are equal."""
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) over the 'valid' region, window 11x11 / sigma 1.5, L = 255."""
    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    win = _gaussian_window()

    def filt(z: np.ndarray) -> np.ndarray:
        return correlate2d(z, win, mode="valid")

    mu_a = filt(a)
    mu_b = filt(b)
    sigma_a2 = filt(a * a) - mu_a**2
    sigma_b2 = filt(b * b) - mu_b**2
    sigma_ab = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sigma_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (sigma_a2 + sigma_b2 + c2)
    return float(np.mean(num / den))


def reference_psnr_ssim(
    sr: np.ndarray, hr: np.ndarray, *, scale: int, protocol: str = "matlab"
) -> tuple[float, float]:
    """(PSNR, SSIM) of one pair given as (H, W) or (H, W, 3) arrays, uint8 or 0-255 floats."""
    if protocol not in ("matlab", "authors"):
        raise ValueError(f"unknown protocol {protocol!r}")
    hr = np.asarray(hr)
    sr = np.asarray(sr)
    height, width = hr.shape[0], hr.shape[1]
    hr = hr[: height - height % scale, : width - width % scale]
    if sr.shape[:2] != hr.shape[:2]:
        raise ValueError(f"SR {sr.shape[:2]} does not match mod-cropped HR {hr.shape[:2]}")
    if np.issubdtype(sr.dtype, np.floating):
        sr = np.round(np.clip(sr, 0.0, 255.0))
    sr = sr.astype(np.float64)
    hr = hr.astype(np.float64)
    gt_is_gray = hr.ndim == 2
    sr_plane = _scored_plane(sr, gt_is_gray, protocol)
    hr_plane = _scored_plane(hr, gt_is_gray, protocol)
    sr_plane = sr_plane[scale:-scale, scale:-scale]
    hr_plane = hr_plane[scale:-scale, scale:-scale]
    return reference_psnr(sr_plane, hr_plane), reference_ssim(sr_plane, hr_plane)
