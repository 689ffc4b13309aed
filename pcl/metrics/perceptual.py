"""LPIPS (Zhang et al., CVPR 2018) with the ``lpips`` package, on a hash-checked AlexNet.

Settings, since the paper states none (see docs/metrics.md): ``lpips`` v0.1 with the AlexNet
backbone and the linear calibration weights that ship inside the package (``weights/v0.1/alex.pth``),
the package's own input scaling (RGB in [0, 1] mapped to [-1, 1]), on the same region that PSNR/SSIM
score under the protocol: the GT mod-cropped to a multiple of the scale and ``scale`` pixels shaved
on every side of both images.  A single-channel image is replicated to three channels (what the
authors' cv2 reader does).  Lower is better.

Why we load the backbone ourselves: ``lpips.LPIPS(net='alex')`` asks torchvision for its ImageNet
AlexNet, and torchvision uses whatever ``alexnet-owt-7be5be79.pth`` sits in the torch.hub cache
without checking it.  Here the package's model is built with a random backbone
(``pnet_rand=True``), the cached file is verified by ``pcl.weights`` and loaded with
``weights_only=True`` into torchvision's AlexNet, and its convolutions are copied into the
package's slices.  With the genuine file the numbers are exactly the package's.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pcl.errors import PCLError

if TYPE_CHECKING:
    from pcl.metrics.lpips_batch import LPIPSQueue

LPIPS_SETTINGS: dict[str, object] = {
    "package": "lpips 0.1.4",
    "version": "0.1",
    "net": "alex",
    "input": "RGB in [0, 1] (normalize=True); gray replicated to 3 channels",
    "region": "GT mod-cropped to the scale, `scale` px shaved on every side (as PSNR/SSIM)",
}


def _linear_weights_path() -> Path:
    import lpips

    return Path(inspect.getfile(lpips)).parent / "weights" / "v0.1" / "alex.pth"


def _load_alexnet_features(path: Path) -> torch.nn.Sequential:
    """torchvision's AlexNet ``features`` with the weights of ``path`` (strict, weights_only)."""
    import torchvision

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, or a pickle holding more than tensors
        raise PCLError(f"{path}: cannot be read as AlexNet weights ({exc.__class__.__name__}); delete it and run `pcl weights fetch alexnet`") from None
    net = torchvision.models.alexnet(weights=None)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, AttributeError) as exc:
        first = str(exc).splitlines()[0]
        raise PCLError(f"{path}: not torchvision AlexNet weights ({first}); delete it and run `pcl weights fetch alexnet`") from None
    return net.features


class LPIPSScorer:
    """LPIPS between SR and GT uint8 images, batched on one device.

    ``check_hash=False`` exists for tests that use a stand-in AlexNet under the real file name;
    the pipeline and the CLI always check.
    """

    def __init__(self, device: str | torch.device = "cpu", *, check_hash: bool = True, lock_file: Path | None = None) -> None:
        import lpips

        from pcl.hashing import sha256_file
        from pcl.weights import WEIGHTS, verified_path

        path = verified_path("alexnet", lock_file=lock_file) if check_hash else WEIGHTS["alexnet"].path
        if not path.is_file():
            raise PCLError(f"LPIPS needs {path}, which is absent; get it with {WEIGHTS['alexnet'].how_to_get()}")
        features = _load_alexnet_features(path)
        with warnings.catch_warnings():  # lpips 0.1.4 still passes torchvision's deprecated `pretrained=`
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(pretrained=True, net="alex", version="0.1", pnet_rand=True, verbose=False)
        for slice_module in model.net.children():
            for index, layer in slice_module.named_children():
                layer.load_state_dict(features[int(index)].state_dict())
        self.device = torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.backbone_path = path
        self.backbone_sha256 = sha256_file(path)
        self.linear_sha256 = sha256_file(_linear_weights_path())

    def describe(self) -> dict[str, object]:
        """What the result sidecar records about this metric."""
        return {**LPIPS_SETTINGS, "backbone": str(self.backbone_path), "backbone_sha256": self.backbone_sha256,
                "linear_weights_sha256": self.linear_sha256}

    @torch.no_grad()
    def score(self, sr: np.ndarray, hr: np.ndarray, *, scale: int) -> float:
        """LPIPS of one SR/GT pair given as uint8 (H, W[, 3]) arrays (GT not yet mod-cropped)."""
        a, b = _region(sr, hr, scale)
        return float(self.model(a.to(self.device), b.to(self.device), normalize=True).reshape(-1)[0])

    @torch.no_grad()
    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Distances of N pairs of equal size, (N, 3, h, w) floats in [0, 1] on any device."""
        return self.model(sr.to(self.device), hr.to(self.device), normalize=True).reshape(-1)

    def queue(self, budget_pixels: int | None = None) -> "LPIPSQueue":
        """A queue that scores equal-size pairs in one pass (:mod:`pcl.metrics.lpips_batch`)."""
        from pcl.metrics.lpips_batch import DEFAULT_BUDGET_PIXELS, LPIPSQueue

        return LPIPSQueue(self.forward, budget_pixels or DEFAULT_BUDGET_PIXELS)


def scored_region(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The region LPIPS scores, as two (h, w, 3) uint8 arrays (views where no conversion is needed)."""
    return _rgb_u8(_crop(sr, hr, scale, 0)), _rgb_u8(_crop(sr, hr, scale, 1))


def _rgb_u8(img: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8; a single-channel image replicated (what the authors' cv2 reader does)."""
    if img.dtype != np.uint8:
        raise PCLError(f"LPIPS expects uint8 images, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise PCLError(f"LPIPS expects (H, W) or (H, W, 3) images, got shape {img.shape}")
    return img


def _as_rgb01(img: np.ndarray) -> torch.Tensor:
    img = _rgb_u8(img)
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def _crop(sr: np.ndarray, hr: np.ndarray, scale: int, which: int) -> np.ndarray:
    """The protocol's scored region of SR (``which`` 0) or of the GT (1)."""
    h, w = hr.shape[:2]
    hc, wc = h - h % scale, w - w % scale
    if sr.shape[:2] != (hc, wc):
        raise PCLError(f"SR size {sr.shape[1]}x{sr.shape[0]} does not match the GT mod-cropped to x{scale}: {wc}x{hc}")
    crop = (slice(scale, hc - scale), slice(scale, wc - scale))
    return sr[crop] if which == 0 else hr[:hc, :wc][crop]


def _region(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The protocol's scored region of both images, as (1, 3, h, w) tensors in [0, 1]."""
    return _as_rgb01(_crop(sr, hr, scale, 0)), _as_rgb01(_crop(sr, hr, scale, 1))

