"""Image listing/reading rules of pcl.data.images, on shipped and generated files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from pcl.data.images import IMAGE_SUFFIXES, list_images, pixel_sha256, read_image, write_png
from pcl.errors import PCLError
from pcl.resources import resource_path

SET5 = resource_path("benchmarks", "Set5", "HR")
SET14 = resource_path("benchmarks", "Set14", "HR")


def _manifest() -> dict[tuple[str, str], dict[str, str]]:
    with open(resource_path("reference", "benchmark_manifest.csv"), newline="") as handle:
        return {(r["dataset"], r["image"]): r for r in csv.DictReader(handle)}


def test_gray_and_rgb_shapes_match_manifest():
    manifest = _manifest()
    bridge = read_image(SET14 / "bridge.png")  # the only single-channel benchmark image (manifest mode L)
    row = manifest[("Set14", "bridge")]
    assert row["mode"] == "L"
    assert bridge.dtype == np.uint8 and bridge.shape == (int(row["height"]), int(row["width"]))
    baby = read_image(SET5 / "baby.png")
    row = manifest[("Set5", "baby")]
    assert baby.dtype == np.uint8 and baby.shape == (int(row["height"]), int(row["width"]), 3)
    assert baby.flags.writeable  # callers modify the arrays they read


def test_pixel_sha256_matches_manifest_for_file_and_array():
    manifest = _manifest()
    for folder, name in ((SET5, "Set5"), (SET14, "Set14")):
        for path in list_images(folder):
            expected = manifest[(name, path.stem)]["pixel_sha256"]
            assert pixel_sha256(path) == expected
            assert pixel_sha256(read_image(path)) == expected  # L and RGB are returned as stored
    with pytest.raises(PCLError, match="uint8"):
        pixel_sha256(np.zeros((2, 2), dtype=np.float32))


def test_truncated_png_names_the_file(tmp_path):
    data = (SET5 / "bird.png").read_bytes()
    bad = tmp_path / "bird.png"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(PCLError) as info:
        read_image(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(PCLError, match="bird.png"):
        pixel_sha256(bad)


def test_text_file_named_png_is_listed_then_refused(tmp_path):
    (tmp_path / "a.png").write_text("this is not a PNG")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "Thumbs.db").write_bytes(b"\0" * 10)
    (tmp_path / "._a.png").write_bytes(b"AppleDouble")  # hidden metadata is not an image
    assert list_images(tmp_path) == [tmp_path / "a.png"]
    with pytest.raises(PCLError, match="cannot read image .*a.png"):
        read_image(tmp_path / "a.png")


def test_list_images_errors_name_the_folder(tmp_path):
    with pytest.raises(PCLError, match=f"{tmp_path / 'missing'} does not exist"):
        list_images(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(PCLError, match=f"no images .* in folder {empty}"):
        list_images(empty)
    afile = tmp_path / "file.png"
    afile.write_bytes(b"x")
    with pytest.raises(PCLError, match="is not a folder"):
        list_images(afile)


def test_list_images_sorted_by_name_with_mixed_case_suffixes(tmp_path):
    arr = np.zeros((4, 4), dtype=np.uint8)
    for name in ("b.PNG", "a.png", "c.bmp"):
        Image.fromarray(arr).save(tmp_path / name)
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.PNG", "c.bmp"]
    assert ".png" in IMAGE_SUFFIXES


def test_mode_rules(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    opaque = np.dstack([rgb, np.full((5, 6), 255, np.uint8)])
    Image.fromarray(opaque, "RGBA").save(tmp_path / "opaque.png")
    assert np.array_equal(read_image(tmp_path / "opaque.png"), rgb)  # fully opaque alpha is dropped

    transparent = opaque.copy()
    transparent[0, 0, 3] = 10
    Image.fromarray(transparent, "RGBA").save(tmp_path / "transparent.png")
    with pytest.raises(PCLError, match="transparent.png .*alpha"):
        read_image(tmp_path / "transparent.png")

    gray = rgb[:, :, 0]
    Image.fromarray(np.dstack([gray, np.full((5, 6), 255, np.uint8)]), "LA").save(tmp_path / "la.png")
    assert np.array_equal(read_image(tmp_path / "la.png"), gray)

    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 16-bit PNG
    with pytest.raises(PCLError, match="deep.png .*16-bit"):
        read_image(tmp_path / "deep.png")

    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.save(tmp_path / "pal.png")
    out = read_image(tmp_path / "pal.png")
    assert out.shape == (5, 6, 3) and np.array_equal(out, np.asarray(pal.convert("RGB")))

    Image.fromarray(gray > 127).save(tmp_path / "bilevel.png")
    assert set(np.unique(read_image(tmp_path / "bilevel.png"))) <= {0, 255}


def test_write_png_round_trip_is_atomic(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    target = tmp_path / "sub" / "x.png"
    write_png(target, rgb)
    assert np.array_equal(read_image(target), rgb)
    write_png(target, rgb[:, :, 0])  # overwrite in place
    assert read_image(target).shape == (7, 9)
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]  # no temp files left
    with pytest.raises(PCLError, match="uint8"):
        write_png(tmp_path / "f.png", rgb.astype(np.float32))
    with pytest.raises(PCLError, match="shape"):
        write_png(tmp_path / "f.png", np.zeros((2, 2, 4), np.uint8))
    assert not (tmp_path / "f.png").exists()
