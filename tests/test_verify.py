"""Benchmark verification by pixel content against resources/reference/benchmark_manifest.csv."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pcl.data import verify
from pcl.data.images import pixel_sha256, read_image, write_png
from pcl.data.verify import ManifestEntry, load_manifest, require_verified, verify_benchmark
from pcl.errors import PCLError
from pcl.resources import REPO_ROOT, resource_path

SET5 = resource_path("benchmarks", "Set5", "HR")
SET14 = resource_path("benchmarks", "Set14", "HR")


def test_manifest_counts():
    # dataset sizes: Set5 5, Set14 14, Urban100 100, Manga109 109 images; B100 pinned on 68 of 100
    counts = {key: len(load_manifest(key)) for key in ("Set5", "Set14", "B100_subset68", "Urban100", "Manga109")}
    assert counts == {"Set5": 5, "Set14": 14, "B100_subset68": 68, "Urban100": 100, "Manga109": 109}


@pytest.mark.parametrize("folder,name,count", [(SET5, "Set5", 5), (SET14, "Set14", 14)])
def test_shipped_benchmarks_verify(folder, name, count):
    report = verify_benchmark(folder, name)
    assert report.ok, report.details()
    assert len(report.matched) == count and not report.missing and not report.unmatched
    assert report.summary().startswith(f"{name}: ok, {count}/{count} manifest images matched")
    assert require_verified(folder, name).ok


def _copy_set5(tmp_path: Path) -> Path:
    dest = tmp_path / "Set5"
    shutil.copytree(SET5, dest)
    return dest


def test_modified_pixel_is_named(tmp_path):
    folder = _copy_set5(tmp_path)
    img = read_image(folder / "butterfly.png")
    img[10, 10, 0] ^= 1  # one pixel, one grey level
    write_png(folder / "butterfly.png", img)
    report = verify_benchmark(folder, "Set5")
    assert not report.ok
    assert report.missing == ["butterfly"]
    assert [u.path.name for u in report.unmatched] == ["butterfly.png"]
    assert report.unmatched[0].similar == ("butterfly",)
    assert "butterfly.png" in report.summary() and "\n" not in report.summary()
    details = report.details()
    assert str(folder / "butterfly.png") in details and "probably a different version of butterfly" in details
    with pytest.raises(PCLError) as info:
        require_verified(folder, "Set5")
    message = str(info.value)
    assert "butterfly.png" in message and "re-download" in message and "\n" not in message


def test_names_do_not_matter_content_does(tmp_path):
    folder = _copy_set5(tmp_path)
    (folder / "baby.png").rename(folder / "img_001.png")
    report = verify_benchmark(folder, "Set5")
    assert report.ok and report.matched["baby"] == folder / "img_001.png"


def test_extra_duplicate_and_corrupt_files(tmp_path):
    folder = _copy_set5(tmp_path)
    shutil.copy(folder / "bird.png", folder / "bird_copy.png")
    report = verify_benchmark(folder, "Set5")
    assert not report.ok and report.duplicates == [(folder / "bird_copy.png", "bird")]

    (folder / "bird_copy.png").unlink()
    write_png(folder / "zz_extra.png", np.zeros((3, 3), np.uint8))
    report = verify_benchmark(folder, "Set5")
    assert not report.ok and [u.path.name for u in report.unmatched] == ["zz_extra.png"]
    assert report.unmatched[0].similar == ()  # no manifest image of that size

    (folder / "zz_extra.png").unlink()
    data = (folder / "head.png").read_bytes()
    (folder / "head.png").write_bytes(data[:1000])
    report = verify_benchmark(folder, "Set5")
    assert not report.ok and [p.name for p, _ in report.unreadable] == ["head.png"]
    assert report.missing == ["head"]
    with pytest.raises(PCLError, match="head.png"):
        require_verified(folder, "Set5")


def test_bsd100_alias_and_missing_folder(tmp_path):
    with pytest.raises(PCLError, match="does not exist"):
        verify_benchmark(tmp_path / "nope", "BSD100")
    with pytest.raises(PCLError, match="training data"):
        verify_benchmark(SET5, "DIV2K")


def test_restore_hint_for_shipped_files():
    hint = verify._restore_hint(REPO_ROOT / "resources" / "benchmarks" / "Set5" / "HR" / "baby.png")
    assert hint == "restore the shipped file with `git checkout -- resources/benchmarks/Set5/HR/baby.png`"
    assert "re-download" in verify._restore_hint(Path("/elsewhere/baby.png"))


def test_b100_partial_manifest(tmp_path, monkeypatch):
    # A miniature B100: 3 pinned images out of 5 (the real manifest pins 68 of 100).
    rng = np.random.default_rng(0)
    folder = tmp_path / "B100"
    images = {f"{i}": rng.integers(0, 256, (6, 4, 3), dtype=np.uint8) for i in range(5)}
    for name, arr in images.items():
        write_png(folder / f"{name}.png", arr)
    pinned = tuple(
        ManifestEntry("B100_subset68", name, "RGB", 6, 4, 3, pixel_sha256(images[name])) for name in ("0", "1", "2")
    )
    monkeypatch.setattr(verify, "manifest_for", lambda dataset: pinned)
    monkeypatch.setattr(verify, "B100_EXPECTED", 5)

    report = verify_benchmark(folder, "B100")
    assert report.ok, report.details()
    assert sorted(p.name for p in report.unverified) == ["3.png", "4.png"]
    assert "3/3 manifest images matched, 2 unverified (not in manifest), 5/5 images" in report.summary()

    (folder / "4.png").unlink()  # one image short of the set
    assert not verify_benchmark(folder, "B100").ok

    write_png(folder / "4.png", images["4"])
    changed = images["1"].copy()
    changed[0, 0, 0] ^= 1
    write_png(folder / "1.png", changed)
    report = verify_benchmark(folder, "B100")
    assert not report.ok and report.missing == ["1"]
    assert [u.describe() for u in report.unmatched] == ["1.png (RGB 4x6): probably a different version of 1"]
