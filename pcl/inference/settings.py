"""What a network is (local or global, random or not) and the validated inference settings.

Why a module of its own: the options that change outputs are exactly the ones the official test
loops have (docs/backbones.md §1.5), and whether an option is safe depends on the network:
tiling is exact only for a purely local network (EDSR) whose receptive-field radius is at most
the overlap, while RCAN/HAN channel attention, HAN layer attention and NLSN attention pool over
the whole image, so tiling them is refused unless explicitly allowed.  Every setting is checked
here once, before the first image, and then recorded with the results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from torch import nn

from pcl.device import resolve_device
from pcl.errors import PCLError
from pcl.inference.forward import CHOP_SHAVE

#: Precisions ``--precision`` accepts; fp32 runs without autocast.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
#: Default context around a tile of a globally coupled model (the chop shave, in LR pixels).
DEFAULT_GLOBAL_OVERLAP = CHOP_SHAVE


def is_tile_invariant(model: nn.Module) -> bool:
    """True for networks whose output pixels depend only on a bounded LR neighbourhood (EDSR)."""
    from pcl.models import EDSR

    return isinstance(model, EDSR)


def is_stochastic(model: nn.Module) -> bool:
    """True when a forward draws random numbers (NLSN's hashing rotations, docs/backbones.md §6.3)."""
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
            "(docs/backbones.md §4.2, §5.2, §6.3); tiling is off for rcan, han and nlsn unless you pass "
            "--allow-global-tiling (the tile setting is then recorded with the results)"
        )
    overlap = settings.tile_overlap
    if overlap is None:
        overlap = radius if radius is not None else DEFAULT_GLOBAL_OVERLAP
    if int(overlap) < 0:
        raise PCLError(f"--tile-overlap must be >= 0, got {overlap!r}")
    return replace(settings, tile=int(settings.tile), tile_overlap=int(overlap))
