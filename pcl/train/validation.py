"""In-training validation: PSNR/SSIM on the Y channel (matlab protocol) of a few benchmark images.

The network runs through the inference predictor (``pcl.inference.ModelPredictor``: fp32, eval
mode, ``inference_mode``, the official value scale and output quantisation), the path that
scores every model in the tables.  Two things are the trainer's own:

* the input is the LR image as training feeds it (``to_float``: uint8 / 255 on the device, times
  the network's rgb_range as its ``forward`` does); for rgb_range 1 (NLSN) the predictor's own
  ``uint8 * (1 / 255)`` differs in the last bit, and validation must score the network on the
  values it is trained on;
* the random streams: validation runs under ``fork_rng`` with torch seeded once (NLSN draws
  random rotations in every forward), so training continues on exactly the streams it would have
  had without validating.

A NaN or inf output is a ``pcl.inference.NonFiniteOutput`` naming ``source`` (the weights being
validated) and the image: the black image NaN quantises to would otherwise score as an ordinary
low PSNR and could be saved as the best weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pcl.train.data import to_float


@dataclass
class ValidationSet:
    """Benchmark images for in-training validation (HR mod-cropped, LR by MATLAB bicubic)."""

    dataset: str
    names: list[str] = field(default_factory=list)
    hr: list[np.ndarray] = field(default_factory=list)
    lr: list[np.ndarray] = field(default_factory=list)


def load_validation(hr_dir: Path, *, dataset: str, scale: int, limit: int | None) -> ValidationSet:
    """The first ``limit`` images of ``hr_dir`` (sorted by name) with their LR inputs."""
    from pcl.evaluate import iter_pairs

    out = ValidationSet(dataset=dataset)
    for pair in iter_pairs(Path(hr_dir), scale=scale):
        if limit is not None and len(out.names) >= limit:
            break
        h, w = pair.hr.shape[:2]
        out.names.append(pair.name)
        out.hr.append(pair.hr[: h - h % scale, : w - w % scale])
        out.lr.append(pair.lr if pair.lr.ndim == 3 else np.repeat(pair.lr[:, :, None], 3, axis=2))
    return out


def load_validation_set(dataset: str, *, scale: int, limit: int | None) -> ValidationSet:
    """The first ``limit`` HR images of a shipped benchmark (``resources/benchmarks``) with their LR inputs."""
    from pcl.resources import resource_path

    return load_validation(resource_path("benchmarks", dataset, "HR"), dataset=dataset, scale=scale, limit=limit)


def validate(model: nn.Module, validation: ValidationSet, device: torch.device, *, scale: int,
             source: str = "model") -> dict[str, Any]:
    """Mean and per-image PSNR/SSIM of ``model`` on ``validation``; the model's mode is restored.
    ``source`` names the weights in the error raised for a NaN or inf output."""
    from pcl.inference import InferenceSettings, ModelPredictor, check_finite_output, tensor_to_image
    from pcl.metrics import evaluate_pair

    was_training = model.training
    rows = []
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        predictor = ModelPredictor(model, InferenceSettings(device=str(device), precision="fp32", seed=None))
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            for name, hr, lr in zip(validation.names, validation.hr, validation.lr):
                batch = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None]
                x = to_float(batch, device).mul_(predictor.rgb_range)
                out = predictor.run(x)
                check_finite_output(out, source=source, image=f"{validation.dataset} image {name}")
                sr = tensor_to_image(out, to_255=255.0 / predictor.rgb_range)
                psnr, ssim = evaluate_pair(sr, hr, scale=scale, protocol="matlab")
                rows.append({"image": name, "psnr": float(psnr), "ssim": float(ssim), "height": int(hr.shape[0]),
                             "width": int(hr.shape[1])})
    finally:
        model.train(was_training)
    return {"dataset": validation.dataset, "protocol": "matlab", "images": len(rows),
            "psnr": float(np.mean([r["psnr"] for r in rows])), "ssim": float(np.mean([r["ssim"] for r in rows])),
            "rows": rows}
