"""VGG-19 feature extractor for the VGG configuration of P-J Table IV (spec method.md 2.4).

Why our own module: the harness does not depend on torchvision, but the released ``VGGInfoNCE``
uses torchvision's ImageNet VGG-19.  ``VGG19Features`` is an ``nn.Sequential`` with exactly the
layout of torchvision's ``vgg19().features`` (configuration "E": 16 conv3x3+ReLU, 5 max-pools), so
its state_dict keys are the same (``0.weight``, ``0.bias``, ``2.weight``, ...; convolutions at
indices 0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34) and torchvision's weight file
loads into it.

Taps (spec 2.4): relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 = outputs of modules 1, 6, 11, 20, 29,
numbered 0-4 for the ``layers`` setting.  ``taps`` stops after the deepest requested one.

Input: RGB.  ``normalize=True`` applies the ImageNet mean/std to [0, 1] input (what the network
was trained on; our paper-mode choice).  The released code feeds [0, R] unnormalised; do that
with ``normalize=False`` and the input multiplied by R.

Pretrained weights: ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`` (torchvision's file name;
TORCH_HOME defaults to $XDG_CACHE_HOME/torch or ~/.cache/torch), loaded with weights_only=True.
The harness never downloads them; a missing file is a PCLError that names the path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from pcl.errors import PCLError

#: torchvision configuration "E" (VGG-19): channels, 'M' = 2x2 max-pool.
VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)
#: Indices of the conv layers in ``features`` (checked against torchvision's module listing).
VGG19_CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
#: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
VGG19_TAPS: tuple[int, ...] = (1, 6, 11, 20, 29)
VGG19_TAP_NAMES: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: torchvision's file name of the ImageNet weights (the hash prefix is part of the name).
VGG19_WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class VGG19Features(nn.Sequential):
    """torchvision ``vgg19().features`` layout, plus ImageNet normalisation and tap extraction.

    Parameters are frozen (requires_grad False): the VGG embedding is never trained, and the
    gradient of a loss on its features reaches the *input* only.
    """

    def __init__(self, normalize: bool = True, frozen: bool = True) -> None:
        layers: list[nn.Module] = []
        in_channels = 3
        for item in VGG19_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1))
                layers.append(nn.ReLU(inplace=False))
                in_channels = int(item)
        super().__init__(*layers)
        self.normalize = bool(normalize)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if frozen:
            self.requires_grad_(False)

    def __getitem__(self, index):  # a slice is a plain Sequential of the same modules (no re-init)
        if isinstance(index, slice):
            return nn.Sequential(*list(self._modules.values())[index])
        return super().__getitem__(index)

    def prepare(self, x: Tensor) -> Tensor:
        """ImageNet normalisation when enabled; identity otherwise."""
        if self.normalize:
            return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return x

    def taps(self, x: Tensor, layers: tuple[int, ...] | list[int] = (0, 1, 2, 3, 4)) -> list[Tensor]:
        """Features at the requested taps (0 = relu1_1 ... 4 = relu5_1), in the requested order."""
        for index in layers:
            if not 0 <= index < len(VGG19_TAPS):
                raise PCLError(f"vgg19: tap index {index} out of range (valid 0..{len(VGG19_TAPS) - 1})")
        wanted = {VGG19_TAPS[i]: i for i in layers}
        last = max(wanted)
        found: dict[int, Tensor] = {}
        h = self.prepare(x)
        for position, module in enumerate(self):
            h = module(h)
            if position in wanted:
                found[wanted[position]] = h
            if position == last:
                break
        return [found[i] for i in layers]

    def forward(self, x: Tensor) -> Tensor:  # the full feature stack, as torchvision's ``features``
        return super().forward(self.prepare(x))


def torch_home() -> Path:
    """torch.hub's cache root: $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "torch"


def vgg19_weights_path() -> Path:
    """Where the ImageNet weights are expected: <torch home>/hub/checkpoints/vgg19-dcbb9e9d.pth."""
    return torch_home() / "hub" / "checkpoints" / VGG19_WEIGHTS_FILE


def features_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keep the ``features.*`` entries of a full torchvision VGG state_dict (prefix removed);
    a features-only dict passes through."""
    if any(k.startswith("features.") for k in state):
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def load_vgg19_pretrained(model: VGG19Features, path: str | Path | None = None) -> VGG19Features:
    """Load the ImageNet weights (torchvision's file) into ``model`` strictly; PCLError if missing."""
    path = Path(path) if path is not None else vgg19_weights_path()
    if not path.is_file():
        raise PCLError(
            f"vgg19: pretrained weights not found at {path}; place torchvision's {VGG19_WEIGHTS_FILE} "
            "there (or set TORCH_HOME) to use the VGG embedding"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with non-tensor objects, ...
        raise PCLError(f"vgg19: cannot read {path} ({exc.__class__.__name__}: {exc}); re-download it") from None
    try:
        model.load_state_dict(features_state_dict(state), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise PCLError(f"vgg19: {path} does not hold VGG-19 features weights ({first})") from None
    return model


def build_vgg19(normalize: bool = True, pretrained: bool = True, path: str | Path | None = None) -> VGG19Features:
    """VGG-19 features, frozen; ImageNet weights when ``pretrained`` (PCLError naming the file if absent)."""
    model = VGG19Features(normalize=normalize)
    if pretrained:
        load_vgg19_pretrained(model, path)
    return model
