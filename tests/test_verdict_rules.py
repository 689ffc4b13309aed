"""The verdict's cell and claim rules on hand-built numbers and rows: every status is reachable.

Expected values follow from the rules written in config/claims.yaml and pcl.report.verdict_rules;
printed gains quoted here are from resources/reference/paper/table2.csv (RCAN: Set5 PSNR 32.70 - 32.64
= +0.06, B100 PSNR 27.78 - 27.75 = +0.03).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcl.errors import PCLError
from pcl.report.gains import compute_gains
from pcl.report.verdict import build_verdicts, load_claims
from pcl.report.verdict_rules import (CONTRADICTED, NOT_REPRODUCED, NOT_SIGNIFICANT, NOT_TESTABLE, STATUSES, SUPPORTED,
                                      TOO_FEW, cell_status, combine, reproduces)

EFFECTS = {"psnr": 0.01, "ssim": 0.0001, "lpips": 0.001, "niqe": 0.01, "niqe_y": 0.01}


def test_each_cell_status_by_hand() -> None:
    assert cell_status(0.05, 0.02, 0.08, min_effect=0.01, mde=0.03) == SUPPORTED
    assert cell_status(0.005, 0.001, 0.009, min_effect=0.01, mde=0.003) == NOT_SIGNIFICANT  # real but below 0.01
    assert cell_status(-0.05, -0.08, -0.02, min_effect=0.01, mde=0.03) == CONTRADICTED
    assert cell_status(0.04, -0.01, 0.09, min_effect=0.01, mde=0.08, in_question=0.06) == TOO_FEW  # 0.08 > 0.06
    assert cell_status(0.04, -0.01, 0.09, min_effect=0.01, mde=0.05, in_question=0.06) == NOT_SIGNIFICANT
    assert cell_status(math.nan, math.nan, math.nan, min_effect=0.01, mde=0.05) == NOT_TESTABLE


def test_claim_aggregation_all_and_most() -> None:
    s, f, n, c = SUPPORTED, TOO_FEW, NOT_SIGNIFICANT, CONTRADICTED
    assert combine([s, s]) == s and combine([s, c]) == c and combine([s, f]) == f and combine([s, f, n]) == n
    assert combine([]) == NOT_TESTABLE and combine([NOT_TESTABLE]) == NOT_TESTABLE
    # "in most cases": 3 of 5 supported is most; 2 supported + 1 too few of 5 is undecided for lack of images
    assert combine([s, s, s, c, c], "most") == s
    assert combine([s, s, f, n, n], "most") == f
    assert combine([s, n, n, c, c], "most") == n
    assert combine([c, c, s, n], "most") == c


def test_printed_precision() -> None:
    assert reproduces(0.16, 0.156) and not reproduces(0.16, 0.141) and reproduces(0.0022, 0.00216)


def _rows(experiment: str, dataset: str, values, tier: str = "reported") -> pd.DataFrame:
    values = np.asarray(values, dtype=float)
    return pd.DataFrame({
        "tier": tier, "experiment": experiment, "backbone": "rcan", "method": experiment.split("-", 1)[1],
        "dataset": dataset, "image": [f"img{i:03d}" for i in range(values.size)], "scale": 4, "protocol": "authors",
        "psnr": values, "ssim": values / 100, "height": 1, "width": 1, "channels": 3, "seed": "", "run_id": "",
    })


def _pair(dataset: str, gains, tier: str = "reported", other: str = "official") -> pd.DataFrame:
    base = 28.0 + np.linspace(0.0, 3.0, len(gains))
    return pd.concat([_rows("rcan-pcl", dataset, base + np.asarray(gains), tier),
                      _rows(f"rcan-{other}", dataset, base, tier)], ignore_index=True)


def _claim(datasets: list[str], backbones=("rcan",)) -> dict:
    return {"id": "c", "kind": "gains_positive", "text": "t", "source": "s", "comparison": "vs official",
            "trained_comparisons": ["vs baseline", "vs control"], "backbones": list(backbones), "datasets": datasets,
            "metrics": ["psnr"], "paper_table": 2, "paper_rows": {"rcan": "RCAN"}, "min_effect": EFFECTS}


def _status(rows: pd.DataFrame, claim: dict) -> str:
    (v,) = build_verdicts([claim], rows, compute_gains(rows, draws=2000))
    return v.status


RNG = np.random.default_rng(7)
NOISE = RNG.normal(0.0, 0.01, 100)
NOISE -= NOISE.mean()  # exactly zero mean, sd ~0.01


def test_supported_from_rows() -> None:
    assert _status(_pair("B100", 0.03 + NOISE), _claim(["B100"])) == SUPPORTED


def test_contradicted_from_rows() -> None:
    assert _status(_pair("B100", -0.03 + NOISE), _claim(["B100"])) == CONTRADICTED


def test_too_few_images_from_rows() -> None:
    # Set5: mean +0.01 dB with a spread of 0.2 dB over 5 images: MDE ~0.6 dB, far above the printed +0.06
    assert _status(_pair("Set5", [0.3, -0.2, 0.1, -0.25, 0.1]), _claim(["Set5"])) == TOO_FEW


def test_not_significant_from_rows() -> None:
    # B100: mean 0 with sd 0.01 over 100 images: MDE ~0.003 dB resolves the printed +0.03, and the interval holds 0
    assert _status(_pair("B100", NOISE), _claim(["B100"])) == NOT_SIGNIFICANT


def test_not_testable_without_rows() -> None:
    claim = _claim(["B100"], backbones=("han",))
    claim["paper_rows"] = {"han": "HAN"}
    assert _status(_pair("B100", NOISE), claim) == NOT_TESTABLE


def test_trained_tier_reports_baseline_and_control() -> None:
    rows = pd.concat([_pair("B100", 0.03 + NOISE, "finetune", "baseline"),
                      _rows("rcan-control", "B100", 28.0 + np.linspace(0.0, 3.0, 100) + 0.03, "finetune")],
                     ignore_index=True)
    (v,) = build_verdicts([_claim(["B100"])], rows, compute_gains(rows, draws=500))
    lines = [line for line in v.evidence if re.match(r"finetune/authors \(vs \w+\): ", line)]
    # vs baseline decides (what Table II compares); vs control shows the gain is the fine-tuning, not the term
    assert lines[0].startswith("finetune/authors (vs baseline): supported")
    assert lines[1].startswith("finetune/authors (vs control): not significant") and v.status == SUPPORTED


def test_printed_value_not_reproduced_from_rows() -> None:
    sets = ["Set5", "Set14", "B100", "Urban100", "Manga109"]
    rows = pd.concat([_pair(d, np.full(5, 0.14)) for d in sets], ignore_index=True)
    claim = {"id": "m", "kind": "mean_gain", "text": "t", "source": "s", "comparison": "vs official", "backbone": "rcan",
             "datasets": sets, "printed": {"psnr": 0.16}, "min_effect": EFFECTS}
    assert _status(rows, claim) == NOT_REPRODUCED  # +0.140 does not round to 0.16
    claim["printed"] = {"psnr": 0.14}
    assert _status(rows, claim) == SUPPORTED


def _sidecar(root: Path, experiment: str, sha: str, extra: dict | None = None) -> None:
    path = root / "mini" / experiment / "matlab" / "Set14.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"checkpoint": {"sha256": sha}, **(extra or {})}))


def test_attribution_of_the_released_models(tmp_path: Path) -> None:
    claims = {c["id"]: c for c in load_claims(Path("config/claims.yaml"))}
    empty = pd.DataFrame(columns=["tier", "kind"])
    _sidecar(tmp_path, "edsr-s-pcl-released", "abc")
    _sidecar(tmp_path, "edsr-s-control", "abc")
    (v,) = build_verdicts([claims["attribution-released"]], empty, empty, results_dir=tmp_path)
    assert v.status == CONTRADICTED and "bitwise-identical" in v.evidence[0]


def test_trained_attribution_counts_only_with_a_measurable_term(tmp_path: Path) -> None:
    claims = {c["id"]: c for c in load_claims(Path("config/claims.yaml"))}
    rows = pd.concat([_pair("B100", 0.03 + NOISE, "mini", "control")], ignore_index=True)
    gains = compute_gains(rows, draws=500)
    (v,) = build_verdicts([claims["attribution-trained"]], rows, gains, results_dir=tmp_path)
    # config/claims.yaml: the mini tier's term is ~0.2% of the L1 gradient, below the 1% floor
    assert v.status == NOT_TESTABLE and "not informative" in v.evidence[0] and "0.2%" in v.evidence[0]
    _sidecar(tmp_path, "rcan-pcl", "x", {"training": {"term_grad_share": 0.05}})
    (v,) = build_verdicts([claims["attribution-trained"]], rows, gains, results_dir=tmp_path)
    assert v.status == SUPPORTED and "term 5.0% of the gradient" in v.evidence[0]


def test_claims_file_needs_its_minimum_effects(tmp_path: Path) -> None:
    text = Path("config/claims.yaml").read_text()
    bad = tmp_path / "claims.yaml"
    bad.write_text(text.replace("min_effect: {psnr: 0.01,", "min_effect: {psnr: 0,"))
    with pytest.raises(PCLError, match=r"claims.yaml: min_effect.psnr is 0; give a positive number"):
        load_claims(bad)
    bad.write_text(text.replace("    quantifier: most\n", "    quantifier: many\n"))
    with pytest.raises(PCLError, match=r"\(table3-perceptual\): quantifier 'many' is not one of all, most"):
        load_claims(bad)


def test_every_status_has_a_name_the_check_knows(tmp_path: Path) -> None:
    from pcl.report.check_findings import check_verdict_file
    from pcl.report.check_report import CheckReport

    assert len(set(STATUSES)) == 6
    claims = [{"id": f"c{i}"} for i in range(len(STATUSES))]
    path = tmp_path / "v.md"
    path.write_text("".join(f"- **c{i}**: {s}. x\n" for i, s in enumerate(STATUSES)))
    report = CheckReport()
    check_verdict_file(path, claims, report)
    assert report.items[0].status == "ok", report.items[0].detail


def test_an_ordering_chain_is_read_with_intervals() -> None:
    from pcl.report.cells import CellsMap

    # Table VII's chain alpha 0.1 > 0.25 > 0.5 on Set14 (14 images): 0.1 beats 0.25 by 0.05 dB on every image, but
    # 0.5 beats 0.25 by 0.05 dB: that link goes the other way beyond its interval. The printed Table VII
    # (28.89 > 28.84 > 28.77) follows the chain, so the data decide.
    base = 28.0 + np.linspace(0.0, 3.0, 14)
    noise = NOISE[:14] - NOISE[:14].mean()
    rows = pd.concat([_rows("rcan-a01", "Set14", base + 0.05 + noise, "mini"), _rows("rcan-a025", "Set14", base, "mini"),
                      _rows("rcan-a05", "Set14", base + 0.05 - noise, "mini")], ignore_index=True)
    cells = CellsMap({"rcan-a01": ((7, "alpha0.1"),), "rcan-a025": ((7, "alpha0.25"),), "rcan-a05": ((7, "alpha0.5"),)})
    claim = {"id": "o", "kind": "ordering", "text": "t", "source": "s", "table": 7, "best": "alpha0.1",
             "others": ["alpha0.25"], "chain": ["alpha0.1", "alpha0.25", "alpha0.5"], "datasets": ["Set14"],
             "metric": "psnr", "min_effect": EFFECTS}
    (v,) = build_verdicts([claim], rows, pd.DataFrame(columns=["tier", "kind"]), cells=cells)
    assert v.status == CONTRADICTED and v.evidence[0].startswith("the paper's own printed values: 2 of 2")
    assert "Set14 alpha0.1 - alpha0.25: +0.050" in v.evidence[1] and "alpha0.25 - alpha0.5: -0.050" in v.evidence[1]
