"""Training data: preparation into memory-mapped arrays, the manifest, and pure-function patch sampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pcl.data.imresize import bicubic_degrade
from pcl.errors import PCLError
from pcl.train.data import (
    DataSpec,
    PatchBatches,
    apply_transform,
    draw_patch,
    make_loader,
    prepare_training_data,
    resolve_path,
)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture()
def photo_dir(tmp_path: Path) -> Path:
    """Three small random RGB 'photos' (sizes not multiples of 4, one grey) in a folder."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    _save(folder / "a.png", rng.integers(0, 256, (70, 90, 3), dtype=np.uint8))
    _save(folder / "b.png", rng.integers(0, 256, (64, 66, 3), dtype=np.uint8))
    _save(folder / "c.png", rng.integers(0, 256, (81, 64), dtype=np.uint8))
    return folder


def test_prepare_writes_arrays_and_manifest(photo_dir: Path, tmp_path: Path) -> None:
    data = prepare_training_data(DataSpec(hr_dir=str(photo_dir)), tmp_path / "cache")
    m = data.manifest
    assert m["n_images"] == 3 and m["scale"] == 4
    # HR is mod-cropped to a multiple of 4 (70x90 -> 68x88), grey is replicated to RGB; LR = HR / 4.
    assert [i["hr_shape"] for i in m["images"]] == [[68, 88, 3], [64, 64, 3], [80, 64, 3]]
    assert [i["lr_shape"] for i in m["images"]] == [[17, 22, 3], [16, 16, 3], [20, 16, 3]]
    hr = np.memmap(data.root / "hr.u8", dtype=np.uint8, mode="r")
    lr = np.memmap(data.root / "lr.u8", dtype=np.uint8, mode="r")
    assert hr.size == m["hr_bytes"] and lr.size == m["lr_bytes"]
    first = m["images"][0]
    stored_hr = np.asarray(hr[: 68 * 88 * 3]).reshape(68, 88, 3)
    original = np.asarray(Image.open(photo_dir / "a.png"))
    assert np.array_equal(stored_hr, original[:68, :88])
    stored_lr = np.asarray(lr[first["lr_offset"]: first["lr_offset"] + 17 * 22 * 3]).reshape(17, 22, 3)
    assert np.array_equal(stored_lr, bicubic_degrade(original[:68, :88], 4))  # our MATLAB-exact imresize
    assert len(m["content_sha256"]) == 64 and m["source"]["lr"] == "imresize"
    assert json.loads((data.root / "manifest.json").read_text())["content_sha256"] == data.content_sha256


def test_prepare_is_done_once_and_tracks_the_source(photo_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = prepare_training_data(DataSpec(hr_dir=str(photo_dir)), cache)
    stamp = (first.root / "hr.u8").stat().st_mtime_ns
    again = prepare_training_data(DataSpec(hr_dir=str(photo_dir)), cache)
    assert again.root == first.root and (again.root / "hr.u8").stat().st_mtime_ns == stamp
    # A changed image gets a new folder and a different content hash.
    _save(photo_dir / "b.png", np.zeros((64, 66, 3), dtype=np.uint8))
    changed = prepare_training_data(DataSpec(hr_dir=str(photo_dir)), cache)
    assert changed.root != first.root and changed.content_sha256 != first.content_sha256
    # A range selects by sorted position (1-based, inclusive).
    two = prepare_training_data(DataSpec(hr_dir=str(photo_dir), first=2, last=3), cache)
    assert [i["name"] for i in two.images] == ["b.png", "c.png"]


def test_official_lr_is_read_and_checked(photo_dir: Path, tmp_path: Path) -> None:
    lr_dir = tmp_path / "lr"
    for name, (h, w) in (("a", (17, 22)), ("b", (16, 16)), ("c", (20, 16))):
        _save(lr_dir / f"{name}x4.png", np.full((h, w, 3), 7, dtype=np.uint8))
    data = prepare_training_data(DataSpec(hr_dir=str(photo_dir), lr="official", lr_dir=str(lr_dir)), tmp_path / "c1")
    lr = np.memmap(data.root / "lr.u8", dtype=np.uint8, mode="r")
    assert set(np.unique(lr)) == {7}
    _save(lr_dir / "bx4.png", np.zeros((15, 16, 3), dtype=np.uint8))  # wrong size
    with pytest.raises(PCLError, match="bx4.png"):
        prepare_training_data(DataSpec(hr_dir=str(photo_dir), lr="official", lr_dir=str(lr_dir)), tmp_path / "c2")


def test_bad_specs_are_refused(tmp_path: Path, photo_dir: Path) -> None:
    with pytest.raises(PCLError, match="lr_dir"):
        DataSpec(hr_dir="x", lr="official").validate()
    with pytest.raises(PCLError, match="range"):
        prepare_training_data(DataSpec(hr_dir=str(photo_dir), first=1, last=10), tmp_path / "c")
    with pytest.raises(PCLError, match="unknown key"):
        DataSpec.from_dict({"hr_dir": "x", "colour": "rgb"})
    assert resolve_path("resource:train_standin/SunHays80").is_dir()


def test_dihedral_transforms() -> None:
    a = np.arange(6).reshape(2, 3, 1)
    # released: bit 0 h-flip, bit 1 v-flip, bit 2 transpose (EDSR-PyTorch common.augment).
    assert np.array_equal(apply_transform(a, 1, "released")[..., 0], [[2, 1, 0], [5, 4, 3]])
    assert np.array_equal(apply_transform(a, 2, "released")[..., 0], [[3, 4, 5], [0, 1, 2]])
    assert np.array_equal(apply_transform(a, 4, "released")[..., 0], [[0, 3], [1, 4], [2, 5]])
    # paper: bit 0 h-flip, bits 1-2 the number of 90-degree rotations.
    assert np.array_equal(apply_transform(a, 2, "paper")[..., 0], np.rot90(a[..., 0]))
    assert np.array_equal(apply_transform(a, 0, "none"), a)
    b = np.random.default_rng(1).integers(0, 255, (5, 5, 1))
    for mode in ("released", "paper"):
        variants = {apply_transform(b, t, mode).tobytes() for t in range(8)}
        assert len(variants) == 8  # the 8 elements of the dihedral group, each reached by one bit pattern


def test_patch_draws_are_pure_functions_of_seed_iteration_index() -> None:
    sizes = [(30, 40), (50, 20)]
    assert draw_patch(1, 5, 3, sizes, 12) == draw_patch(1, 5, 3, sizes, 12)
    draws = [draw_patch(1, it, i, sizes, 12) for it in range(100) for i in range(8)]
    assert len({(d.image, d.y, d.x, d.transform) for d in draws}) > 700  # distinct draws
    assert {d.image for d in draws} == {0, 1}
    assert {d.transform & 7 for d in draws} == set(range(8))  # every dihedral variant occurs in 800 draws
    for d in draws:
        h, w = sizes[d.image]
        assert 0 <= d.y <= h - 12 and 0 <= d.x <= w - 12
    assert draw_patch(2, 5, 3, sizes, 12) != draw_patch(1, 5, 3, sizes, 12)


def _block_data(tmp_path: Path) -> PatchBatches:
    """HR made of constant 4x4 blocks and an 'official' LR holding the block values: then the LR
    patch equals the HR patch sampled every 4 pixels, under every dihedral transform."""
    rng = np.random.default_rng(3)
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    for name in ("p", "q"):
        lr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
        _save(lr_dir / f"{name}x4.png", lr)
        _save(hr_dir / f"{name}.png", np.kron(lr, np.ones((4, 4, 1), dtype=np.uint8)))
    data = prepare_training_data(DataSpec(hr_dir=str(hr_dir), lr="official", lr_dir=str(lr_dir)), tmp_path / "cache")
    return PatchBatches(data, batch=4, lr_patch=8, seed=11, augment="paper")


def test_lr_and_hr_patches_are_aligned(tmp_path: Path) -> None:
    dataset = _block_data(tmp_path)
    for iteration in range(6):
        lr, hr = dataset[iteration]
        assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 32, 32) and lr.dtype == torch.uint8
        assert torch.equal(hr[:, :, ::4, ::4], lr)


def test_ranks_split_the_global_batch_and_workers_do_not_matter(tmp_path: Path) -> None:
    dataset = _block_data(tmp_path)
    data = prepare_training_data(DataSpec(hr_dir=str(tmp_path / "hr"), lr="official", lr_dir=str(tmp_path / "lr")),
                                 tmp_path / "cache")
    halves = [PatchBatches(data, batch=2, lr_patch=8, seed=11, augment="paper", rank=r, world_size=2) for r in (0, 1)]
    lr, hr = dataset[7]
    assert torch.equal(torch.cat([halves[0][7][0], halves[1][7][0]]), lr)  # ranks together = one process
    assert not torch.equal(halves[0][7][0], halves[1][7][0])
    serial = [b[0] for b in make_loader(dataset, start=3, stop=7, workers=0)]
    parallel = [b[0] for b in make_loader(dataset, start=3, stop=7, workers=2)]
    assert len(serial) == 4 and all(torch.equal(a, b) for a, b in zip(serial, parallel))
    assert torch.equal(serial[0], dataset[3][0])


def test_too_small_images_are_refused(photo_dir: Path, tmp_path: Path) -> None:
    data = prepare_training_data(DataSpec(hr_dir=str(photo_dir)), tmp_path / "cache")
    with pytest.raises(PCLError, match="patch size 48"):
        PatchBatches(data, batch=2, lr_patch=48, seed=0, augment="released")
    with pytest.raises(PCLError, match="augmentation"):
        PatchBatches(data, batch=2, lr_patch=8, seed=0, augment="rotate")
