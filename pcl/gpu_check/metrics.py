"""Part ``metrics``: the CUDA paths of PSNR/SSIM, NIQE and LPIPS give the CPU's numbers.

Why: the harness scores on whichever device the job got, and a table must not depend on it.
Inputs are the shipped benchmarks (Set5, Set14); the "SR" image is the MATLAB bicubic x4
down-and-up of the HR image (pcl.data.imresize), so that PSNR/SSIM see a realistic error.
PSNR and SSIM are float64 throughout, so the devices must agree to 1e-6 (dB); NIQE is float64
too (1e-6).  LPIPS runs AlexNet in float32, whose convolutions sum in a device-specific order,
so it is held to 1e-4 and is only checked when its weights are present.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from pcl.gpu_check.report import RowSink

SCALE = 4
PSNR_TOL, SSIM_TOL, NIQE_TOL, LPIPS_TOL = 1e-6, 1e-6, 1e-6, 1e-4


#: --tiny: the top-left corner of each image only (NIQE needs 96x96 after its 4-pixel border).
TINY_SIZE = 112


def _pairs(datasets: tuple[str, ...], limit: int | None, crop: int | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, SR, HR) uint8 arrays, HR mod-cropped to the scale (and to ``crop`` pixels)."""
    from pcl.data.images import list_images, read_image
    from pcl.data.imresize import imresize
    from pcl.resources import resource_path

    pairs = []
    for dataset in datasets:
        for path in list_images(resource_path("benchmarks", dataset, "HR"))[:limit]:
            hr = read_image(path)
            if hr.ndim == 2:
                hr = np.repeat(hr[..., None], 3, axis=2)
            h, w = (hr.shape[0] // SCALE) * SCALE, (hr.shape[1] // SCALE) * SCALE
            if crop:
                h, w = min(h, crop), min(w, crop)
            hr = np.ascontiguousarray(hr[:h, :w])
            sr = imresize(imresize(hr, 1 / SCALE), SCALE)
            pairs.append((f"{dataset}/{path.stem}", sr, hr))
    return pairs


def _batch(img: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


def _compare(sink: RowSink, case: str, quantity: str, cpu: float, dev: float, tol: float) -> bool:
    diff = abs(cpu - dev)
    ok = bool(np.isfinite(diff) and diff <= tol)
    sink.add("metrics", case, quantity + "_abs_diff", diff, "", tolerance=tol, ok=ok,
             note=f"cpu {cpu!r} device {dev!r}")
    return ok


def _lpips_scorers(device: torch.device):
    """(CPU scorer, device scorer), or None with the reason when the AlexNet weights are absent."""
    from pcl.errors import PCLError
    from pcl.metrics.perceptual import LPIPSScorer

    try:
        return LPIPSScorer("cpu"), LPIPSScorer(device), ""
    except (PCLError, ImportError) as exc:
        return None, None, str(exc)


def _scores(sr: np.ndarray, hr: np.ndarray, dev: torch.device) -> tuple[float, float, float]:
    """(PSNR, SSIM, NIQE of SR) computed on ``dev``."""
    from pcl.metrics.niqe import niqe_batch
    from pcl.metrics.psnr_ssim import psnr_ssim_batch

    p, s = psnr_ssim_batch(_batch(sr, dev), _batch(hr, dev), scale=SCALE)
    n = niqe_batch(_batch(sr, dev), crop_border=SCALE)
    return float(p[0]), float(s[0]), float(n[0])


def run(sink: RowSink, device: torch.device, *, tiny: bool, deadline: float) -> None:
    """Compare every metric on every shipped benchmark image, CPU against ``device``."""
    pairs = _pairs(("Set5",) if tiny else ("Set5", "Set14"), 2 if tiny else None, TINY_SIZE if tiny else None)
    lp_cpu, lp_dev, why = _lpips_scorers(device)
    if lp_cpu is None:
        sink.add("metrics", "lpips", "skipped", 1, "", note=why.splitlines()[0][:300])
    worst: dict[str, float] = {}
    for name, sr, hr in pairs:
        if time.monotonic() > deadline:
            sink.add("metrics", name, "skipped", 1, "", note="part time budget spent")
            break
        ref, got = _scores(sr, hr, torch.device("cpu")), _scores(sr, hr, device)
        for i, (q, tol) in enumerate((("psnr_db", PSNR_TOL), ("ssim", SSIM_TOL), ("niqe", NIQE_TOL))):
            _compare(sink, name, q, ref[i], got[i], tol)
            worst[q] = max(worst.get(q, 0.0), abs(ref[i] - got[i]))
        if lp_cpu is not None:
            a, b = lp_cpu.score(sr, hr, scale=SCALE), lp_dev.score(sr, hr, scale=SCALE)
            _compare(sink, name, "lpips", a, b, LPIPS_TOL)
            worst["lpips"] = max(worst.get("lpips", 0.0), abs(a - b))
    for q, value in worst.items():
        sink.add("metrics", "all images", q + "_max_abs_diff", value, "", note=f"{len(pairs)} images")
