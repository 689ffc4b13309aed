"""Measurement (`pcl bench nlsn-seed`): how much NLSN's per-image PSNR/SSIM move with the seed.

Why: every NLSA forward draws random hashing rotations (docs/backbones.md §6.3), so the authors'
released NLSN logs came from one unknown random state (on a GPU, whose generator differs from the
CPU's).  Our seeded evaluation of the same weights can therefore not match the log exactly; the
per-image comparison of ``pcl check`` (tier ``released``) needs a tolerance of the size of the seed
spread, ``nlsn_seed_spread_db`` / ``nlsn_seed_spread_ssim`` in config/tolerances.yaml.

What is measured (a proxy until the released weights are available): a small NLSN with random
weights (``CONFIG``: 8 ResBlocks, 64 channels, hence 2 NLSA modules; 4 hashes, chunk 144,
rgb_range 1; torch seed 0 for the weights) runs on the LR images of the shipped Set5 (MATLAB
bicubic x1/4) once per seed in ``SEEDS``.  A random network's own output is far from the HR image,
which would hide the seed effect in a huge error, so the seed-induced variation
``d_s = out_s - mean_s(out_s)`` is added to a realistic SR image (the MATLAB-bicubic x4
upscaling of the LR image, kept in float so that sub-level changes can flip the rounding), quantised to 8 bit and scored against the HR image with the
``authors`` protocol.  The spread of an image is max - min over the seeds; the reported value is
the maximum over the images.  Trained weights may move more or less than random ones: re-measure
with the real checkpoints (``pcl evaluate --model nlsn --seed S`` for several S) when present.
"""

from __future__ import annotations

import pathlib

import numpy as np
import torch

from pcl.bench import write_bench_csv
from pcl.data.images import list_images, read_image
from pcl.data.imresize import bicubic_degrade, imresize
from pcl.metrics.psnr_ssim import evaluate_pair
from pcl.models import build_model
from pcl.resources import resource_path

CONFIG = dict(n_resblocks=8, n_feats=64, n_hashes=4, chunk_size=144, rgb_range=1.0)
SEEDS = tuple(range(8))
SCALE = 4


def measure(hr_dir: pathlib.Path | None = None, *, seeds: tuple[int, ...] = SEEDS, config: dict | None = None) -> list[dict]:
    """Per-image seed spreads (see the module docstring); one dict per image."""
    hr_dir = hr_dir or resource_path("benchmarks", "Set5", "HR")
    torch.manual_seed(0)
    model = build_model("nlsn", **(config or CONFIG)).eval()
    rows = []
    for path in list_images(hr_dir):
        hr = read_image(path)
        hr = hr[: hr.shape[0] - hr.shape[0] % SCALE, : hr.shape[1] - hr.shape[1] % SCALE]
        lr = bicubic_degrade(hr, SCALE)
        lr3 = np.repeat(lr[:, :, None], 3, axis=2) if lr.ndim == 2 else lr
        x = torch.from_numpy(lr3.transpose(2, 0, 1).copy()).float().unsqueeze(0) / 255.0
        outs = []
        with torch.inference_mode():
            for seed in seeds:
                torch.manual_seed(seed)
                outs.append(model(x)[0].permute(1, 2, 0).double().numpy() * 255.0)
        mean = np.mean(outs, axis=0)
        base = imresize(lr3.astype(np.float64), float(SCALE))  # float: unquantised, so small changes can round
        scores = []
        for out in outs:
            sr = np.clip(np.round(base + (out - mean)), 0, 255).astype(np.uint8)
            scores.append(evaluate_pair(sr, hr, scale=SCALE, protocol="authors"))
        psnr = [s[0] for s in scores]
        ssim = [s[1] for s in scores]
        flips = np.mean([np.mean(np.round(o) != np.round(outs[0])) for o in outs[1:]])
        rows.append({
            "image": path.stem,
            "lr_size": f"{lr.shape[1]}x{lr.shape[0]}",
            "seeds": len(seeds),
            "psnr_spread_db": max(psnr) - min(psnr),
            "ssim_spread": max(ssim) - min(ssim),
            "psnr_mean_db": float(np.mean(psnr)),
            "max_abs_output_diff_0_255": float(max(np.abs(o - outs[0]).max() for o in outs[1:])),
            "fraction_8bit_pixels_changed": float(flips),
        })
    return rows


def run(out_dir: pathlib.Path, *, repeats: int = 1, device: str = "cpu") -> dict:
    """Write ``nlsn_seed.csv`` and return the maxima over images (``repeats``/``device`` unused: CPU only)."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = measure()
    write_bench_csv(out_dir / "nlsn_seed.csv", list(rows[0]), rows)
    return {
        "max_psnr_spread_db": max(r["psnr_spread_db"] for r in rows),
        "max_ssim_spread": max(r["ssim_spread"] for r in rows),
        "max_abs_output_diff_0_255": max(r["max_abs_output_diff_0_255"] for r in rows),
        "config": CONFIG,
        "seeds": list(SEEDS),
        "images": [r["image"] for r in rows],
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
