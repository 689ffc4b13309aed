"""``ModelPredictor``: an SR network as a ``Predictor`` (uint8 LR -> uint8 SR), and its record.

Value path.  The LR image is turned into a float32 N x 3 x H x W tensor the way the EDSR-PyTorch
loaders do it: gray images are replicated to three channels and the 8-bit values are multiplied
by ``rgb_range / 255``.  That is the harness's [0, 1] tensor times the model's rgb_range, computed
in the official order so that the input is bit-identical to the official one (``u * 1.0`` for
rgb_range 255 rather than ``(u / 255) * 255``).  The network's official forward runs under
``torch.inference_mode`` (optionally under autocast), and the output is quantised as the official
``quantize`` helper does: ``* 255 / rgb_range``, clamp to [0, 255], round half to even, uint8.

Non-finite outputs.  ``clamp`` keeps NaN and the uint8 cast turns it into 0, so a diverged
network (NaN weights, an fp16 overflow) would otherwise give black images that are scored as a
low but ordinary PSNR.  Every output is therefore checked before it is quantised, and a NaN or
inf value is a ``NonFiniteOutput`` (a ``PCLError``) naming the checkpoint and the image, raised
before the caller can score or save anything of that image.

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
#: Attribute ``pcl.inference.load_model`` sets on the networks it loads: the checkpoint file, so
#: that a predictor built from the network alone can name it in its messages.
SOURCE_ATTR = "pcl_checkpoint"


class NonFiniteOutput(PCLError):
    """An SR output holds NaN or inf values: the model is broken, its numbers would be meaningless.

    ``named(image)`` gives the same error with the image's name, for a caller that knows it
    (the predictor only sees pixels, and numbers the images it was given).
    """

    def __init__(self, *, source: str, image: str, bad: int, total: int, precision: str = "fp32") -> None:
        self.source, self.image, self.bad, self.total, self.precision = source, image, bad, total, precision
        hint = "" if precision == "fp32" else f" or rerun with --precision fp32 (this run used {precision})"
        super().__init__(
            f"{source}: the SR output of {image} has {bad} of {total} values NaN or inf, so the model is not "
            f"scored (its numbers and images would be meaningless); check those weights (a diverged training run "
            f"or a damaged file){hint}"
        )

    def __reduce__(self):  # keyword-only fields: rebuilt the same way when a worker process sends it back
        return (_non_finite_output, (self.source, self.image, self.bad, self.total, self.precision))

    def named(self, name: str) -> "NonFiniteOutput":
        """This error with the image called ``name`` (its position stays in the message)."""
        return NonFiniteOutput(source=self.source, image=f"image {name} ({self.image})", bad=self.bad,
                               total=self.total, precision=self.precision)


def _non_finite_output(source: str, image: str, bad: int, total: int, precision: str) -> NonFiniteOutput:
    return NonFiniteOutput(source=source, image=image, bad=bad, total=total, precision=precision)


def check_finite_output(sr: Tensor, *, source: str, image: str, precision: str = "fp32") -> None:
    """Raise ``NonFiniteOutput`` when ``sr`` holds a NaN or inf value (one reduction, no copy)."""
    finite = torch.isfinite(sr)
    if bool(finite.all()):
        return
    raise NonFiniteOutput(source=source, image=image, bad=int((~finite).sum()), total=int(sr.numel()),
                          precision=precision)


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
    """(1, 3, H, W) float -> uint8 (H, W, 3): ``* to_255``, clamp [0, 255], round half to even.

    NaN survives the clamp and becomes 0: callers check the output first (``check_finite_output``).
    """
    out = sr.detach().float().mul(to_255).clamp_(0.0, 255.0).round_()
    return out[0].permute(1, 2, 0).to(device="cpu", dtype=torch.uint8).numpy()


@dataclass
class ModelPredictor:
    """A ``Predictor`` (uint8 LR -> uint8 SR) around an SR network, with the chosen settings.

    Counts the images it processed and the seconds spent inside it (``images``, ``seconds``)
    so that the caller can report throughput.  ``source`` names the weights in error messages
    (default: the checkpoint ``load_model`` read, else ``name``); an output with NaN or inf values
    raises ``NonFiniteOutput`` instead of being returned.
    """

    model: nn.Module
    settings: InferenceSettings = field(default_factory=InferenceSettings)
    name: str = "model"
    images: int = 0
    seconds: float = 0.0
    source: str | None = None

    def __post_init__(self) -> None:
        if self.source is None:
            checkpoint = getattr(self.model, SOURCE_ATTR, None)
            self.source = f"checkpoint {checkpoint}" if checkpoint else self.name
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
        out = self.run(x)
        height, width = x.shape[-2:]
        check_finite_output(out, source=str(self.source), image=f"image #{self.images + 1} (LR {width}x{height})",
                            precision=self.settings.precision)
        sr = tensor_to_image(out, to_255=255.0 / self.rgb_range)
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
