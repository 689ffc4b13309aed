"""Fig. 2/3-style visual comparisons: the full HR image with the crop box, then the same crop from
HR and from every model, each with PSNR/SSIM of the crop and of the whole image underneath.

Crops come from the config or are found automatically: the patch where the +PCL minus reference
per-patch PSNR is largest and, labelled as such, the one where it is most negative (a figure that
shows only the best patch is an advertisement, not evidence).  Two references are searched, each
named in the figure: the baseline (what the paper's Fig. 2/3 compare) and, where it exists, the
L1-only control, the comparison that isolates the contrastive term: the patch that flatters +PCL
most against the baseline may show no difference at all against the control.  Scores are Y-channel PSNR/SSIM
(protocol ``matlab``): the whole image as in the tables, the crop on its own pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pcl.data.images import read_image
from pcl.errors import PCLError
from pcl.metrics.psnr_ssim import SSIM_WINDOW, evaluate_pair, psnr_planes, rgb_to_y, ssim_planes
from pcl.report.gain_figures import OKABE_ITO, _save


@dataclass(frozen=True)
class Crop:
    """Top-left corner (x, y) and side of a square crop in HR pixels, and why it was chosen."""

    x: int
    y: int
    size: int
    reason: str = "given"


def _y_plane(img: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float64)
    if t.ndim == 2:
        return t[None, None]
    return rgb_to_y(t.permute(2, 0, 1)[None])


def _check_crop(crop: Crop, shape: tuple[int, ...], what: str) -> None:
    h, w = shape[:2]
    if crop.size < SSIM_WINDOW or crop.x < 0 or crop.y < 0 or crop.x + crop.size > w or crop.y + crop.size > h:
        raise PCLError(f"{what}: crop x={crop.x}, y={crop.y}, size={crop.size} is outside the {w}x{h} image "
                       f"(or smaller than {SSIM_WINDOW} px); choose one inside it")


def crop_scores(sr: np.ndarray, hr: np.ndarray, crop: Crop) -> tuple[float, float]:
    """Y-channel PSNR/SSIM of the crop alone."""
    sl = (slice(crop.y, crop.y + crop.size), slice(crop.x, crop.x + crop.size))
    a, b = _y_plane(sr[sl]), _y_plane(hr[sl])
    return float(psnr_planes(a, b)[0]), float(ssim_planes(a, b)[0])


def auto_crops(hr: np.ndarray, pcl: np.ndarray, base: np.ndarray, size: int, *, scale: int = 4,
               against: str = "baseline") -> tuple[Crop, Crop]:
    """(most favourable, least favourable) patch for +PCL: per-patch PSNR difference on a half-overlapping grid.

    ``against`` names the reference model ``base`` in each crop's reason, e.g. ``best vs baseline:
    +PCL +0.41 dB`` -- a crop picked against one model must never read as picked against another.
    """
    h, w = hr.shape[:2]
    if size > min(h, w) - 2 * scale:
        raise PCLError(f"crop size {size} does not fit the {w}x{h} image; choose a smaller one")
    y_hr, y_p, y_b = (_y_plane(a)[0, 0] for a in (hr, pcl, base))
    step = max(1, size // 2)
    best, worst = None, None
    for y in range(scale, h - scale - size + 1, step):
        for x in range(scale, w - scale - size + 1, step):
            sl = (slice(y, y + size), slice(x, x + size))
            mse_p = float(((y_p[sl] - y_hr[sl]) ** 2).mean())
            mse_b = float(((y_b[sl] - y_hr[sl]) ** 2).mean())
            diff = 10 * np.log10(max(mse_b, 1e-12) / max(mse_p, 1e-12))
            if best is None or diff > best[0]:
                best = (diff, x, y)
            if worst is None or diff < worst[0]:
                worst = (diff, x, y)
    return (Crop(best[1], best[2], size, f"best vs {against}: largest +PCL gain over the {against} ({best[0]:+.2f} dB)"),
            Crop(worst[1], worst[2], size, f"worst vs {against}: largest +PCL loss to the {against} ({worst[0]:+.2f} dB)"))


def comparison_figure(hr_path: Path, models: dict[str, Path], crop: Crop, out: Path, *, title: str, scale: int = 4) -> Path:
    """Write the figure; every SR file must exist and match the HR size (mod-cropped to the scale)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    hr = read_image(Path(hr_path))
    hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
    _check_crop(crop, hr.shape, str(hr_path))
    images = {}
    for label, path in models.items():
        if not Path(path).is_file():
            raise PCLError(f"{label}: SR image {path} not found; evaluate that model with --save-sr for this image")
        sr = read_image(Path(path))
        if sr.shape[:2] != hr.shape[:2]:
            raise PCLError(f"{path}: SR size {sr.shape[1]}x{sr.shape[0]} differs from the HR {hr.shape[1]}x{hr.shape[0]}")
        images[label] = sr
    panels = [("HR", hr, None), *((label, sr, True) for label, sr in images.items())]
    fig = Figure(figsize=(3.0 * (len(panels) + 1), 3.6))
    axes = fig.subplots(1, len(panels) + 1)
    cmap = "gray" if hr.ndim == 2 else None
    axes[0].imshow(hr, cmap=cmap)
    axes[0].add_patch(Rectangle((crop.x, crop.y), crop.size, crop.size, fill=False, ec=OKABE_ITO[3], lw=2))
    axes[0].set_title(Path(hr_path).stem, fontsize=9)
    sl = (slice(crop.y, crop.y + crop.size), slice(crop.x, crop.x + crop.size))
    for ax, (label, img, scored) in zip(axes[1:], panels):
        ax.imshow(img[sl], cmap=cmap, interpolation="nearest")
        if scored:
            cp, cs = crop_scores(img, hr, crop)
            wp, ws = evaluate_pair(img, hr, scale=scale, protocol="matlab")
            ax.set_xlabel(f"crop {cp:.2f} dB / {cs:.4f}\nimage {wp:.2f} dB / {ws:.4f}", fontsize=8)
        else:
            ax.set_xlabel("crop / image: PSNR / SSIM (Y)", fontsize=8)
        ax.set_title(label, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title} — crop at ({crop.x}, {crop.y}), {crop.size} px: {crop.reason}", fontsize=10)
    return _save(fig, out)


def no_reference_figure(lr_path: Path, models: dict[str, np.ndarray], niqe: dict[str, float], out: Path, *, title: str) -> Path:
    """Fig. 4 style (real images, no ground truth): the LR input and each model's SR with its NIQE."""
    from matplotlib.figure import Figure

    lr = read_image(Path(lr_path))
    fig = Figure(figsize=(3.2 * (len(models) + 1), 3.6))
    axes = fig.subplots(1, len(models) + 1)
    cmap = "gray" if lr.ndim == 2 else None
    axes[0].imshow(lr, cmap=cmap, interpolation="nearest")
    axes[0].set_title(f"LR input {Path(lr_path).stem}", fontsize=9)
    for ax, (label, sr) in zip(axes[1:], models.items()):
        ax.imshow(sr, cmap=cmap)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(f"NIQE {niqe[label]:.3f} (lower is better)", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return _save(fig, out)
