"""Bicubic x4 on the shipped Set5/Set14 against the paper's first row, and the CLI's errors."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pcl.cli import main
from pcl.errors import PCLError
from pcl.evaluate import bicubic_predictor, evaluate_folder
from pcl.names import canonical_dataset
from pcl.report.check import DEFAULT_TOLERANCES, load_tolerances
from pcl.report.paper import read_paper_table
from pcl.resources import resource_path

# The paper's Bicubic row as transcribed, and the bicubic tier's acceptance rule of `pcl check`.
_TABLE2 = read_paper_table(resource_path("reference", "paper", "table2.csv"))
PAPER_BICUBIC = {ds: tuple(float(_TABLE2.printed("Bicubic", ds, m)) for m in ("psnr", "ssim")) for ds in ("Set5", "Set14")}
_RULE = load_tolerances(DEFAULT_TOLERANCES)["bicubic"]
TOL_PSNR, TOL_SSIM = float(_RULE["psnr"]), float(_RULE["ssim"])


def _means(rows: list[dict]) -> tuple[float, float]:
    return float(np.mean([r["psnr"] for r in rows])), float(np.mean([r["ssim"] for r in rows]))


@pytest.fixture(scope="module")
def set14_rows(set14_dir: Path) -> dict[str, list[dict]]:
    return {
        p: evaluate_folder(bicubic_predictor(4), set14_dir, dataset="Set14", scale=4, protocol=p)
        for p in ("matlab", "authors")
    }


def test_bicubic_set5_matches_paper(set5_dir: Path) -> None:
    rows = evaluate_folder(bicubic_predictor(4), set5_dir, dataset="Set5", scale=4, protocol="matlab")
    psnr, ssim = _means(rows)
    assert len(rows) == 5
    assert abs(psnr - PAPER_BICUBIC["Set5"][0]) <= TOL_PSNR, psnr
    assert abs(ssim - PAPER_BICUBIC["Set5"][1]) <= TOL_SSIM, ssim


def test_bicubic_set14_matches_paper_under_matlab(set14_rows: dict) -> None:
    psnr, ssim = _means(set14_rows["matlab"])
    assert len(set14_rows["matlab"]) == 14
    assert abs(psnr - PAPER_BICUBIC["Set14"][0]) <= TOL_PSNR, psnr
    assert abs(ssim - PAPER_BICUBIC["Set14"][1]) <= TOL_SSIM, ssim


def test_authors_protocol_raises_set14_by_the_gray_image_shift(set14_rows: dict) -> None:
    # docs/protocols.md §5: only `bridge` is single-channel; replicating it to RGB and taking Y
    # compresses differences by 219/255, i.e. +20*log10(255/219) = +1.3219 dB on that image and
    # +1.3219/14 dB on the Set14 mean. Every 3-channel image scores identically.
    matlab = {r["image"]: r for r in set14_rows["matlab"]}
    authors = {r["image"]: r for r in set14_rows["authors"]}
    shift = 20 * math.log10(255 / 219)
    assert authors["bridge"]["channels"] == 1
    assert authors["bridge"]["psnr"] - matlab["bridge"]["psnr"] == pytest.approx(shift, abs=1e-9)
    for name in matlab:
        if name != "bridge":
            assert authors[name]["psnr"] == matlab[name]["psnr"]
    gap = _means(set14_rows["authors"])[0] - _means(set14_rows["matlab"])[0]
    assert gap == pytest.approx(shift / 14, abs=1e-9)


def test_dataset_aliases() -> None:
    assert canonical_dataset("bsd100") == "B100"
    assert canonical_dataset(" SET5 ") == "Set5"
    assert canonical_dataset("Urban100") == "Urban100"
    with pytest.raises(PCLError, match="unknown dataset 'DIV2K'; use one of Set5, Set14, B100, Urban100, Manga109"):
        canonical_dataset("DIV2K")


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def _eval_args(hr: Path, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--model", "bicubic", "--hr-dir", str(hr), "--dataset", "Set5",
            "--scale", "4", "--out", str(out), *extra]


def test_cli_writes_rows_and_prints_means(set5_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "set5.csv"
    assert main(_eval_args(set5_dir, out)) == 0
    df = pd.read_csv(out)
    assert list(df.columns[:10]) == ["tier", "experiment", "backbone", "method", "dataset", "image",
                                     "scale", "protocol", "psnr", "ssim"]
    assert len(df) == 5 and set(df["protocol"]) == {"matlab"}
    assert "PSNR 28.4" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "does not exist"),
        ("empty", "no images"),
        ("not_image", "bad.png"),
        ("too_small", "tiny.png"),
        ("lr_mismatch", "does not match"),
        ("protocol", "protocol"),
        ("dataset", "unknown dataset"),
    ],
)
def test_cli_bad_input_one_line_exit_2(case: str, needle: str, set5_dir: Path, tmp_path: Path, capsys) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    extra: list[str] = []
    args = None
    if case == "missing":
        hr = tmp_path / "nope"
    elif case == "empty":
        pass
    elif case == "not_image":
        (hr / "bad.png").write_text("this is not a PNG")
    elif case == "too_small":
        Image.fromarray(np.zeros((18, 18, 3), np.uint8)).save(hr / "tiny.png")  # < 2*4+11 = 19
    elif case == "lr_mismatch":
        shutil.copy(set5_dir / "bird.png", hr / "bird.png")
        lr = tmp_path / "lr"
        lr.mkdir()
        Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(lr / "bird.png")
        extra = ["--lr-dir", str(lr)]
    elif case == "protocol":
        shutil.copy(set5_dir / "bird.png", hr / "bird.png")
        extra = ["--protocol", "opencv"]
    elif case == "dataset":
        shutil.copy(set5_dir / "bird.png", hr / "bird.png")
        args = _eval_args(hr, tmp_path / "o.csv")
        args[args.index("Set5")] = "Set99"
    code, err = _run(capsys, *(args or _eval_args(hr, tmp_path / "o.csv", *extra)))
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("pcl: error:")
    assert needle in err
