"""The contrastive term's measured gradient share, the embedding's chance level, and the warm-up knobs.

Expected values come from the definitions in pcl/train/grad_share.py (share = ||g_term|| / ||g_L1||,
cosine of the two gradients), from the dual contrastive loss in pcl/method/loss_formulas.py (chance
level ln(1 + Nf) + ln(1 + Nr)), and from the bitwise training guarantees of docs/method.md §5.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from pcl.cli_train import add_train_parser
from pcl.errors import PCLError
from pcl.method import MethodConfig
from pcl.method.loss_formulas import contrastive_discriminator_chance, contrastive_discriminator_loss
from pcl.train.catalog import load_catalog
from pcl.train.grad_share import diagnostics_summary, measure_share
from pcl.train.runlog import LOG_COLUMNS, RunLog, read_log
from pcl.train.step import TrainStep

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "config" / "experiments.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "experiments.schema.json"


# ---------------------------------------------------------------------------- the measurement


def _linear_case(scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, list[torch.nn.Parameter]]:
    """L1 = scale * a.w and term = b.w: the gradients are exactly scale * a and b."""
    w = torch.nn.Parameter(torch.tensor([0.3, -1.2, 2.0]))
    a, b = torch.tensor([3.0, 4.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    return (a * w).sum() * scale, (b * w).sum(), [w]


def test_share_and_cosine_of_a_linear_case() -> None:
    # gradients a = (3, 4, 0), b = (0, 1, 0): share |b| / |a| = 1/5, cosine a.b / (|a||b|) = 4/5.
    l1, term, params = _linear_case()
    share, cosine = measure_share(l1, term, params).tolist()
    assert share == pytest.approx(0.2, rel=1e-6)
    assert cosine == pytest.approx(0.8, rel=1e-6)


def test_an_l1_scaled_by_255_divides_the_share_by_255() -> None:
    # grad(255 * L1) = 255 * grad(L1): the share scales by 1/255, the direction (cosine) is unchanged.
    s1, c1 = measure_share(*_linear_case(1.0)).tolist()
    s255, c255 = measure_share(*_linear_case(255.0)).tolist()
    assert s255 == pytest.approx(s1 / 255, rel=1e-6)
    assert c255 == pytest.approx(c1, rel=1e-6)


def test_identical_gradients_have_cosine_one_and_the_weight_as_share() -> None:
    # term = 0.5 * L1: the same direction (cosine 1) at half the length (share 0.5).
    w = torch.nn.Parameter(torch.randn(7, generator=torch.Generator().manual_seed(0)))
    l1 = (w - 1).abs().sum()
    share, cosine = measure_share(l1, 0.5 * l1, [w]).tolist()
    assert share == pytest.approx(0.5, rel=1e-6)
    assert cosine == pytest.approx(1.0, rel=1e-6)


def test_a_term_without_gradient_has_share_zero_and_no_cosine() -> None:
    # The released term is computed under no_grad: it gives the SR parameters no gradient at all.
    l1, term, params = _linear_case()
    share, cosine = measure_share(l1, term.detach(), params).tolist()
    assert share == 0.0 and math.isnan(cosine)
    share, cosine = measure_share(l1, None, params).tolist()
    assert share == 0.0 and math.isnan(cosine)


def test_the_measurement_leaves_grad_untouched() -> None:
    # autograd.grad writes nothing to .grad, so the update that follows sees only its own backward.
    l1, term, params = _linear_case()
    measure_share(l1, term, params)
    assert params[0].grad is None
    (l1 + term).backward()
    assert torch.equal(params[0].grad, torch.tensor([3.0, 5.0, 0.0]))


def test_chance_level_is_the_loss_of_logits_that_do_not_depend_on_the_class() -> None:
    # Every logit equal (any value c): each real term is ln(1 + Nf), each fake term ln(1 + Nr).
    for c in (0.0, 2.5, -7.0):
        real, fake = torch.full((128,), c), torch.full((128,), c)
        assert contrastive_discriminator_loss(real, fake).item() == pytest.approx(
            contrastive_discriminator_chance(128, 128), rel=1e-6)
    # the mini tier: 8 images x 16 patch logits on each side -> 2 ln(129) = 9.72
    assert contrastive_discriminator_chance(8 * 16, 8 * 16) == pytest.approx(2 * math.log(129))
    with pytest.raises(PCLError, match="at least one real and one fake"):
        contrastive_discriminator_chance(0, 3)


def test_the_summary_is_the_median_after_the_warmup() -> None:
    # Hand-made rows: validation rows (no loss) and rows up to the warm-up do not count.
    rows = [{"iteration": "2", "loss": "1", "grad_share": "9", "embedding_loss": "5", "embedding_chance": "6"},
            {"iteration": 4, "loss": 1.0, "grad_share": 0.1, "grad_cosine": 0.5, "embedding_loss": 4.0,
             "embedding_chance": 6.0},
            {"iteration": 6, "loss": 1.0, "grad_share": 0.3, "grad_cosine": -0.5, "embedding_loss": 2.0,
             "embedding_chance": 6.0},
            {"iteration": 6, "loss": "", "val_psnr": "30"}]
    summary = diagnostics_summary(rows, warmup=2)
    assert summary["grad_share_median"] == pytest.approx(0.2)
    assert summary["grad_cosine_median"] == pytest.approx(0.0)
    assert summary["embedding_loss_median"] == pytest.approx(3.0)
    assert summary["embedding_chance"] == 6.0 and summary["measurements"] == 2


def test_a_log_without_the_new_columns_is_read_and_extended(tmp_path: Path) -> None:
    # A log.csv written before the gradient columns existed resumes with those columns empty.
    old = ["iteration", "epoch", "lr", "loss", "l1", "contrastive", "embedding_loss", "it_per_s", "elapsed_s",
           "val_psnr", "val_ssim"]
    (tmp_path / "log.csv").write_text(",".join(old) + "\n2,1,0.001,3,2,1,7,1,1,,\n4,3,0.001,3,2,1,7,1,2,,\n",
                                      encoding="utf-8")
    rows = read_log(tmp_path / "log.csv", 2)
    assert len(rows) == 1
    RunLog(tmp_path, 2, enabled=True, tensorboard=False, rows=rows).close()
    with (tmp_path / "log.csv").open(newline="", encoding="utf-8") as handle:
        kept = list(csv.DictReader(handle))
    assert list(kept[0]) == LOG_COLUMNS and kept[0]["loss"] == "3" and kept[0]["grad_share"] == ""


# ---------------------------------------------------------------------------- knobs


def test_warmup_settings_are_validated_with_the_key_named() -> None:
    assert MethodConfig.from_dict({}).embedding_warmup == 0  # the paper's behaviour by default
    for settings, key in (({"embedding_warmup": -1}, "embedding_warmup"), ({"embedding_warmup": 1.5}, "embedding_warmup"),
                          ({"embedding_warmup": True}, "embedding_warmup"), ({"warmup_mode": "later"}, "warmup_mode")):
        with pytest.raises(PCLError, match=key):
            MethodConfig.from_dict(settings)


@pytest.mark.parametrize("settings, key", [
    ({"embedding_warmup": -3}, "embedding_warmup"),
    ({"embedding_warmup": "ten"}, "embedding_warmup"),
    ({"warmup_mode": "sometimes"}, "warmup_mode"),
    ({"tau": 0}, "tau"),
    ({"weight": -1}, "weight"),
])
def test_bad_catalog_knobs_are_one_line_errors_naming_the_key(tmp_path: Path, settings: dict, key: str) -> None:
    data = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    data["experiments"]["rcan-pcl"]["method_settings"].update(settings)
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(PCLError) as info:
        load_catalog(path, schema=SCHEMA)
    message = str(info.value)
    assert "\n" not in message and f"rcan-pcl.method_settings.{key}" in message and str(path) in message


def test_the_listing_shows_each_pcl_experiments_nominal_weight(capsys) -> None:
    # alpha / loss_scale for EDSR-S at 255 is 0.1 / 255 = 0.000392 (config/experiments.yaml: paper preset).
    assert _train("train", "--list", "--tier", "mini", "--catalog", str(CATALOG)) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:-1]}
    assert "alpha 0.1, tau 1, loss_scale backbone (x255), alpha/loss_scale 0.000392" in lines["edsr-s-pcl"]
    assert "alpha 5, tau 1" in lines["edsr-s-pcl-released"]
    assert "alpha" not in lines["edsr-s-control"]


# ---------------------------------------------------------------------------- in the trainer


def _train(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return args.func(args)


def _run(experiment: str, run: Path, train_dir: Path, cache: Path, *extra: str, catalog: Path = CATALOG) -> Path:
    assert _train("train", "--experiment", experiment, "--tier", "smoke", "--run-dir", str(run), "--catalog",
                  str(catalog), "--train-dir", str(train_dir), "--data-cache", str(cache), "--validation-images", "1",
                  "--no-progress", "--batch", "2", "--lr-patch", "12", "--deterministic", "--threads", "1",
                  "--no-tensorboard", *extra) == 0
    return run


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _same(a: Path, b: Path) -> bool:
    x, y = _weights(a), _weights(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _log(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(newline="", encoding="utf-8") as handle:
        return [r for r in csv.DictReader(handle) if r["loss"]]


def _catalog_with(tmp_path: Path, experiment: str, **settings) -> Path:
    data = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))
    data["experiments"][experiment]["method_settings"].update(settings)
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_measuring_every_iteration_leaves_the_trajectory_bitwise_unchanged(tmp_path: Path, train_dir: Path,
                                                                           cache: Path, monkeypatch) -> None:
    # Same seed, same settings: measuring at every iteration must give the weights, the embedding and
    # the logged losses of a run that never measures.
    measured = _run("rcan-pcl", tmp_path / "on", train_dir, cache, "--iterations", "3", "--log-every", "1")
    rows = _log(measured)
    assert set(LOG_COLUMNS) <= set(rows[0]) and all(float(r["grad_share"]) > 0 for r in rows)
    assert all(-1 <= float(r["grad_cosine"]) <= 1 for r in rows)
    # 2 images x 16 patch logits as reals (HR) and as fakes (SR): 2 ln 33
    assert all(float(r["embedding_chance"]) == pytest.approx(2 * math.log(33), rel=1e-5) for r in rows)
    summary = json.loads((measured / "result.json").read_text())["pcl_diagnostics"]
    assert summary["measurements"] == 3 and summary["grad_share_median"] > 0

    original = TrainStep.__call__
    monkeypatch.setattr(TrainStep, "__call__", lambda self, lr, hr, i, measure=None: original(self, lr, hr, i, measure=False))
    plain = _run("rcan-pcl", tmp_path / "off", train_dir, cache, "--iterations", "3", "--log-every", "1")
    assert all(r["grad_share"] == "" for r in _log(plain))
    for name in ("model.safetensors", "embedding.safetensors"):
        assert _same(measured / name, plain / name)
    keys = ("loss", "l1", "contrastive", "embedding_loss")
    assert [[r[k] for k in keys] for r in rows] == [[r[k] for k in keys] for r in _log(plain)]


def test_released_semantics_logs_a_zero_share(tmp_path: Path, train_dir: Path, cache: Path) -> None:
    # The released term has no gradient (docs/method.md §5): share 0 by construction, cosine undefined.
    run = _run("rcan-pcl-released", tmp_path / "rel", train_dir, cache, "--iterations", "2", "--log-every", "1")
    assert [(r["grad_share"], r["grad_cosine"]) for r in _log(run)] == [("0", ""), ("0", "")]


def test_freeze_warmup_keeps_the_sr_weights_while_the_embedding_trains(tmp_path: Path, train_dir: Path,
                                                                        cache: Path) -> None:
    # A 0-iteration run writes the initial weights (same seed); 2 frozen warm-up iterations must keep
    # them bitwise, while the embedding moves away from its own initial weights.
    catalog = _catalog_with(tmp_path, "rcan-pcl", embedding_warmup=2)
    start = _run("rcan-pcl", tmp_path / "start", train_dir, cache, "--iterations", "0", catalog=catalog)
    warm = _run("rcan-pcl", tmp_path / "warm", train_dir, cache, "--iterations", "2", "--log-every", "1",
                catalog=catalog)
    assert _same(start / "model.safetensors", warm / "model.safetensors")
    assert not _same(start / "embedding.safetensors", warm / "embedding.safetensors")
    assert all(r["grad_share"] == "" for r in _log(warm))  # no SR update, nothing to measure
    after = _run("rcan-pcl", tmp_path / "after", train_dir, cache, "--iterations", "3", "--log-every", "1",
                 catalog=catalog)
    assert not _same(start / "model.safetensors", after / "model.safetensors")
    assert [r["grad_share"] != "" for r in _log(after)] == [False, False, True]


def test_term_off_warmup_trains_the_sr_network_like_the_control(tmp_path: Path, train_dir: Path, cache: Path) -> None:
    # With the term switched off for the whole run the SR network sees L1 alone, so it must equal
    # rcan-control bitwise (the samples come from their own generator, docs/method.md §5).
    catalog = _catalog_with(tmp_path, "rcan-pcl", embedding_warmup=2, warmup_mode="term_off")
    off = _run("rcan-pcl", tmp_path / "off", train_dir, cache, "--iterations", "2", "--log-every", "1", catalog=catalog)
    control = _run("rcan-control", tmp_path / "control", train_dir, cache, "--iterations", "2", catalog=catalog)
    assert _same(off / "model.safetensors", control / "model.safetensors")
    assert [r["grad_share"] for r in _log(off)] == ["0", "0"]


def test_the_result_sidecar_carries_the_runs_measured_share(tmp_path) -> None:
    """The verdict reads ``training.term_grad_share`` from result sidecars: evaluate copies the
    medians of the run's result.json (written by the trainer) beside the checkpoint it scores;
    a checkpoint outside a run, or a run without the block, adds nothing."""
    import json

    from pcl.evaluate import _training_diagnostics

    run = tmp_path / "run"
    run.mkdir()
    checkpoint = run / "model.safetensors"
    checkpoint.write_bytes(b"")
    assert _training_diagnostics(checkpoint) == {}
    (run / "result.json").write_text(json.dumps({"pcl_diagnostics": {
        "grad_share_median": 0.0022, "grad_cosine_median": -0.05, "embedding_loss_median": 8.91,
        "embedding_chance": 9.72, "measurements": 3, "after_iteration": 0}}))
    training = _training_diagnostics(checkpoint)["training"]
    assert training["term_grad_share"] == 0.0022 and training["embedding_chance"] == 9.72
    assert training["measurements"] == 3 and training["result_json"] == str(run / "result.json")
    (run / "result.json").write_text("{not json")
    assert _training_diagnostics(checkpoint) == {}
