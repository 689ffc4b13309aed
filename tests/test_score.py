"""`pcl score`: pairing by stem, the rows and sidecar, and bad input (exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcl.cli import main
from pcl.data.images import read_image, write_png
from pcl.data.imresize import bicubic_degrade, bicubic_upscale
from pcl.errors import PCLError
from pcl.metrics.psnr_ssim import evaluate_pair
from pcl.resources import resource_path
from pcl.score import pair_files, score_folder

SET5 = resource_path("benchmarks", "Set5", "HR")


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Three Set5 HR images and their bicubic x4 round trip saved with typical SR-code suffixes."""
    hr_dir, sr_dir = tmp_path / "hr", tmp_path / "sr"
    for i, path in enumerate(sorted(SET5.iterdir())[:3]):
        hr = read_image(path)
        write_png(hr_dir / path.name, hr)
        sr = bicubic_upscale(bicubic_degrade(hr, 4), 4)
        name = [f"{path.stem}.png", f"{path.stem}_x4_SR.png", f"{path.stem}x4.png"][i]
        write_png(sr_dir / name, sr)
    return sr_dir, hr_dir


def test_rows_equal_the_evaluation_path(folders: tuple[Path, Path], tmp_path: Path) -> None:
    sr_dir, hr_dir = folders
    out = tmp_path / "scores.csv"
    rows = score_folder(sr_dir, out, metrics=("psnr", "ssim"), hr_dir=hr_dir)
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["image", "psnr", "ssim"] and len(frame) == 3
    for row in rows:
        hr = read_image(hr_dir / f"{row['image']}.png")
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        sr = bicubic_upscale(bicubic_degrade(read_image(hr_dir / f"{row['image']}.png"), 4), 4)
        assert (row["psnr"], row["ssim"]) == evaluate_pair(sr, hr, scale=4, protocol="matlab")
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["metrics"] == ["psnr", "ssim"] and sidecar["images"] == 3
    assert "commit" in sidecar["git"] and sidecar["packages"]["torch"]


def test_pairing_names_every_unpaired_file(folders: tuple[Path, Path], tmp_path: Path) -> None:
    sr_dir, hr_dir = folders
    write_png(sr_dir / "stray.png", np.zeros((32, 32), np.uint8))
    (hr_dir / "woman.png").write_bytes((SET5 / "woman.png").read_bytes())
    with pytest.raises(PCLError, match=r"SR without HR in .*: stray\.png; HR without SR in .*: woman\.png"):
        pair_files(sr_dir, hr_dir)


def test_no_reference_metrics_need_no_hr(folders: tuple[Path, Path], tmp_path: Path) -> None:
    sr_dir, _ = folders
    with pytest.raises(PCLError, match="psnr compare with ground truth; pass --hr-dir"):
        score_folder(sr_dir, tmp_path / "x.csv", metrics=("psnr", "niqe"))
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metrics", "psnr,brisque"], "unknown metric 'brisque'"),
        (["--metrics", "psnr", "--protocol", "cv2"], "unknown evaluation protocol 'cv2'"),
        (["--metrics", "lpips"], "alexnet-owt-7be5be79.pth"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(folders: tuple[Path, Path], tmp_path: Path, capsys, monkeypatch,
                                                  extra: list[str], message: str) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    sr_dir, hr_dir = folders
    out = tmp_path / "s.csv"
    code = main(["score", "--sr-dir", str(sr_dir), "--hr-dir", str(hr_dir), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_mismatched_sizes_name_the_file(folders: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    sr_dir, hr_dir = folders
    write_png(sr_dir / "baby.png", np.zeros((100, 100, 3), np.uint8))
    code = main(["score", "--sr-dir", str(sr_dir), "--hr-dir", str(hr_dir), "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "baby.png" in err and "does not match HR size" in err
    assert not (tmp_path / "s.csv").exists()
