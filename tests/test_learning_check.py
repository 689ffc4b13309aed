"""Rule `learns` of `pcl check` (the mini tier) catches a broken trainer, and the mini table.

A short real training of the mini tier's EDSR-S is run twice: as is, and with the LR/HR pairing
broken (every LR patch paired with the HR patch of another image of the batch, the classic
misaligned-data bug). Scored on Set5 against the harness's own bicubic row, the correct run learns
and the broken one falls far short, and the rule says so. The margin used here is the short run's
(the tier's own 1 dB margin needs the full 3000 iterations).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pcl.cli_train import add_train_parser
from pcl.evaluate import evaluate_bicubic, evaluate_model
from pcl.report.check_learning import check_learning
from pcl.report.check_report import CheckReport
from pcl.report.mini import tier_summary, to_markdown
from pcl.report.results import read_results
from pcl.resources import resource_path
from pcl.train.data import PatchBatches

REPO = Path(__file__).resolve().parents[1]
SET5 = resource_path("benchmarks", "Set5", "HR")
SHORT_RUN_MARGIN_DB = -2.0
"""The margin for a 300-iteration run. Measured: done right it reaches 27.68 dB on Set5 (bicubic
28.43 dB, so -0.75 dB); on misaligned pairs it stays near 11 dB on its validation image. The mini
tier's own rule asks for +1 dB after its full 3000 iterations."""


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for path in sorted((REPO / "resources" / "train_standin" / "SunHays80").glob("*.jpg"))[:12]:
        img = np.asarray(Image.open(path).convert("RGB"))
        Image.fromarray(img[:192, :192]).save(folder / f"{path.stem}.png")
    return folder


def _train(run: Path, photos: Path, cache: Path) -> None:
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "--experiment", "edsr-s-baseline", "--tier", "mini", "--run-dir", str(run),
                              "--train-dir", str(photos), "--data-cache", str(cache), "--iterations", "300",
                              "--batch", "8", "--lr-patch", "16", "--validate-every", "0", "--validation-images", "1",
                              "--no-progress", "--no-tensorboard", "--threads", "2", "--device", "cpu"])
    assert args.func(args) == 0


def _score(run: Path, out: Path, tier: str = "mini") -> None:
    evaluate_model("auto", run / "model.safetensors", SET5, out, dataset="Set5", scale=4, protocol="matlab",
                   tier=tier, method="baseline", experiment="edsr-s-baseline")


@pytest.mark.slow  # two 300-iteration trainings: about a minute on 2 CPU cores
def test_rule_learns_fails_for_misaligned_pairs(tmp_path: Path, photos: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    evaluate_bicubic(SET5, tmp_path / "bicubic.csv", dataset="Set5", scale=4, protocol="matlab")
    good, broken = tmp_path / "good", tmp_path / "broken"
    _train(good / "run", photos, cache)
    _score(good / "run", good / "Set5.csv")

    original = PatchBatches.__getitem__

    def misaligned(self, iteration):
        lr, hr = original(self, iteration)
        return lr, torch.roll(hr, shifts=1, dims=0)  # each LR patch now meets another image's HR patch

    monkeypatch.setattr(PatchBatches, "__getitem__", misaligned)
    _train(broken / "run", photos, cache)
    _score(broken / "run", broken / "Set5.csv")

    bicubic = read_results([tmp_path / "bicubic.csv"])
    rule = {"dataset": "Set5", "protocol": "matlab", "margin_over_bicubic_db": SHORT_RUN_MARGIN_DB, "max_drift_db": 0.5}
    verdicts = {}
    for name, folder in (("good", good), ("broken", broken)):
        report = CheckReport()
        check_learning("mini", rule, read_results([folder / "Set5.csv"]), bicubic, report)
        (item,) = [i for i in report.items if i.check == "learns"]
        verdicts[name] = (item.status, item.detail)
    assert verdicts["good"][0] == "ok", verdicts
    assert verdicts["broken"][0] == "miss", verdicts


def test_mini_table_deltas(tmp_path: Path) -> None:
    # Hand-made rows: baseline 30.0, +PCL 30.05, control 30.02, bicubic 28.43 on Set5 (mean of two images each)
    def rows(tier, experiment, method, values):
        return pd.DataFrame({"tier": tier, "experiment": experiment, "backbone": "edsr-s" if tier != "bicubic" else "bicubic",
                             "method": method, "dataset": "Set5", "image": ["a", "b"], "scale": 4, "protocol": "matlab",
                             "psnr": values, "ssim": 0.9, "height": 1, "width": 1, "channels": 3, "seed": "", "run_id": ""})

    frame = pd.concat([rows("mini", "edsr-s-baseline", "baseline", [29.9, 30.1]),
                       rows("mini", "edsr-s-pcl", "pcl", [29.95, 30.15]),
                       rows("mini", "edsr-s-control", "control", [29.92, 30.12]),
                       rows("bicubic", "bicubic", "bicubic", [28.33, 28.53])], ignore_index=True)
    md = to_markdown(tier_summary(frame), speeds={"edsr-s-pcl": 1.25})
    assert "| **+PCL - control** | +0.030 |" in md and "| **+PCL - baseline** | +0.050 |" in md
    assert "| **baseline - bicubic** | +1.570 |" in md and "`edsr-s-pcl` 1.25" in md
