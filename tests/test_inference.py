"""Model inference (pcl.inference) and `pcl evaluate --model NAME --checkpoint PATH`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pcl.cli import main
from pcl.errors import PCLError
from pcl.inference import (
    InferenceSettings,
    ModelPredictor,
    check_settings,
    forward_self_ensemble,
    forward_tiled,
    image_to_tensor,
    receptive_field_radius,
)
from pcl.models import build_model
from pcl.models.checkpoints import save_checkpoint

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")

TINY_EDSR = dict(n_resblocks=2, n_feats=8)
TINY_RCAN = dict(n_resgroups=1, n_resblocks=1, n_feats=8, reduction=4)
TINY_NLSN = dict(n_resblocks=2, n_feats=8, chunk_size=16, n_hashes=2)


def _edsr(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("edsr-s", **TINY_EDSR).eval()


def _rng_image(h: int, w: int, seed: int = 0, gray: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if gray else (h, w, 3)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


# --- receptive field and tiling ----------------------------------------------------------------


def test_receptive_field_radius_matches_the_gradient_footprint() -> None:
    model = _edsr()
    # Hand derivation: head conv 1 + 2 convs per ResBlock (2 blocks) + body conv 1 + tail.0.0 1 = 7
    # LR pixels; the two convs after the PixelShuffles add 1/2 + 1/4 LR pixel, which at the worst
    # sub-pixel position reaches one more LR pixel: 2 * n_resblocks + 4 = 8.
    radius = receptive_field_radius(model)
    assert radius == 2 * TINY_EDSR["n_resblocks"] + 4 == 8
    assert receptive_field_radius(build_model("edsr-l", n_resblocks=3, n_feats=8)) == 10
    # The gradient of one output pixel reaches exactly `radius` LR pixels from its own LR pixel.
    x = torch.rand(1, 3, 31, 31, requires_grad=True)
    out = model(x)
    centre = 15
    footprint = 0
    for sub in range(4):
        x.grad = None
        out[0, 0, centre * 4 + sub, centre * 4 + sub].backward(retain_graph=True)
        rows, cols = torch.nonzero(x.grad.abs().sum(1)[0] > 0, as_tuple=True)
        footprint = max(footprint, int((rows - centre).abs().max()), int((cols - centre).abs().max()))
    assert footprint == radius
    assert receptive_field_radius(build_model("rcan", **TINY_RCAN)) is None


def test_edsr_tiles_with_enough_overlap_equal_the_whole_image() -> None:
    model = _edsr()
    radius = receptive_field_radius(model)
    x = torch.rand(1, 3, 37, 41) * 255
    fwd = model.forward_official
    # PyTorch's native convolution: the arithmetic per output pixel does not depend on the input
    # size, so with overlap >= radius the stitched output is bit-identical.
    with torch.inference_mode(), torch.backends.mkldnn.flags(enabled=False):
        whole = fwd(x)
        assert torch.equal(forward_tiled(fwd, x, scale=4, tile=16, overlap=radius), whole)
        assert torch.equal(forward_tiled(fwd, x, scale=4, tile=9, overlap=radius + 3), whole)
        short = forward_tiled(fwd, x, scale=4, tile=16, overlap=radius - 1)
        assert (short - whole).abs().max() > 1e-3  # too little context changes the seams
    # oneDNN picks size-dependent algorithms: same to float rounding (0..255 scale).
    with torch.inference_mode():
        whole = fwd(x)
        assert (forward_tiled(fwd, x, scale=4, tile=16, overlap=radius) - whole).abs().max() < 1e-3


def test_predictor_default_overlap_is_the_radius_and_tiling_matches_uint8() -> None:
    model = _edsr()
    lr = _rng_image(30, 26)
    plain = ModelPredictor(model, InferenceSettings())(lr)
    tiled = ModelPredictor(model, InferenceSettings(tile=12))
    assert tiled.settings.tile_overlap == receptive_field_radius(model)
    with torch.backends.mkldnn.flags(enabled=False):
        assert np.array_equal(ModelPredictor(model, InferenceSettings())(lr), tiled(lr))
    assert plain.shape == (120, 104, 3) and plain.dtype == np.uint8


def test_tiling_a_global_model_is_refused_unless_allowed() -> None:
    torch.manual_seed(0)
    rcan = build_model("rcan", **TINY_RCAN).eval()
    with pytest.raises(PCLError, match="--allow-global-tiling"):
        ModelPredictor(rcan, InferenceSettings(tile=16), name="rcan")
    lr = _rng_image(40, 40)
    allowed = ModelPredictor(rcan, InferenceSettings(tile=16, allow_global_tiling=True), name="rcan")
    facts = allowed.describe()
    assert facts["tile"] == 16 and facts["tile_overlap"] == 10 and facts["tile_invariant"] is False
    # channel attention pools over the whole image: tiles change the output
    x = image_to_tensor(lr, value_scale=1.0)
    with torch.inference_mode():
        whole = rcan.forward_official(x)
        tiles = forward_tiled(rcan.forward_official, x, scale=4, tile=16, overlap=4)
    assert (tiles - whole).abs().max() > 1e-4


def test_setting_errors() -> None:
    model = _edsr()
    with pytest.raises(PCLError, match="choose one"):
        check_settings(model, InferenceSettings(tile=8, chop=True))
    with pytest.raises(PCLError, match="needs --tile"):
        check_settings(model, InferenceSettings(tile_overlap=4))
    with pytest.raises(PCLError, match="positive"):
        check_settings(model, InferenceSettings(tile=0))
    with pytest.raises(PCLError, match="unknown precision"):
        check_settings(model, InferenceSettings(precision="fp8"))
    with pytest.raises(PCLError, match="fp16 needs --device cuda"):
        check_settings(model, InferenceSettings(precision="fp16"))
    if torch.cuda.is_available():  # on a GPU host the same call must be accepted, not skipped
        assert check_settings(model, InferenceSettings(device="cuda")).device == "cuda"
    else:
        with pytest.raises(PCLError, match="CUDA is not available; use --device cpu"):
            check_settings(model, InferenceSettings(device="cuda"))


def test_chop_matches_whole_image_for_edsr_away_from_seams_and_keeps_size() -> None:
    model = _edsr()
    lr = _rng_image(44, 50)
    chopped = ModelPredictor(model, InferenceSettings(chop=True))(lr)
    whole = ModelPredictor(model, InferenceSettings())(lr)
    assert chopped.shape == whole.shape
    # shave 10 >= radius 8 of this tiny EDSR, so chop is exact up to float rounding here
    assert np.abs(chopped.astype(int) - whole.astype(int)).max() <= 1


# --- self-ensemble -----------------------------------------------------------------------------


class _Nearest(nn.Module):
    """Identity-like x4 model: nearest-neighbour upsampling plus ``c`` times the column index."""

    def __init__(self, ramp: float = 0.0) -> None:
        super().__init__()
        self.scale, self.ramp = 4, ramp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = x.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
        cols = torch.arange(up.shape[-1], dtype=up.dtype)
        return up + self.ramp * cols


def test_self_ensemble_of_an_identity_like_model() -> None:
    x = torch.rand(1, 3, 7, 5)
    plain = _Nearest()(x)
    # every transform is undone exactly; only the float mean of 8 equal values may round
    assert torch.allclose(forward_self_ensemble(_Nearest(), x), plain, rtol=0, atol=1e-6)
    # A column ramp seen through the 8 flips/transposes becomes j, W-1-j, i, H-1-i (twice each),
    # whose mean is ((W-1) + (H-1)) / 4 everywhere (hand derivation; output 28 x 20).
    ramp = 0.01
    ens = forward_self_ensemble(_Nearest(ramp), x)
    expected = plain + ramp * ((20 - 1) + (28 - 1)) / 4
    assert torch.allclose(ens, expected, atol=1e-6)
    # through the predictor (uint8 in/out): identity-like model, ensemble == plain nearest upsampling
    lr = _rng_image(6, 9)
    out = ModelPredictor(_Nearest(), InferenceSettings(self_ensemble=True))(lr)
    assert np.array_equal(out, lr.repeat(4, 0).repeat(4, 1))


# --- precision, seeds, gray images --------------------------------------------------------------


def test_bf16_on_cpu_is_close_to_fp32() -> None:
    model = _edsr()
    lr = _rng_image(24, 24)
    fp32 = ModelPredictor(model, InferenceSettings())(lr).astype(float)
    bf16 = ModelPredictor(model, InferenceSettings(precision="bf16"))(lr).astype(float)
    mse = np.mean((fp32 - bf16) ** 2)
    # bf16 keeps 8 mantissa bits: outputs differ, but by a few grey levels at most (random weights)
    assert mse > 0
    assert 10 * math.log10(255**2 / mse) > 30


def test_nlsn_is_repeatable_with_a_seed_and_seed_dependent() -> None:
    torch.manual_seed(0)
    nlsn = build_model("nlsn", **TINY_NLSN).eval()
    lr = _rng_image(20, 24)
    x = image_to_tensor(lr, value_scale=1 / 255)
    a = ModelPredictor(nlsn, InferenceSettings(seed=3), name="nlsn")
    b = ModelPredictor(nlsn, InferenceSettings(seed=3), name="nlsn")
    c = ModelPredictor(nlsn, InferenceSettings(seed=4), name="nlsn")
    assert a.stochastic
    first = a.run(x)
    torch.rand(5)  # global RNG moved on: the predictor re-seeds before every image
    assert torch.equal(a.run(x), first)
    assert torch.equal(b.run(x), first)
    assert not torch.equal(c.run(x), first)  # docs/backbones.md §6.3: another seed, another output
    assert np.array_equal(a(lr), b(lr))


def test_gray_images_are_replicated_to_rgb() -> None:
    model = _edsr()
    gray = _rng_image(20, 18, gray=True)
    out = ModelPredictor(model, InferenceSettings())(gray)
    rgb = ModelPredictor(model, InferenceSettings())(np.repeat(gray[:, :, None], 3, axis=2))
    assert out.shape == (80, 72, 3)
    assert np.array_equal(out, rgb)


def test_official_value_scale_is_used() -> None:
    # EDSR-PyTorch feeds u8 * rgb_range/255 and quantises out * 255/rgb_range (docs/backbones.md §1.1)
    model = _edsr()
    lr = _rng_image(12, 12)
    with torch.inference_mode():
        ref = model.forward_official(image_to_tensor(lr, value_scale=1.0))
    expected = ref.mul(1.0).clamp(0, 255).round()[0].permute(1, 2, 0).numpy().astype(np.uint8)
    assert np.array_equal(ModelPredictor(model, InferenceSettings())(lr), expected)


# --- pcl evaluate -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny_edsr.safetensors"
    save_checkpoint(_edsr(), path, arch="edsr-s", config=TINY_EDSR, provenance={"test": "random weights"})
    return path


def _evaluate(capsys, *argv: str) -> tuple[int, str]:
    code = main(["evaluate", *argv])
    return code, capsys.readouterr().err.strip()


def test_evaluate_cli_end_to_end(tmp_path: Path, set5_dir: Path, tiny_checkpoint: Path, capsys) -> None:
    out = tmp_path / "results" / "released" / "edsr-s-official" / "authors" / "Set5.csv"
    code, err = _evaluate(capsys, "--model", "edsr-s", "--checkpoint", str(tiny_checkpoint), "--hr-dir", str(set5_dir),
                          "--dataset", "Set5", "--protocol", "authors", "--method", "official", "--out", str(out))
    assert code == 0, err
    rows = pd.read_csv(out)
    assert len(rows) == 5 and set(rows["image"]) == {"baby", "bird", "butterfly", "head", "woman"}
    assert set(rows["tier"]) == {"released"} and set(rows["experiment"]) == {"edsr-s-official"}
    assert rows["seed"].isna().all()  # EDSR draws no random numbers
    assert rows["psnr"].notna().all()
    meta = json.loads(out.with_suffix(".json").read_text())
    from pcl.hashing import sha256_file

    assert meta["checkpoint"]["sha256"] == sha256_file(tiny_checkpoint)
    assert meta["checkpoint"]["loaded_as"] == "harness sidecar"
    for key in ("precision", "device", "tile", "tile_overlap", "self_ensemble", "seed", "packages", "git",
                "wall_seconds", "images_per_second", "model", "metrics"):
        assert key in meta, key
    assert meta["packages"]["torch"] and "commit" in meta["git"]
    assert meta["images"] == 5 and meta["tile"] is None and meta["precision"] == "fp32"
    assert rows["run_id"].iloc[0] == f"tiny_edsr.safetensors@{meta['checkpoint']['sha256'][:12]}"
    # `auto` reads the architecture from the sidecar and gives the same rows
    out2 = tmp_path / "auto.csv"
    code, err = _evaluate(capsys, "--model", "auto", "--checkpoint", str(tiny_checkpoint), "--hr-dir", str(set5_dir),
                          "--dataset", "Set5", "--protocol", "authors", "--method", "official", "--out", str(out2))
    assert code == 0, err
    assert pd.read_csv(out2)["psnr"].tolist() == rows["psnr"].tolist()


def test_evaluate_nlsn_records_the_seed(tmp_path: Path, set5_dir: Path, capsys) -> None:
    torch.manual_seed(0)
    ckpt = tmp_path / "nlsn.safetensors"
    save_checkpoint(build_model("nlsn", **TINY_NLSN), ckpt, arch="nlsn", config=TINY_NLSN, provenance={})
    hr = tmp_path / "hr"
    hr.mkdir()
    (hr / "bird.png").write_bytes((set5_dir / "bird.png").read_bytes())
    out = tmp_path / "rows" / "nlsn.csv"  # beside the checkpoint, its nlsn.json sidecar would be the checkpoint's
    code, err = _evaluate(capsys, "--model", "nlsn", "--checkpoint", str(ckpt), "--hr-dir", str(hr), "--dataset", "Set5",
                          "--seed", "7", "--out", str(out))
    assert code == 0, err
    first = pd.read_csv(out)
    assert first["seed"].tolist() == [7]
    assert json.loads(out.with_suffix(".json").read_text())["stochastic"] is True
    code, _ = _evaluate(capsys, "--model", "nlsn", "--checkpoint", str(ckpt), "--hr-dir", str(hr), "--dataset", "Set5",
                        "--seed", "7", "--out", str(out))
    assert pd.read_csv(out)["psnr"].tolist() == first["psnr"].tolist()


def test_evaluate_error_messages(tmp_path: Path, set5_dir: Path, tiny_checkpoint: Path, capsys) -> None:
    common = ["--hr-dir", str(set5_dir), "--dataset", "Set5", "--out", str(tmp_path / "x.csv")]
    code, err = _evaluate(capsys, "--model", "srgan", "--checkpoint", str(tiny_checkpoint), *common)
    assert code == 2 and "unknown model 'srgan'" in err and "edsr-s" in err
    code, err = _evaluate(capsys, "--model", "embedding", "--checkpoint", str(tiny_checkpoint), *common)
    assert code == 2 and "not a super-resolution model" in err
    code, err = _evaluate(capsys, "--model", "edsr-s", "--checkpoint", str(tmp_path / "missing.pt"), *common)
    assert code == 2 and "missing.pt not found" in err
    code, err = _evaluate(capsys, "--model", "edsr-s", *common)
    assert code == 2 and "needs --checkpoint" in err
    code, err = _evaluate(capsys, "--model", "edsr-l", "--checkpoint", str(tiny_checkpoint), *common)
    assert code == 2 and "saved as architecture 'edsr-s'" in err
    # a plain state_dict that does not fit the named paper architecture: the loader's message
    wrong = tmp_path / "tiny.pt"
    torch.save(_edsr().state_dict(), wrong)
    code, err = _evaluate(capsys, "--model", "edsr-s", "--checkpoint", str(wrong), *common)
    assert code == 2 and "does not fit architecture 'edsr-s'" in err and "wrong-shape keys" in err
    code, err = _evaluate(capsys, "--model", "rcan", "--checkpoint", str(wrong), *common)
    assert code == 2 and "does not fit architecture 'rcan'" in err and "missing keys" in err
    code, err = _evaluate(capsys, "--model", "auto", "--checkpoint", str(wrong), *common)
    assert code == 2 and "fits no paper architecture exactly" in err
    # --tile on RCAN without the override
    torch.manual_seed(0)
    rcan = tmp_path / "rcan.safetensors"
    save_checkpoint(build_model("rcan", **TINY_RCAN), rcan, arch="rcan", config=TINY_RCAN, provenance={})
    code, err = _evaluate(capsys, "--model", "rcan", "--checkpoint", str(rcan), "--tile", "32", *common)
    assert code == 2 and "--allow-global-tiling" in err
    code, err = _evaluate(capsys, "--model", "bicubic", "--checkpoint", str(rcan), *common)
    assert code == 2 and "takes no --checkpoint" in err
    code, err = _evaluate(capsys, "--model", "edsr-s", "--checkpoint", str(tiny_checkpoint), "--tier", "nope", *common)
    assert code == 2 and "unknown tier 'nope'" in err


# --- benchmarks (code paths; timings are never asserted) ------------------------------------------


def test_gpu_rcan_throughput_code_path_runs_on_cpu(set5_dir: Path) -> None:
    from pcl.bench import BENCHMARKS
    from pcl.bench.eval_bench import gpu_rcan_throughput

    assert {"eval", "nlsn-seed"} <= set(BENCHMARKS)
    rows = gpu_rcan_throughput("cpu", benchmarks={"Set5": set5_dir}, model_kwargs=TINY_RCAN)
    assert [(r["dataset"], r["precision"], r["images"]) for r in rows] == [("Set5", "fp32", 5), ("Set5", "bf16", 5)]
    assert rows[1]["psnr_bf16_minus_fp32_db"] == pytest.approx(rows[1]["mean_psnr_db"] - rows[0]["mean_psnr_db"])


def test_nlsn_seed_measurement(tmp_path: Path, set5_dir: Path) -> None:
    from pcl.bench.nlsn_seed_bench import measure

    hr = tmp_path / "hr"
    hr.mkdir()
    (hr / "bird.png").write_bytes((set5_dir / "bird.png").read_bytes())
    [row] = measure(hr, seeds=(0, 1, 2), config=TINY_NLSN)
    assert row["image"] == "bird" and row["seeds"] == 3
    assert row["max_abs_output_diff_0_255"] > 0  # the seed changes NLSN's output (docs/backbones.md §6.3)
    # a different rotation per seed moves PSNR, but by far less than a different model would
    # (measured here: a few thousandths of a dB, docs/backbones.md §6.3)
    assert 0 < row["psnr_spread_db"] < 0.05, row


def test_load_model_auto_and_named_with_official_format(tmp_path: Path) -> None:
    from pcl.inference.loading import _sidecar_preset, load_model

    torch.manual_seed(0)
    path = tmp_path / "edsr_baseline_x4.pt"
    torch.save(build_model("edsr-s").state_dict(), path)  # a bare state_dict, as EDSR-PyTorch saves
    auto = load_model("auto", path)
    assert (auto.backbone, auto.source) == ("edsr-s", "auto (best fit)")
    named = load_model("EDSR_baseline", path)  # alias of edsr-s
    assert named.backbone == "edsr-s" and named.sha256 == auto.sha256
    # a harness checkpoint saved under the generic name `edsr` with EDSR-L's width and depth is EDSR-L
    assert _sidecar_preset("edsr", {"n_feats": 256, "n_resblocks": 32}) == "edsr-l"
    assert _sidecar_preset("edsr", TINY_EDSR) == "edsr-s"
