"""Prepare benchmark folders for evaluation: verify by content, then cache the x`scale` LR images.

Why a separate step: verification and LR generation happen once per dataset, and every method
(bicubic, released checkpoints, trained runs) then reads the *same* LR files, so no method can
be scored on a different degradation.  The LR images are made with our MATLAB-exact imresize,
as the standard benchmark packages were.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pcl.atomic import atomic_write_text
from pcl.data.images import list_images, read_image, write_png
from pcl.data.imresize import bicubic_degrade
from pcl.data.verify import require_verified

log = logging.getLogger(__name__)


def _write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically so an interrupted run never leaves a half-written marker."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def prepare_benchmark(
    hr_dir: Path, dataset: str, out_dir: Path, *, scale: int, verify: bool = True
) -> dict:
    """Verify ``hr_dir`` against the manifest and write LR images to ``out_dir/LR``.

    Returns (and writes to ``out_dir/prepare.json``) a summary: image count, the verification
    line and where the LR images are.  A corrupt or modified image stops here with an error
    that names the file.
    """
    hr_dir, out_dir = Path(hr_dir), Path(out_dir)
    verification = require_verified(hr_dir, dataset).summary() if verify else "not verified (--no-verify)"
    log.info("%s: %s", dataset, verification)
    lr_dir = out_dir / "LR"
    lr_dir.mkdir(parents=True, exist_ok=True)
    images = list_images(hr_dir)
    for path in tqdm(images, desc=f"prepare {dataset} x{scale}", unit="img", leave=False):
        lr = bicubic_degrade(read_image(path), scale)
        write_png(lr_dir / f"{path.stem}.png", lr)
    summary = {
        "dataset": dataset,
        "scale": scale,
        "hr_dir": str(hr_dir),
        "lr_dir": str(lr_dir),
        "images": len(images),
        "verification": verification,
        "degradation": "MATLAB bicubic (pcl.data.imresize), HR mod-cropped to a multiple of the scale",
    }
    _write_json(out_dir / "prepare.json", summary)
    return summary


def compare_official_lr(hr_dir: Path, lr_dir: Path, *, scale: int, limit: int | None = None) -> dict:
    """Compare our LR with an official (MATLAB-made) LR set, e.g. DIV2K_train_LR_bicubic/X4.

    Why: it is the only MATLAB ground truth available offline; a max difference of 0 or 1 grey
    level (MATLAB rounds between its two 1-D passes on uint8) confirms the degradation.
    """
    hr_files = list_images(Path(hr_dir))[:limit]
    lr_files = {p.stem.lower().removesuffix(f"x{scale}"): p for p in list_images(Path(lr_dir))}
    hist = np.zeros(256, dtype=np.int64)
    compared = 0
    for path in tqdm(hr_files, desc="compare official LR", unit="img", leave=False):
        official_path = lr_files.get(path.stem.lower())
        if official_path is None:
            continue
        ours = bicubic_degrade(read_image(path), scale).astype(np.int16)
        official = read_image(official_path).astype(np.int16)
        if ours.shape != official.shape:
            log.warning("%s: shape %s differs from official %s", path.name, ours.shape, official.shape)
            continue
        hist += np.bincount(np.abs(ours - official).ravel(), minlength=256)
        compared += 1
    nonzero = np.nonzero(hist)[0]
    return {
        "images_compared": compared,
        "max_abs_diff": int(nonzero.max()) if nonzero.size else 0,
        "fraction_equal": float(hist[0] / hist.sum()) if hist.sum() else float("nan"),
        "histogram": {int(k): int(hist[k]) for k in nonzero},
    }
