"""Running an SR network on benchmark images: model -> ``Predictor`` (uint8 LR -> uint8 SR).

Why a module of its own: every model-based number in the tables (released checkpoints, our
fine-tunes, smoke runs) must come from one inference path whose options are explicit and recorded.
The options that change outputs are exactly the ones the official test loops have (spec
backbones.md 1.5): tiled/chopped inference, x8 self-ensemble, reduced precision, and, for NLSN,
the random rotations drawn in every forward (spec 6.3).

Value path.  The LR image is turned into a float32 N x 3 x H x W tensor the way the EDSR-PyTorch
loaders do it: gray images are replicated to three channels and the 8-bit values are multiplied
by ``rgb_range / 255``.  That is the harness's [0, 1] tensor times the model's rgb_range, computed
in the official order so that the input is bit-identical to the official one (``u * 1.0`` for
rgb_range 255 rather than ``(u / 255) * 255``).  The network's official forward runs under
``torch.inference_mode`` (optionally under autocast), and the output is quantised as the official
``quantize`` helper does: ``* 255 / rgb_range``, clamp to [0, 255], round half to even, uint8.

Tiling.  ``tile`` LR pixels per tile, each tile run with ``tile_overlap`` pixels of context on
every side that the image has, and only the tile's own (centre) region kept.  For a purely local
network (EDSR) whose receptive-field radius is at most the overlap, the stitched image equals the
whole-image forward (``receptive_field_radius``; exactly, bit for bit, with PyTorch's native
convolution; oneDNN picks size-dependent algorithms that differ by float rounding, ~1e-5 on the
0..255 scale).  RCAN/HAN channel attention, HAN layer attention and NLSN attention pool over the
whole image, so tiling changes their outputs: it is refused for them unless explicitly allowed,
and always recorded in the results sidecar.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pcl.errors import PCLError

#: Precisions ``--precision`` accepts; fp32 runs without autocast.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: SR backbones ``pcl evaluate --model`` accepts (``auto`` reads the architecture from the checkpoint).
SR_MODELS: tuple[str, ...] = ("edsr-s", "edsr-l", "rcan", "han", "nlsn")
#: Aliases of the factory that name the same preset as an ``SR_MODELS`` entry.
_PRESET_ALIASES = {"edsr": "edsr-s", "edsr-baseline": "edsr-s"}
#: The official ``forward_chop`` constants (EDSR-PyTorch src/model/__init__.py).
CHOP_SHAVE = 10
CHOP_MIN_SIZE = 160_000
#: Default context around a tile of a globally coupled model (the chop shave, in LR pixels).
DEFAULT_GLOBAL_OVERLAP = CHOP_SHAVE

Forward = Callable[[Tensor], Tensor]


# --------------------------------------------------------------------------------------------
# What a model is: local or global, random or deterministic
# --------------------------------------------------------------------------------------------


def is_tile_invariant(model: nn.Module) -> bool:
    """True for networks whose output pixels depend only on a bounded LR neighbourhood (EDSR)."""
    from pcl.models import EDSR

    return isinstance(model, EDSR)


def is_stochastic(model: nn.Module) -> bool:
    """True when a forward draws random numbers (NLSN's hashing rotations, spec 6.3)."""
    from pcl.models import NLSN

    return isinstance(model, NLSN)


def receptive_field_radius(model: nn.Module) -> int | None:
    """LR-pixel radius of the neighbourhood an output pixel depends on; None for global models.

    Why computed and not a constant: the overlap that makes tiling exact grows with depth
    (EDSR-S: 36, EDSR-L: 68).  Every 3x3 convolution before the upsampler adds its padding; the
    convolutions after each PixelShuffle add a fraction of an LR pixel, which is tracked exactly
    with integer intervals from an HR pixel back to the LR grid (the worst sub-pixel position
    counts).  Closed form for EDSR at x2/x3/x4: 2 * n_resblocks + 4.
    """
    if not is_tile_invariant(model):
        return None
    lr_radius = 0
    for part in (model.head, model.body):
        lr_radius += sum(int(m.padding[0]) for m in part.modules() if isinstance(m, nn.Conv2d))
    # tail: upsampler stages then the output conv, in forward order
    ops: list[tuple[str, int]] = []
    for module in model.tail.modules():
        if isinstance(module, nn.Conv2d):
            ops.append(("conv", int(module.padding[0])))
        elif isinstance(module, nn.PixelShuffle):
            ops.append(("shuffle", int(module.upscale_factor)))
    worst = 0
    for p in range(model.scale):  # HR sub-pixel positions of LR pixel 0
        lo = hi = p
        for kind, value in reversed(ops):
            if kind == "conv":
                lo, hi = lo - value, hi + value
            else:
                lo, hi = lo // value, hi // value
        worst = max(worst, -lo, hi)
    return lr_radius + worst


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceSettings:
    """Every option that can change an SR output; all of it goes into the results sidecar.

    ``tile_overlap`` None means: the receptive-field radius for local models (exact tiling),
    ``DEFAULT_GLOBAL_OVERLAP`` for global ones (only with ``allow_global_tiling``).
    ``seed`` is applied with ``torch.manual_seed`` before every image (None: never seeded).
    """

    device: str = "cpu"
    precision: str = "fp32"
    tile: int | None = None
    tile_overlap: int | None = None
    allow_global_tiling: bool = False
    chop: bool = False
    self_ensemble: bool = False
    seed: int | None = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda[:i]``; PCLError when CUDA is asked for and not there."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise PCLError(f"unknown device {name!r}; use cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise PCLError(f"unsupported device {name!r}; use cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PCLError(f"--device {name}: no CUDA device is visible to torch {torch.__version__}; use --device cpu")
    return device


def check_settings(model: nn.Module, settings: InferenceSettings, *, name: str = "model") -> InferenceSettings:
    """Validate ``settings`` for ``model`` and fill in the default overlap.

    Refuses: unknown precision, fp16 on the CPU, a non-positive tile or negative overlap, tiling
    together with chop, and tiling a globally coupled model (RCAN, HAN, NLSN) without
    ``allow_global_tiling``.
    """
    if settings.precision not in PRECISIONS:
        raise PCLError(f"unknown precision {settings.precision!r}; use one of {', '.join(PRECISIONS)}")
    device = resolve_device(settings.device)
    if settings.precision == "fp16" and device.type != "cuda":
        raise PCLError("--precision fp16 needs --device cuda (CPU autocast supports bf16 only); use bf16 or fp32 on the CPU")
    if settings.seed is not None and not (0 <= int(settings.seed) < 2**63):
        raise PCLError(f"--seed must be a non-negative integer, got {settings.seed!r}")
    if settings.tile is None:
        if settings.tile_overlap is not None:
            raise PCLError("--tile-overlap needs --tile N (the tile size in LR pixels)")
        return settings
    if settings.chop:
        raise PCLError("--tile and --chop are two tiling schemes; choose one")
    if int(settings.tile) < 1:
        raise PCLError(f"--tile must be a positive number of LR pixels, got {settings.tile!r}")
    radius = receptive_field_radius(model)
    if radius is None and not settings.allow_global_tiling:
        raise PCLError(
            f"--tile on {name}: its attention pools over the whole image, so tiles change the output "
            "(spec backbones.md 4.2, 5.2, 6.3); tiling is off for rcan, han and nlsn unless you pass "
            "--allow-global-tiling (the tile setting is then recorded with the results)"
        )
    overlap = settings.tile_overlap
    if overlap is None:
        overlap = radius if radius is not None else DEFAULT_GLOBAL_OVERLAP
    if int(overlap) < 0:
        raise PCLError(f"--tile-overlap must be >= 0, got {overlap!r}")
    return replace(settings, tile=int(settings.tile), tile_overlap=int(overlap))


# --------------------------------------------------------------------------------------------
# Tensor conversion
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Forward wrappers (each takes and returns tensors on the model's value scale)
# --------------------------------------------------------------------------------------------


def _splits(length: int, tile: int) -> list[tuple[int, int]]:
    """Near-equal tiles of at most ``tile`` pixels covering [0, length) (no sliver at the end)."""
    count = max(1, math.ceil(length / tile))
    bounds = [round(i * length / count) for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(count)]


def forward_tiled(forward: Forward, x: Tensor, *, scale: int, tile: int, overlap: int) -> Tensor:
    """Run ``forward`` on overlapping LR tiles and keep each tile's own region of the output.

    Each tile [y0, y1) x [x0, x1) is cropped with ``overlap`` extra pixels on every side that
    exists; the output rows/columns of the tile proper are copied, so every output pixel comes from
    exactly one tile (no blending).
    """
    _, _, height, width = x.shape
    out: Tensor | None = None
    for y0, y1 in _splits(height, tile):
        for x0, x1 in _splits(width, tile):
            cy0, cy1 = max(0, y0 - overlap), min(height, y1 + overlap)
            cx0, cx1 = max(0, x0 - overlap), min(width, x1 + overlap)
            part = forward(x[:, :, cy0:cy1, cx0:cx1])
            if out is None:
                out = part.new_empty(part.shape[0], part.shape[1], height * scale, width * scale)
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = part[
                :, :, (y0 - cy0) * scale : (y1 - cy0) * scale, (x0 - cx0) * scale : (x1 - cx0) * scale
            ]
    assert out is not None
    return out


def forward_chop(
    forward: Forward, x: Tensor, *, scale: int, shave: int = CHOP_SHAVE, min_size: int = CHOP_MIN_SIZE
) -> Tensor:
    """The EDSR-PyTorch ``forward_chop`` (one GPU): four overlapping quadrants, recursively.

    Quadrants are half the LR size plus ``shave`` pixels; they are split again while the image has
    at least ``4 * min_size`` LR pixels.  The RCAN, HAN and NLSN authors evaluate with it
    (spec backbones.md 1.5), so it is offered to reproduce their images, not for exactness.
    """
    height, width = x.shape[-2:]
    top, bottom = slice(0, height // 2 + shave), slice(height - height // 2 - shave, height)
    left, right = slice(0, width // 2 + shave), slice(width - width // 2 - shave, width)
    parts = [x[..., top, left], x[..., top, right], x[..., bottom, left], x[..., bottom, right]]
    if height * width < 4 * min_size:
        outs = [forward(p) for p in parts]
    else:
        outs = [forward_chop(forward, p, scale=scale, shave=shave, min_size=min_size) for p in parts]
    big_h, big_w = height * scale, width * scale
    top, bottom, bottom_r = slice(0, big_h // 2), slice(big_h - big_h // 2, big_h), slice(big_h // 2 - big_h, None)
    left, right, right_r = slice(0, big_w // 2), slice(big_w - big_w // 2, big_w), slice(big_w // 2 - big_w, None)
    out = outs[0].new_empty(outs[0].shape[0], outs[0].shape[1], big_h, big_w)
    out[..., top, left] = outs[0][..., top, left]
    out[..., top, right] = outs[1][..., top, right_r]
    out[..., bottom, left] = outs[2][..., bottom_r, left]
    out[..., bottom, right] = outs[3][..., bottom_r, right_r]
    return out


def _transform(x: Tensor, index: int) -> Tensor:
    """Geometric transform ``index`` (0..7) of the x8 ensemble: bit 0 flips W, bit 1 flips H,
    bit 2 transposes (applied in that order, as EDSR-PyTorch builds its list)."""
    if index & 1:
        x = x.flip(-1)
    if index & 2:
        x = x.flip(-2)
    if index & 4:
        x = x.transpose(-2, -1)
    return x


def _untransform(y: Tensor, index: int) -> Tensor:
    """Inverse of ``_transform`` (transpose first, then the flips)."""
    if index & 4:
        y = y.transpose(-2, -1)
    if index & 2:
        y = y.flip(-2)
    if index & 1:
        y = y.flip(-1)
    return y


def forward_self_ensemble(forward: Forward, x: Tensor) -> Tensor:
    """x8 self-ensemble (EDSR "+"): mean of the 8 flip/transpose outputs, each transformed back."""
    outs = [_untransform(forward(_transform(x, i).contiguous()), i) for i in range(8)]
    return torch.stack(outs, dim=0).mean(dim=0)


# --------------------------------------------------------------------------------------------
# Predictor
# --------------------------------------------------------------------------------------------


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
        # Official value scale (spec 1.1): input u8 * R/255, output * 255/R.  Plain modules: [0, 1].
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


# --------------------------------------------------------------------------------------------
# Loading a model for evaluation
# --------------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed (checkpoints are up to a few hundred MB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _preset(name: str) -> str:
    """Canonical SR preset of a factory name (edsr/edsr-baseline -> edsr-s); PCLError otherwise."""
    from pcl.models import canonical_name

    key = str(name).strip().lower().replace("_", "-")
    if key == "auto":
        return key
    try:
        key = canonical_name(key)
    except PCLError:
        raise PCLError(f"unknown model {name!r}; use one of bicubic, {', '.join(SR_MODELS)} or auto") from None
    key = _PRESET_ALIASES.get(key, key)
    if key not in SR_MODELS:
        raise PCLError(f"{name!r} is not a super-resolution model; use one of bicubic, {', '.join(SR_MODELS)} or auto")
    return key


def _sidecar_preset(architecture: str, config: dict[str, Any]) -> str:
    """Preset of a harness checkpoint: the sidecar's architecture, except that the generic ``edsr``
    name is resolved to EDSR-L when its width and depth are EDSR-L's (else EDSR-S)."""
    if architecture == "embedding":
        return architecture
    preset = _preset(architecture)
    if architecture in _PRESET_ALIASES:
        from pcl.models import PAPER_CONFIGS

        large = PAPER_CONFIGS["edsr-l"]
        if all(config.get(k) == large[k] for k in ("n_feats", "n_resblocks")):
            return "edsr-l"
    return preset


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for evaluation and what identifies it."""

    model: nn.Module
    backbone: str
    checkpoint: Path
    sha256: str
    config: dict[str, Any]
    source: str
    """'harness sidecar' (safetensors + json), 'named' (--model NAME) or 'auto (best fit)'."""


def load_model(name: str, checkpoint: str | Path) -> LoadedModel:
    """Build the SR network ``name`` (or ``auto``) and strictly load ``checkpoint`` into it.

    * A harness checkpoint (``.safetensors`` with its ``<stem>.json`` sidecar) is rebuilt from the
      sidecar's architecture and config; ``name`` must then agree with the sidecar (or be ``auto``).
    * Any other file (official ``.pt``, bare safetensors) is loaded into the paper configuration of
      ``name``; a key/shape mismatch raises the loader's message (missing, unexpected, best fit).
      ``auto`` picks the paper architecture that fits every key, or refuses.
    """
    from pcl.models import PAPER_CONFIGS, build_model
    from pcl.models.checkpoints import (
        best_fitting_arch,
        load_checkpoint,
        load_into,
        load_state_dict_file,
        normalise_state_dict,
        sidecar_path,
    )

    preset = _preset(name)
    path = Path(checkpoint)
    if not path.is_file():
        raise PCLError(f"checkpoint file {path} not found; check --checkpoint (or run `pcl checkpoints list`)")
    if path.suffix == ".safetensors" and sidecar_path(path).is_file():
        model, meta = load_checkpoint(path)
        arch = _sidecar_preset(meta["architecture"], meta.get("config") or {})
        if arch not in SR_MODELS:
            raise PCLError(f"checkpoint {path} holds a {meta['architecture']!r} network, not a super-resolution model")
        if preset not in ("auto", arch):
            raise PCLError(
                f"checkpoint {path} was saved as architecture {arch!r} (sidecar {sidecar_path(path)}), "
                f"not {preset!r}; use --model {arch} or --model auto"
            )
        return LoadedModel(model, arch, path, file_sha256(path), dict(meta["config"]), "harness sidecar")
    if preset == "auto":
        state_dict = normalise_state_dict(load_state_dict_file(path), source=str(path))
        fit, _, matched, total = best_fitting_arch(state_dict)
        fit = _PRESET_ALIASES.get(fit, fit)
        if fit not in SR_MODELS or matched != total or len(state_dict) != total:
            raise PCLError(
                f"--model auto: {path} has no harness sidecar and fits no paper architecture exactly "
                f"(best fit {fit}: {matched}/{total} keys); name the architecture with --model"
            )
        model = build_model(fit)
        load_into(model, state_dict, arch_name=fit)
        return LoadedModel(model, fit, path, file_sha256(path), dict(PAPER_CONFIGS[fit]), "auto (best fit)")
    model = build_model(preset)
    load_into(model, path, arch_name=preset)
    return LoadedModel(model, preset, path, file_sha256(path), dict(PAPER_CONFIGS[preset]), "named")


def write_sidecar(csv_path: Path, payload: dict[str, Any]) -> Path:
    """Write ``<csv stem>.json`` beside a result CSV (atomically)."""
    from pcl.atomic import atomic_write_text

    path = Path(csv_path).with_suffix(".json")
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
