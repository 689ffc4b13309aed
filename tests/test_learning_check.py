"""Rule `learns` of `pcl check` (the mini tier) catches a broken trainer, a detached contrastive term
and a drift from the stored values, and the mini table.

A short real training of the mini tier's EDSR-S is run twice: as is, and with the LR/HR pairing
broken (every LR patch paired with the HR patch of another image of the batch, the classic
misaligned-data bug). Scored on Set5 against the harness's own bicubic row, the correct run learns
and the broken one falls far short, and the rule says so. The margin used here is the short run's
(the tier's own 1 dB margin needs the full 3000 iterations).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from pcl.cli_train import add_train_parser
from pcl.errors import PCLError
from pcl.evaluate import evaluate_bicubic, evaluate_model
from pcl.report.check_config import DEFAULT_TOLERANCES, load_tolerances
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


# --- weights hashes and stored values (hand-made rows and sidecars) ----------------------------------


def _mini_results(root: Path, shas: dict[str, str], psnr: dict[str, float]) -> pd.DataFrame:
    """Set5 (matlab) rows of the four mini runs, each image at the run's PSNR, with sidecars recording
    the given checkpoint sha256 as `pcl evaluate` does; plus the bicubic row at 28.429 dB (README)."""
    from conftest import result_rows, write_results

    groups = [result_rows("bicubic", "bicubic", "Set5", backbone="bicubic", method="bicubic", psnr=28.429, n=5)]
    for experiment, value in psnr.items():
        method = experiment[len("edsr-s-"):]
        groups.append(result_rows("mini", experiment, "Set5", backbone="edsr-s", method=method, psnr=value, n=5))
    frame = write_results(root, *groups, source=True)
    for experiment, sha in shas.items():
        sidecar = root / "mini" / experiment / "matlab" / "Set5.json"
        sidecar.write_text(json.dumps({"checkpoint": {"sha256": sha}}))
    return frame


README_PSNR = {"edsr-s-baseline": 29.805, "edsr-s-pcl": 29.936, "edsr-s-control": 29.936, "edsr-s-pcl-released": 29.936}
"""The mini tier's Set5 means of the README's run (the values config/tolerances.yaml stores)."""


def _mini_check(frame: pd.DataFrame, rule: dict | None = None) -> CheckReport:
    rule = rule or load_tolerances(DEFAULT_TOLERANCES)["mini"]
    report = CheckReport()
    check_learning("mini", rule, frame[frame["tier"] == "mini"], frame[frame["tier"] == "bicubic"], report)
    return report


@pytest.mark.parametrize(
    "pcl_sha, released_sha, expect",
    [
        # as trained: +PCL moved the weights, as-released kept the control's
        ("aa" * 32, "cc" * 32, {"term-moves": "ok", "bitwise": "ok"}),
        # a silently detached paper-semantics term: +PCL ends bitwise equal to the control
        ("cc" * 32, "cc" * 32, {"term-moves": "miss", "bitwise": "ok"}),
        # the as-released term reached the network: its weights left the control's
        ("aa" * 32, "bb" * 32, {"term-moves": "ok", "bitwise": "miss"}),
    ],
)
def test_weights_hashes_against_the_control(tmp_path: Path, pcl_sha: str, released_sha: str, expect: dict) -> None:
    # The control's hash is "cc"*32 in every case; the expected statuses follow from the two rules
    # (paper semantics must differ from the control, released semantics must equal it).
    shas = {"edsr-s-baseline": "11" * 32, "edsr-s-pcl": pcl_sha, "edsr-s-control": "cc" * 32,
            "edsr-s-pcl-released": released_sha}
    report = _mini_check(_mini_results(tmp_path, shas, README_PSNR))
    got = {i.check: i.status for i in report.items if i.check in expect}
    assert got == expect, [(i.check, i.detail) for i in report.items]
    for item in report.items:
        if item.check in expect:
            assert "same-machine comparison" in item.detail  # bitwise only because one machine trained both
    if expect["term-moves"] == "miss":
        (miss,) = [i for i in report.misses if i.check == "term-moves"]
        assert miss.subject == "edsr-s-pcl != edsr-s-control" and "had no gradient" in miss.detail


def test_missing_hash_is_a_miss_for_the_paper_run(tmp_path: Path) -> None:
    # the +PCL sidecar lacks the checkpoint: "the term moved the weights" cannot be shown
    shas = {"edsr-s-control": "cc" * 32, "edsr-s-pcl-released": "cc" * 32}
    report = _mini_check(_mini_results(tmp_path, shas, README_PSNR))
    (item,) = [i for i in report.items if i.check == "term-moves"]
    assert item.status == "miss" and "sidecar without the checkpoint sha256" in item.detail


@pytest.mark.parametrize(
    "baseline, status",
    [
        # offsets measured between machines with the earlier recipe (config/tolerances.yaml):
        (29.805 + 0.054, "ok"),  # AMD EPYC VM 2 against VM 1
        (29.805 - 0.079, "ok"),  # the largest gap, Intel Xeon against AMD EPYC VM 1
        (29.805 + 0.16, "ok"),  # exactly at the derived tolerance (2 x 0.079 rounded up)
        (29.805 + 0.17, "miss"),  # beyond it
        (29.805 - 0.17, "miss"),
    ],
)
def test_stored_values_within_the_cross_machine_tolerance(tmp_path: Path, baseline: float, status: str) -> None:
    # the shipped rule: stored values = README's run, tolerance 0.16 dB (config/tolerances.yaml)
    rule = load_tolerances(DEFAULT_TOLERANCES)["mini"]
    assert rule["cross_machine_db"] == 0.16 and rule["expected_psnr"] == README_PSNR
    shas = {"edsr-s-pcl": "aa" * 32, "edsr-s-control": "cc" * 32, "edsr-s-pcl-released": "cc" * 32}
    report = _mini_check(_mini_results(tmp_path, shas, {**README_PSNR, "edsr-s-baseline": baseline}), rule)
    expected = {i.subject: i for i in report.items if i.check == "expected"}
    assert set(expected) == {f"{e} (matlab)" for e in README_PSNR}
    item = expected["edsr-s-baseline (matlab)"]
    assert item.status == status and item.tolerance == "±0.16 dB cross-machine" and "cross-machine" in item.detail
    assert {i.status for s, i in expected.items() if s != "edsr-s-baseline (matlab)"} == {"ok"}
    assert report.exit_code == (0 if status == "ok" else 1), report.render()


def test_stored_value_of_a_run_that_did_not_run_is_a_miss(tmp_path: Path) -> None:
    psnr = {k: v for k, v in README_PSNR.items() if k != "edsr-s-pcl-released"}
    report = _mini_check(_mini_results(tmp_path, {"edsr-s-pcl": "aa" * 32, "edsr-s-control": "cc" * 32}, psnr))
    (item,) = [i for i in report.items if i.check == "expected" and i.status == "miss"]
    assert item.subject == "edsr-s-pcl-released (matlab)" and "no finite matlab Set5 result" in item.detail


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.pop("cross_machine_db"), r"tiers\.mini\.cross_machine_db: missing"),
        (lambda m: m.update(cross_machine_db=-0.1), r"tiers\.mini\.cross_machine_db: -0\.1 must be"),
        (lambda m: m["expected_psnr"].update({"edsr-s-pcl": "high"}), r"tiers\.mini\.expected_psnr\.edsr-s-pcl: 'high'"),
        (lambda m: m.update(expected_psnr=[29.85]), r"tiers\.mini\.expected_psnr: must map"),
    ],
)
def test_cross_machine_keys_are_validated(tmp_path: Path, edit, message: str) -> None:
    data = yaml.safe_load(DEFAULT_TOLERANCES.read_text())
    edit(data["tiers"]["mini"])
    path = tmp_path / "tol.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PCLError, match=message):
        load_tolerances(path)


def test_cross_machine_keys_belong_to_rule_learns(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_TOLERANCES.read_text())
    data["tiers"]["smoke"]["cross_machine_db"] = 0.11
    path = tmp_path / "tol.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PCLError, match=r"tiers\.smoke\.cross_machine_db: not a key of rule 'finite'"):
        load_tolerances(path)


@pytest.mark.parametrize("set14_baseline, status", [(26.0, "ok"), (25.0, "miss")])
def test_baseline_must_beat_bicubic_on_a_set_it_never_validated_on(tmp_path: Path, set14_baseline: float,
                                                                   status: str) -> None:
    # Set14 rows beside the Set5 ones: bicubic 25.5 dB there (a hand-chosen level); the baseline at
    # 26.0 dB is above it (ok), at 25.0 dB below it (miss), with no margin asked (the 1 dB margin is
    # Set5's, the validation set's).
    from conftest import result_rows, write_results

    frame = _mini_results(tmp_path, {}, README_PSNR)
    extra = write_results(tmp_path / "set14",
                          result_rows("bicubic", "bicubic", "Set14", backbone="bicubic", method="bicubic", psnr=25.5, n=14),
                          result_rows("mini", "edsr-s-baseline", "Set14", backbone="edsr-s", method="baseline",
                                      psnr=set14_baseline, n=14), source=True)
    report = _mini_check(pd.concat([frame, extra], ignore_index=True))
    (item,) = [i for i in report.items if i.row == "beats bicubic on a set it never saw"]
    assert item.dataset == "Set14" and item.status == status
    assert item.detail.startswith(f"{set14_baseline - 25.5:+.3f} dB over bicubic")
