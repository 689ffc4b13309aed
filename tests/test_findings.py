"""`pcl gains`, `pcl verdict`, `pcl pages` and `pcl figures` from the command line, the checks of the
findings, and the figures' bad-input errors (one line, exit 2, no partial PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcl.cli import main
from pcl.data.images import read_image, write_png
from pcl.data.imresize import bicubic_degrade, bicubic_upscale
from pcl.errors import PCLError
from pcl.report.check_findings import check_gains_file, check_verdict_file
from pcl.report.check_report import CheckReport
from pcl.report.crops import Crop, comparison_figure
from pcl.report.html import markdown_to_html
from pcl.report.results import read_results
from pcl.report.verdict import load_claims
from pcl.resources import resource_path

SET5 = resource_path("benchmarks", "Set5", "HR")


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("results")
    assert main(["ingest-logs", "--logs-dir", "resources/reference/released_logs", "--out-dir", str(out / "reported")]) == 0
    return out


def test_gains_verdict_pages_end_to_end(logs: Path, tmp_path: Path, capsys) -> None:
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    assert main(["gains", "--results", str(logs), "--out-dir", str(tables), "--figures-dir", str(figures), "--draws", "500"]) == 0
    gains = pd.read_csv(tables / "gains.csv")
    assert len(gains) == 40  # 4 backbones x 5 sets x (PSNR, SSIM): every +PCL/official pair of the logs
    assert (figures / "gains_forest_psnr.png").stat().st_size > 10_000
    assert main(["verdict", "--results", str(logs), "--gains", str(tables / "gains.csv"), "--out", str(tmp_path / "v.md"),
                 "--results-dir", str(logs)]) == 0
    report = CheckReport()
    check_gains_file(read_results(sorted(logs.rglob("*.csv"))), tables / "gains.csv", report)
    check_verdict_file(tmp_path / "v.md", load_claims(Path("config/claims.yaml")), report,
                       results=read_results(sorted(logs.rglob("*.csv"))), gains_csv=tables / "gains.csv")
    assert [i.status for i in report.items] == ["ok", "ok"], [i.detail for i in report.items]
    # gains.csv carries each cell's minimum detectable effect and says the logs have one seed (spread unknown)
    assert gains["mde"].notna().all() and gains["seed_sd"].isna().all() and set(gains["resampled"]) == {"images"}
    text = (tmp_path / "v.md").read_text()
    # docs/method.md §8.2: the logs give +0.141 dB for NLSN's five-set mean, the paper prints 0.16
    assert "- **nlsn-mean-gain**: printed value not reproduced." in text
    assert "- **table4-config3-best**: contradicted." in text  # table4.csv: config 3 loses 3 of its 20 PSNR comparisons
    assert "| gain [95% CI] | MDE | improved |" in text
    assert main(["pages", str(tables / "gains.md"), str(tmp_path / "v.md"), "--out-dir", str(tmp_path / "html")]) == 0
    page = (tmp_path / "html" / "v.html").read_text()
    assert "<h1>Verdict on the paper" in page and "<table>" in page


def test_check_catches_an_edited_gain_and_a_dropped_claim(logs: Path, tmp_path: Path) -> None:
    rows = read_results(sorted(logs.rglob("*.csv")))
    assert main(["gains", "--results", str(logs), "--out-dir", str(tmp_path), "--figures-dir", str(tmp_path), "--draws", "200"]) == 0
    gains = pd.read_csv(tmp_path / "gains.csv")
    gains.loc[3, "mean_gain"] += 0.01
    gains.iloc[:-1].to_csv(tmp_path / "edited.csv", index=False)  # one value changed, one row dropped
    report = CheckReport()
    check_gains_file(rows, tmp_path / "edited.csv", report)
    (item,) = report.items
    assert item.status == "miss" and "the rows give" in item.detail and "not in gains.csv" in item.detail
    verdict = tmp_path / "v.md"
    verdict.write_text("# Verdict\n\n- **attribution**: supported. \"x\" (y)\n")
    report = CheckReport()
    check_verdict_file(verdict, load_claims(Path("config/claims.yaml")), report)
    assert report.items[0].status == "miss" and "table2-all-surpass" in report.items[0].detail


def test_markdown_subset_to_html() -> None:
    page = markdown_to_html("# T\n\nA `code` and **bold** [link](x.html).\n\n| a | b |\n|---|---:|\n| **p** | 1 |\n\n- one\n  - two\n",
                            title="T")
    assert "<code>code</code>" in page and "<strong>bold</strong>" in page and '<a href="x.html">link</a>' in page
    assert '<tr class="paper"><td><strong>p</strong></td><td class=num>1</td></tr>' in page
    assert 'margin-left:1.5em">two</li>' in page


@pytest.fixture()
def sr_images(tmp_path: Path) -> dict[str, Path]:
    hr = read_image(SET5 / "butterfly.png")
    bic = bicubic_upscale(bicubic_degrade(hr, 4), 4)
    out = {}
    for name, img in (("Bicubic", bic), ("+PCL", np.clip(bic.astype(int) + 1, 0, 255).astype(np.uint8))):
        out[name] = tmp_path / f"{name}.png"
        write_png(out[name], img)
    return out


def test_crop_outside_the_image_and_missing_models(sr_images: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "fig.png"
    with pytest.raises(PCLError, match="outside the 256x256 image"):
        comparison_figure(SET5 / "butterfly.png", sr_images, Crop(240, 10, 32), out, title="t")
    with pytest.raises(PCLError, match="SR image .*absent.png not found"):
        comparison_figure(SET5 / "butterfly.png", {"x": tmp_path / "absent.png"}, Crop(10, 10, 32), out, title="t")
    assert not out.exists()  # nothing partial
    comparison_figure(SET5 / "butterfly.png", sr_images, Crop(10, 10, 32), out, title="t")
    assert out.stat().st_size > 10_000


def test_figures_cli_names_an_image_that_was_not_evaluated(logs: Path, tmp_path: Path, capsys) -> None:
    code = main(["figures", "--results", str(logs), "--results-dir", str(logs), "--runs-root", str(tmp_path / "runs"),
                 "--image", "Set5/nosuchimage", "--hr", f"Set5={SET5}", "--tiers", "reported", "--curve-tiers",
                 "--out-dir", str(tmp_path / "fig")])
    # the logs have +PCL and official rows but no SR images: the figure cannot be made
    err = capsys.readouterr().err
    assert code == 2 and "nosuchimage" in err and err.count("\n") == 1
    assert not list((tmp_path / "fig").glob("crops_*.png")) if (tmp_path / "fig").exists() else True


def test_real_photos_figure_and_its_bad_input(tmp_path: Path) -> None:
    # Fig. 4 style on a folder of "real" LR photos (two Set5 LR images stand in) with a tiny EDSR
    import json

    import torch

    from pcl.models import build_model
    from pcl.models.checkpoints import save_checkpoint
    from pcl.report.figure_set import no_reference_figures

    lr_dir = tmp_path / "real"
    for name in ("baby", "bird"):
        write_png(lr_dir / f"{name}.png", bicubic_degrade(read_image(SET5 / f"{name}.png"), 4)[:32, :32])
    torch.manual_seed(0)
    ckpt = save_checkpoint(build_model("edsr-s", n_resblocks=1, n_feats=8), tmp_path / "m.safetensors", arch="edsr-s",
                           config={"n_resblocks": 1, "n_feats": 8}, provenance={})
    written = no_reference_figures(lr_dir, {"a": ckpt, "b": ckpt}, tmp_path / "fig", limit=2)
    record = json.loads((tmp_path / "fig" / "real_images.json").read_text())
    assert sorted(record["images"]) == ["baby.png", "bird.png"] and len(written) == 3
    assert record["images"]["baby.png"]["niqe"]["a"] == record["images"]["baby.png"]["niqe"]["b"]  # same model
    (lr_dir / "notes.txt").write_text("x")
    with pytest.raises(PCLError, match="not images: notes.txt"):
        no_reference_figures(lr_dir, {"a": ckpt}, tmp_path / "fig2")
    assert not (tmp_path / "fig2").exists()


def test_realsrset_is_placed_by_hand(tmp_path: Path, capsys) -> None:
    assert main(["download", "--dataset", "RealSRSet", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "testsets/RealSRSet" in err and str(tmp_path / "RealSRSet") in err
