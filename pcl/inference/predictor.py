"""``ModelPredictor``: an SR network as a ``Predictor`` (uint8 LR -> uint8 SR), and its record.

Value path.  The LR image is turned into a float32 N x 3 x H x W tensor the way the EDSR-PyTorch
loaders do it: gray images are replicated to three channels and the 8-bit values are multiplied
by ``rgb_range / 255``.  That is the harness's [0, 1] tensor times the model's rgb_range, computed
in the official order so that the input is bit-identical to the official one (``u * 1.0`` for
rgb_range 255 rather than ``(u / 255) * 255``).  The network's official forward runs under
``torch.inference_mode`` (optionally under autocast), and the output is quantised as the official
``quantize`` helper does: ``* 255 / rgb_range``, clamp to [0, 255], round half to even, uint8.

Record.  Every option that changed the outputs is written beside them: ``describe`` gives the
settings and model facts, ``write_sidecar`` puts them in ``<csv stem>.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pcl.errors import PCLError
from pcl.inference.forward import Forward, forward_chop, forward_self_ensemble, forward_tiled
from pcl.inference.settings import (
    InferenceSettings,
    check_settings,
    is_stochastic,
    is_tile_invariant,
    receptive_field_radius,
    resolve_device,
)

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def image_to_tensor(lr: np.ndarray, *, value_scale: float = 1.0 / 255.0) -> Tensor:
    """uint8 (H, W) or (H, W, 3) -> float32 (1, 3, H, W) times ``value_scale``; gray replicated."""
    arr = np.asarray(lr)
    if arr.dtype != np.uint8:
        raise PCLError(f"LR image has dtype {arr.dtype}; the predictor takes 8-bit images")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise PCLError(f"LR image has shape {arr.shape}; expected (H, W) gray or (H, W, 3) RGB")
    tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().unsqueeze(0)
    return tensor.mul_(value_scale)


def tensor_to_image(sr: Tensor, *, to_255: float = 255.0) -> np.ndarray:
    """(1, 3, H, W) float -> uint8 (H, W, 3): ``* to_255``, clamp [0, 255], round half to even."""
    out = sr.detach().float().mul(to_255).clamp_(0.0, 255.0).round_()
    return out[0].permute(1, 2, 0).to(device="cpu", dtype=torch.uint8).numpy()


@dataclass
class ModelPredictor:
    """A ``Predictor`` (uint8 LR -> uint8 SR) around an SR network, with the chosen settings.

    Counts the images it processed and the seconds spent inside it (``images``, ``seconds``)
    so that the caller can report throughput.
    """

    model: nn.Module
    settings: InferenceSettings = field(default_factory=InferenceSettings)
    name: str = "model"
    images: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.settings = check_settings(self.model, self.settings, name=self.name)
        self.device = resolve_device(self.settings.device)
        self.model = self.model.to(self.device).eval()
        self.scale = int(getattr(self.model, "scale", 4))
        # Official value scale (docs/backbones.md §1.1): input u8 * R/255, output * 255/R.  Plain modules: [0, 1].
        self.rgb_range = float(getattr(self.model, "rgb_range", 1.0)) if hasattr(self.model, "forward_official") else 1.0
        self._net: Forward = getattr(self.model, "forward_official", self.model)

    @property
    def stochastic(self) -> bool:
        return is_stochastic(self.model)

    @property
    def tile_invariant(self) -> bool:
        return is_tile_invariant(self.model)

    def _forward(self, x: Tensor) -> Tensor:
        precision = self.settings.precision
        if precision == "fp32":
            return self._net(x)
        with torch.autocast(device_type=self.device.type, dtype=_AUTOCAST_DTYPES[precision]):
            return self._net(x).float()

    def _tiled(self, x: Tensor) -> Tensor:
        s = self.settings
        if s.tile is not None:
            return forward_tiled(self._forward, x, scale=self.scale, tile=s.tile, overlap=int(s.tile_overlap or 0))
        if s.chop:
            return forward_chop(self._forward, x, scale=self.scale)
        return self._forward(x)

    def run(self, x: Tensor) -> Tensor:
        """SR of an (N, 3, H, W) tensor on the model's value scale (seeded first when configured)."""
        if self.settings.seed is not None:
            torch.manual_seed(int(self.settings.seed))
        with torch.inference_mode():
            x = x.to(self.device)
            if self.settings.self_ensemble:
                return forward_self_ensemble(self._tiled, x)
            return self._tiled(x)

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        x = image_to_tensor(lr, value_scale=self.rgb_range / 255.0)
        sr = tensor_to_image(self.run(x), to_255=255.0 / self.rgb_range)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - t0
        self.images += 1
        return sr

    def describe(self) -> dict[str, Any]:
        """Settings and model facts for the results sidecar."""
        return {
            **self.settings.as_dict(),
            "device_name": device_name(self.device),
            "tile_invariant": self.tile_invariant,
            "receptive_field_radius": receptive_field_radius(self.model),
            "stochastic": self.stochastic,
            "rgb_range": self.rgb_range,
        }


def device_name(device: torch.device) -> str:
    """Human-readable device, e.g. 'cpu (2 threads)' or the CUDA device name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def write_sidecar(csv_path: Path, payload: dict[str, Any]) -> Path:
    """Write ``<csv stem>.json`` beside a result CSV (atomically)."""
    from pcl.atomic import atomic_write_text

    path = Path(csv_path).with_suffix(".json")
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
