"""Training data: prepared once into memory-mapped uint8 arrays, then sampled as random patches.

Why prepare: decoding 800 DIV2K PNGs (and, without the official LR set, making LR images with the
MATLAB-exact imresize) costs minutes; doing it once and reading patches from a flat uint8 file
that every data-loader worker memory-maps keeps the training loop fed without decoding anything.
The manifest records the source, the image sizes and the sha256 of the pixel content, and that
hash goes into every run's provenance.

Why patches are a pure function of (seed, iteration, index): resume must be exact whatever the
number of worker processes and wherever the run was interrupted.  Patch ``index`` of iteration
``iteration`` is drawn from the BLAKE2b hash of (seed, iteration, index) -- image, position and
dihedral transform -- so the "sampler state" is just (seed, iteration).  Under DDP each rank
takes its own slice of the global batch (indices rank*b .. rank*b + b - 1 for a per-rank batch
b), so the ranks see different patches and together exactly the patches of a single-process run
with the global batch; one rank is the single-GPU run.

Sampling is uniform over images with replacement (EDSR-PyTorch walks shuffled repeats of the
image list; the expected number of patches per image is the same), then uniform over LR
positions; the HR patch is the matching ``scale`` x larger window.

Augmentation (8 dihedral variants, applied identically to the LR and HR patch):
``released`` = horizontal flip, vertical flip and transpose, each with p = 0.5 (EDSR-PyTorch
``common.augment``; docs/method.md §6); ``paper`` = horizontal flip (p = 0.5) and a rotation by
k * 90 degrees, k uniform in {0, 1, 2, 3} (P-J: "random horizontal flips and 90-degree
rotations"); ``none``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pcl.data.images import list_images, read_image
from pcl.data.imresize import bicubic_degrade
from pcl.errors import PCLError

log = logging.getLogger(__name__)

AUGMENTATIONS: tuple[str, ...] = ("released", "paper", "none")
LR_MODES: tuple[str, ...] = ("imresize", "official")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
#: Prefix of catalog paths that live in the shipped resources/ folder.
RESOURCE_PREFIX = "resource:"


# ---------------------------------------------------------------------------- specification


@dataclass(frozen=True)
class DataSpec:
    """Where the training images come from and how the LR images are made.

    ``hr_dir``: a folder of images (``resource:train_standin/SunHays80`` names a shipped folder).
    ``lr``: ``imresize`` (our MATLAB-exact bicubic x1/scale of the mod-cropped HR) or ``official``
    (read from ``lr_dir``, files ``<stem>.png`` or ``<stem>x4.png`` as in DIV2K).
    ``first``/``last``: 1-based inclusive range of the sorted file list (DIV2K 1-800).
    """

    hr_dir: str
    lr: str = "imresize"
    lr_dir: str | None = None
    scale: int = 4
    first: int | None = None
    last: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataSpec":
        known = set(cls.__dataclass_fields__) | {"range"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PCLError(f"training data: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(known))}")
        values = {k: v for k, v in data.items() if k != "range"}
        if data.get("range") is not None:
            first, last = data["range"]
            values.update(first=int(first), last=int(last))
        spec = cls(**values)
        spec.validate()
        return spec

    def validate(self) -> "DataSpec":
        if self.lr not in LR_MODES:
            raise PCLError(f"training data: lr must be one of {', '.join(LR_MODES)}, got {self.lr!r}")
        if self.lr == "official" and not self.lr_dir:
            raise PCLError("training data: lr 'official' needs lr_dir (e.g. data/DIV2K/DIV2K_train_LR_bicubic/X4)")
        if self.scale not in (2, 3, 4):
            raise PCLError(f"training data: scale must be 2, 3 or 4, got {self.scale!r}")
        if self.first is not None and self.first < 1:
            raise PCLError(f"training data: range must start at 1 or later, got {self.first}")
        if self.first is not None and self.last is not None and self.last < self.first:
            raise PCLError(f"training data: range [{self.first}, {self.last}] is empty")
        return self

    def resolved_hr_dir(self) -> Path:
        return resolve_path(self.hr_dir)

    def resolved_lr_dir(self) -> Path | None:
        return resolve_path(self.lr_dir) if self.lr_dir else None

    def to_dict(self) -> dict[str, Any]:
        return {"hr_dir": self.hr_dir, "lr": self.lr, "lr_dir": self.lr_dir, "scale": self.scale,
                "range": [self.first, self.last] if self.first is not None or self.last is not None else None}


def resolve_path(text: str) -> Path:
    """A catalog path: ``resource:<rel>`` is under the shipped resources/, anything else as given."""
    if text.startswith(RESOURCE_PREFIX):
        from pcl.resources import resource_path

        return resource_path(*Path(text[len(RESOURCE_PREFIX):]).parts)
    return Path(text).expanduser()


# ---------------------------------------------------------------------------- preparation


@dataclass
class PreparedData:
    """A prepared training set: its folder, the manifest and the images usable for a patch size."""

    root: Path
    manifest: dict[str, Any]

    @property
    def content_sha256(self) -> str:
        return str(self.manifest["content_sha256"])

    @property
    def scale(self) -> int:
        return int(self.manifest["scale"])

    @property
    def images(self) -> list[dict[str, Any]]:
        return list(self.manifest["images"])


def _select(files: list[Path], spec: DataSpec) -> list[Path]:
    first = (spec.first or 1) - 1
    last = spec.last if spec.last is not None else len(files)
    chosen = files[first:last]
    if spec.last is not None and len(files) < spec.last:
        raise PCLError(
            f"training data: range [{spec.first or 1}, {spec.last}] needs {spec.last} images but "
            f"{spec.resolved_hr_dir()} holds {len(files)}; fetch the full dataset or change the range"
        )
    if not chosen:
        raise PCLError(f"training data: no images selected from {spec.resolved_hr_dir()} by range {spec.first}-{spec.last}")
    return chosen


def _source_key(spec: DataSpec, files: list[Path]) -> str:
    """Identity of the inputs (paths, sizes, mtimes, settings): decides whether a cache is reusable."""
    digest = hashlib.sha256()
    digest.update(json.dumps({**spec.to_dict(), "hr_dir": str(spec.resolved_hr_dir().resolve()),
                              "lr_dir": str(spec.resolved_lr_dir().resolve()) if spec.lr_dir else None,
                              "format": FORMAT_VERSION}, sort_keys=True).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _find_official_lr(lr_dir: Path, stem: str, scale: int) -> Path:
    for name in (f"{stem}x{scale}", stem, f"{stem}_x{scale}"):
        for suffix in (".png", ".PNG", ".bmp", ".jpg"):
            candidate = lr_dir / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    raise PCLError(f"training data: no official LR image for {stem!r} in {lr_dir} (expected {stem}x{scale}.png)")


def _load_pair(args: tuple[str, str, str | None, int]) -> tuple[np.ndarray, np.ndarray]:
    """Read one HR image (RGB, mod-cropped) and its LR image; runs in a worker process."""
    hr_path, mode, lr_dir, scale = args
    hr = read_image(Path(hr_path))
    if hr.ndim == 2:  # grey: replicate, the SR networks are RGB-only
        hr = np.repeat(hr[:, :, None], 3, axis=2)
    h, w = hr.shape[:2]
    hr = np.ascontiguousarray(hr[: h - h % scale, : w - w % scale])
    if mode == "imresize":
        lr = bicubic_degrade(hr, scale)
    else:
        lr_path = _find_official_lr(Path(lr_dir), Path(hr_path).stem, scale)
        lr = read_image(lr_path)
        if lr.ndim == 2:
            lr = np.repeat(lr[:, :, None], 3, axis=2)
        want = (hr.shape[0] // scale, hr.shape[1] // scale)
        if lr.shape[:2] != want:
            raise PCLError(
                f"training data: {lr_path} is {lr.shape[1]}x{lr.shape[0]} but HR {hr_path} needs "
                f"{want[1]}x{want[0]} at x{scale}; use matching LR images or lr: imresize"
            )
    return hr, np.ascontiguousarray(lr)


def prepare_training_data(spec: DataSpec, cache_root: str | os.PathLike[str], *, workers: int = 1) -> PreparedData:
    """Prepare (once) the training set described by ``spec`` under ``cache_root``; return it.

    The folder name carries a hash of the inputs (file names, sizes, mtimes, settings), so a
    changed source gets a new folder and an unchanged one is reused without reading any image.
    Written into a temporary folder and renamed, so concurrent runs never see half a dataset.
    """
    spec.validate()
    hr_dir = spec.resolved_hr_dir()
    files = _select(list_images(hr_dir), spec)
    key = _source_key(spec, files)
    cache_root = Path(cache_root)
    target = cache_root / f"{hr_dir.name}-x{spec.scale}-{spec.lr}-{key[:12]}"
    if (target / MANIFEST).is_file():
        return PreparedData(target, json.loads((target / MANIFEST).read_text(encoding="utf-8")))
    from pcl.atomic import make_temp_dir  # mkdir's 0755-style mode, not mkdtemp's 0700

    tmp = make_temp_dir(cache_root, f".{target.name}-")
    try:
        manifest = _write_arrays(tmp, files, spec, key, workers=workers)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: use its copy
            if not (target / MANIFEST).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PreparedData(target, manifest)


def _write_arrays(folder: Path, files: list[Path], spec: DataSpec, key: str, *, workers: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    jobs = [(str(p), spec.lr, str(spec.resolved_lr_dir()) if spec.lr_dir else None, spec.scale) for p in files]
    digest = hashlib.sha256()
    images: list[dict[str, Any]] = []
    with open(folder / "hr.u8", "wb") as hr_file, open(folder / "lr.u8", "wb") as lr_file:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                pairs = pool.map(_load_pair, jobs, chunksize=4)
                _append_all(pairs, files, hr_file, lr_file, digest, images)
        else:
            _append_all(map(_load_pair, jobs), files, hr_file, lr_file, digest, images)
        for handle in (hr_file, lr_file):
            handle.flush()
            os.fsync(handle.fileno())
    manifest = {
        "format_version": FORMAT_VERSION,
        "source": spec.to_dict() | {"hr_dir_resolved": str(spec.resolved_hr_dir().resolve())},
        "lr_made_by": "pcl.data.imresize.bicubic_degrade (MATLAB-exact bicubic)" if spec.lr == "imresize" else "official files",
        "scale": spec.scale,
        "n_images": len(images),
        "hr_bytes": sum(i["hr_shape"][0] * i["hr_shape"][1] * 3 for i in images),
        "lr_bytes": sum(i["lr_shape"][0] * i["lr_shape"][1] * 3 for i in images),
        "content_sha256": digest.hexdigest(),
        "source_key": key,
        "images": images,
        "prepare_seconds": round(time.perf_counter() - t0, 3),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _append_all(pairs, files, hr_file, lr_file, digest, images) -> None:
    hr_offset = lr_offset = 0
    for path, (hr, lr) in zip(files, pairs):
        for array in (hr, lr):
            digest.update(struct.pack("<3q", *array.shape))
            digest.update(array.tobytes())
        hr_file.write(hr.tobytes())
        lr_file.write(lr.tobytes())
        images.append({"name": path.name, "hr_shape": list(hr.shape), "lr_shape": list(lr.shape),
                       "hr_offset": hr_offset, "lr_offset": lr_offset})
        hr_offset += hr.nbytes
        lr_offset += lr.nbytes


# ---------------------------------------------------------------------------- patch sampling


@dataclass(frozen=True)
class PatchDraw:
    """One patch: image number, LR top-left (y, x) and the dihedral transform bits."""

    image: int
    y: int
    x: int
    transform: int


def draw_patch(seed: int, iteration: int, index: int, lr_sizes: Sequence[tuple[int, int]], lr_patch: int) -> PatchDraw:
    """The patch ``index`` of ``iteration``: a pure function of (seed, iteration, index).

    64-bit draws from BLAKE2b(seed, iteration, index), reduced modulo the ranges (bias < 2^-40).
    """
    digest = hashlib.blake2b(struct.pack("<qqq", int(seed), int(iteration), int(index)), digest_size=32,
                             person=b"pcl-patches").digest()
    a, b, c, d = struct.unpack("<4Q", digest)
    image = a % len(lr_sizes)
    h, w = lr_sizes[image]
    return PatchDraw(image=image, y=b % (h - lr_patch + 1), x=c % (w - lr_patch + 1), transform=d & 0xFF)


def apply_transform(img: np.ndarray, transform: int, mode: str) -> np.ndarray:
    """Apply the dihedral transform selected by ``transform`` bits to an (H, W, C) array."""
    if mode == "none":
        return img
    if mode == "released":  # common.augment: hflip, vflip, transpose (p = 0.5 each)
        if transform & 1:
            img = img[:, ::-1]
        if transform & 2:
            img = img[::-1]
        if transform & 4:
            img = img.transpose(1, 0, 2)
        return img
    if mode == "paper":  # horizontal flip (p = 0.5), then rotation by k * 90 degrees
        if transform & 1:
            img = img[:, ::-1]
        return np.rot90(img, k=(transform >> 1) & 3, axes=(0, 1))
    raise PCLError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {mode!r}")


class PatchBatches(Dataset):
    """Map-style dataset whose item ``i`` is the whole (per-rank) batch of iteration ``i``.

    Returns (lr, hr) uint8 tensors (b, 3, p, p) and (b, 3, p*s, p*s); the float conversion
    happens on the training device.  One item per batch keeps inter-process traffic to one
    message per iteration.  The memory maps are opened lazily in each worker.
    """

    def __init__(self, data: PreparedData, *, batch: int, lr_patch: int, seed: int, augment: str,
                 rank: int = 0, world_size: int = 1) -> None:
        if augment not in AUGMENTATIONS:
            raise PCLError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
        if batch < 1 or lr_patch < 1:
            raise PCLError(f"training data: batch and lr_patch must be >= 1, got {batch} and {lr_patch}")
        self.root = data.root
        self.scale = data.scale
        self.batch = batch
        self.lr_patch = lr_patch
        self.seed = int(seed)
        self.augment = augment
        self.rank = rank
        self.world_size = world_size
        entries = [e for e in data.images if min(e["lr_shape"][:2]) >= lr_patch]
        if not entries:
            raise PCLError(
                f"training data {data.root}: no image has an LR side >= the patch size {lr_patch}; "
                "use larger images or a smaller patch"
            )
        self.entries = entries
        self.lr_sizes = [(int(e["lr_shape"][0]), int(e["lr_shape"][1])) for e in entries]
        self._maps: tuple[np.memmap, np.memmap] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = None  # each worker maps the files itself
        return state

    def __len__(self) -> int:
        return 2**62

    def _arrays(self) -> tuple[np.memmap, np.memmap]:
        if self._maps is None:
            self._maps = (np.memmap(self.root / "hr.u8", dtype=np.uint8, mode="r"),
                          np.memmap(self.root / "lr.u8", dtype=np.uint8, mode="r"))
        return self._maps

    def draws(self, iteration: int) -> list[PatchDraw]:
        first = self.rank * self.batch
        return [draw_patch(self.seed, iteration, first + i, self.lr_sizes, self.lr_patch) for i in range(self.batch)]

    def __getitem__(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr_all, lr_all = self._arrays()
        p, s = self.lr_patch, self.scale
        lr_out = np.empty((self.batch, p, p, 3), dtype=np.uint8)
        hr_out = np.empty((self.batch, p * s, p * s, 3), dtype=np.uint8)
        for i, draw in enumerate(self.draws(iteration)):
            entry = self.entries[draw.image]
            lh, lw = entry["lr_shape"][:2]
            hh, hw = entry["hr_shape"][:2]
            lr_img = lr_all[entry["lr_offset"]: entry["lr_offset"] + lh * lw * 3].reshape(lh, lw, 3)
            hr_img = hr_all[entry["hr_offset"]: entry["hr_offset"] + hh * hw * 3].reshape(hh, hw, 3)
            lr_patch = lr_img[draw.y: draw.y + p, draw.x: draw.x + p]
            hr_patch = hr_img[draw.y * s: (draw.y + p) * s, draw.x * s: (draw.x + p) * s]
            lr_out[i] = apply_transform(lr_patch, draw.transform, self.augment)
            hr_out[i] = apply_transform(hr_patch, draw.transform, self.augment)
        return (torch.from_numpy(lr_out).permute(0, 3, 1, 2).contiguous(),
                torch.from_numpy(hr_out).permute(0, 3, 1, 2).contiguous())


def make_loader(dataset: PatchBatches, *, start: int, stop: int, workers: int, pin_memory: bool = False) -> DataLoader:
    """Iterate the batches of iterations ``start .. stop - 1`` in order with ``workers`` processes."""
    # A private generator: the loader draws its worker base seed from it, not from the global torch
    # RNG, whose stream (NLSN's random rotations) must not depend on where a run was resumed.
    generator = torch.Generator()
    generator.manual_seed(0)
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=range(start, stop),
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
        persistent_workers=False,
        generator=generator,
    )


def to_float(batch: torch.Tensor, device: torch.device, *, channels_last: bool = False) -> torch.Tensor:
    """uint8 (b, 3, h, w) -> float32 in [0, 1] on ``device`` (copy without host synchronisation)."""
    x = batch.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
