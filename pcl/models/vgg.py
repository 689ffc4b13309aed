"""VGG-19 feature extractor for the VGG configuration of P-J Table IV (docs/method.md, embeddings).

The layers are torchvision's own ``vgg19(weights=None).features`` (configuration "E": 16
conv3x3+ReLU, 5 max-pools), wrapped to add ImageNet normalisation and tap extraction, so the
state_dict keys are torchvision's (``0.weight``, ``0.bias``, ``2.weight``, ...; convolutions at
indices 0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34) and its weight file loads
into it.  The released ``VGGInfoNCE`` uses the same ImageNet network.

Taps: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 = outputs of modules 1, 6, 11, 20, 29,
numbered 0-4 for the ``layers`` setting.  ``taps`` stops after the deepest requested one.

Input: RGB.  ``normalize=True`` applies the ImageNet mean/std to [0, 1] input (what the network
was trained on; our paper-mode choice).  The released code feeds [0, R] unnormalised; do that
with ``normalize=False`` and the input multiplied by R.

Pretrained weights: torchvision's ``vgg19-dcbb9e9d.pth`` in the torch.hub cache
(``$TORCH_HOME/hub/checkpoints/``), checked by ``pcl.weights`` (sha256 prefix, then the full
digest pinned by ``pcl weights fetch vgg19``) and loaded with weights_only=True.  The harness never
downloads them during training; a missing file is a PCLError that names the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from pcl.errors import PCLError

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
        import torchvision

        layers = list(torchvision.models.vgg19(weights=None).features)
        for layer in layers:  # torchvision's ReLUs work in place; taps keep every activation intact
            if isinstance(layer, nn.ReLU):
                layer.inplace = False
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


def vgg19_weights_path() -> Path:
    """Where the ImageNet weights are expected: <torch hub dir>/checkpoints/vgg19-dcbb9e9d.pth."""
    from pcl.weights import WEIGHTS

    return WEIGHTS["vgg19"].path


def features_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keep the ``features.*`` entries of a full torchvision VGG state_dict (prefix removed);
    a features-only dict passes through."""
    if any(k.startswith("features.") for k in state):
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def load_vgg19_pretrained(model: VGG19Features, path: str | Path | None = None) -> VGG19Features:
    """Load the ImageNet weights (torchvision's file) into ``model`` strictly; PCLError if missing.

    The default file (the torch.hub cache) is hash-checked first; an explicit ``path`` is the
    caller's responsibility (tests use stand-in weights).
    """
    if path is None:
        from pcl.weights import verified_path

        path = verified_path("vgg19")
    path = Path(path)
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
