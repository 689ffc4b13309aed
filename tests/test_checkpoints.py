"""Tests for pcl.models.checkpoints: safe reading, unwrapping, BasicSR conversion, strict loading
with a diagnosis, and the harness's safetensors + sidecar format.

Synthetic checkpoints are built from key lists written out from the key patterns of
docs/backbones.md §3-§8 (tests/test_models.py helpers), not from the models under test.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path

import pytest
import torch

from pcl.errors import PCLError
from pcl.models import build_model
from pcl.models.checkpoints import (
    best_fitting_arch,
    from_basicsr,
    infer_scale,
    load_checkpoint,
    load_into,
    load_state_dict_file,
    save_checkpoint,
    to_basicsr,
    unwrap_state_dict,
)
try:  # the key-pattern helpers (docs/backbones.md) live in test_models.py (package or rootdir-relative import)
    from tests.test_models import SMALL, disc_keys, edsr_keys, expected_small_keys, han_keys, nlsn_keys, rcan_keys
except ImportError:  # pragma: no cover - depends on how pytest was invoked
    from test_models import SMALL, disc_keys, edsr_keys, expected_small_keys, han_keys, nlsn_keys, rcan_keys

torch.set_num_threads(1)


DIV2K_MEAN = torch.tensor([0.4488, 0.4371, 0.4040])  # docs/backbones.md §1.2


def synthetic(keys, *, device: str = "cpu", seed: int = 0, rgb_range: float = 255.0) -> dict[str, torch.Tensor]:
    """A state_dict with the given (key, shape) list: random values, ints for BN counters, and
    MeanShift biases -/+ rgb_range * mean (docs/backbones.md §1.2) so the rgb_range check stays quiet."""
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in keys:
        if device == "meta":
            out[key] = torch.empty(shape, device="meta")
        elif key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7, dtype=torch.long)
        elif key in ("sub_mean.bias", "add_mean.bias"):
            out[key] = (-1 if key.startswith("sub") else 1) * rgb_range * DIV2K_MEAN
        else:
            out[key] = torch.randn(shape, generator=generator)
    return out


# --------------------------------------------------------------------------------------------
# Strict loading of official-format checkpoints
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["edsr", "rcan", "han", "nlsn"])
def test_strict_load_of_official_format_small(name: str) -> None:
    keys = expected_small_keys(name, 4)
    state = synthetic(keys, rgb_range=1.0 if name == "nlsn" else 255.0)  # docs/backbones.md §2.1 ranges
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matching rgb_range: no warning
        model = load_into(build_model(name, **SMALL[name]), state, arch_name=name)
    loaded = model.state_dict()
    assert [(k, tuple(v.shape)) for k, v in loaded.items()] == keys
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_strict_load_of_discriminator() -> None:
    state = synthetic(disc_keys())
    model = load_into(build_model("embedding"), state, arch_name="embedding")
    assert torch.equal(model.state_dict()["DWT2.h1_row"], state["DWT2.h1_row"])
    assert int(model.state_dict()["features.4.1.num_batches_tracked"]) == 7


def test_loss_container_prefix_is_stripped() -> None:
    # docs/backbones.md §7.3: in loss.pt the discriminator keys carry 'loss_module.<i>.'
    state = {f"loss_module.1.{k}": v for k, v in synthetic(disc_keys()).items()}
    load_into(build_model("embedding"), state, arch_name="embedding")


def test_mismatch_message_lists_keys_and_best_fit() -> None:
    # A paper-size RCAN x4 file (meta tensors: only shapes matter) offered to a small EDSR.
    state = synthetic(rcan_keys(64, 20, 10, 16), device="meta")
    model = build_model("edsr", **SMALL["edsr"])
    with pytest.raises(PCLError) as info:
        load_into(model, state, arch_name="edsr")
    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"\d+ missing keys \[body\.0\.body\.0\.weight", message)
    assert "unexpected keys [body.0.body.0.body.0.weight" in message
    assert "wrong-shape keys (checkpoint vs model) [head.0.weight (64, 3, 3, 3) vs (8, 3, 3, 3)" in message
    assert "best-fitting architecture: rcan x4 (1634/1634" in message  # docs/backbones.md §2.2 entry count
    assert message.count("body.") < 80  # lists are truncated to 10 entries each


@pytest.mark.parametrize(
    ("keys", "name", "scale"),
    [
        (lambda: edsr_keys(256, 32, 3), "edsr-l", 3),
        (lambda: edsr_keys(64, 16, 2), "edsr-s", 2),
        (lambda: han_keys(64, 20, 16), "han", 4),
        (lambda: nlsn_keys(256, 32), "nlsn", 4),
        (lambda: disc_keys(), "embedding", None),
    ],
)
def test_best_fitting_arch(keys, name: str, scale: int | None) -> None:
    state = synthetic(keys(), device="meta")
    assert infer_scale(state) == scale
    found, found_scale, matched, total = best_fitting_arch(state)
    assert (found, found_scale) == (name, scale)
    assert matched == total == len(state)


def test_wrong_shape_only_is_reported() -> None:
    state = synthetic(edsr_keys(8, 2, 4))
    model = build_model("edsr", scale=2, **SMALL["edsr"])
    with pytest.raises(PCLError, match=r"0 missing keys \[\]; 2 unexpected keys \[tail\.0\.2\.weight, tail\.0\.2\.bias\]"):
        load_into(model, state, arch_name="edsr")


def test_rgb_range_disagreement_warns() -> None:
    nlsn_state = build_model("nlsn", **SMALL["nlsn"]).state_dict()  # rgb_range 1 MeanShift
    model = build_model("nlsn", rgb_range=255, **SMALL["nlsn"])
    with pytest.warns(UserWarning, match=r"rgb_range ~1 .*configured with rgb_range 255"):
        load_into(model, nlsn_state, arch_name="nlsn")


# --------------------------------------------------------------------------------------------
# Reading files, unwrapping, refusing code execution
# --------------------------------------------------------------------------------------------


class _CreatesFile:
    """Unpickling this would create a file (code execution through __reduce__)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_is_refused(tmp_path: Path, writer: str) -> None:
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    payload = {"head.0.weight": torch.zeros(1), "trap": _CreatesFile(target)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        with path.open("wb") as handle:
            pickle.dump(payload, handle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the pickle protocol of raw pickles
        with pytest.raises(PCLError, match=r"refusing to load .*evil\.pth.*code execution"):
            load_state_dict_file(path)
    assert not target.exists()


def test_wrappers_are_unwrapped(tmp_path: Path) -> None:
    a = synthetic(edsr_keys(8, 2), seed=1)
    b = synthetic(edsr_keys(8, 2), seed=2)
    assert torch.equal(unwrap_state_dict({"params": a, "params_ema": b})["head.0.weight"], b["head.0.weight"])
    assert torch.equal(unwrap_state_dict({"params": a})["head.0.weight"], a["head.0.weight"])
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in a.items()}}
    assert list(unwrap_state_dict(wrapped)) == list(a)
    path = tmp_path / "wrapped.pt"
    torch.save({"model": a, "optimizer": {"lr": 1e-4}}, path)
    loaded = load_state_dict_file(path)
    assert list(loaded) == list(a) and torch.equal(loaded["tail.1.bias"], a["tail.1.bias"])
    model = load_into(build_model("edsr", **SMALL["edsr"]), path, arch_name="edsr")
    assert torch.equal(model.state_dict()["tail.1.bias"], a["tail.1.bias"])


def test_not_a_state_dict_errors(tmp_path: Path) -> None:
    with pytest.raises(PCLError, match=r"not a state_dict.*\['epoch'\]"):
        unwrap_state_dict({"epoch": 3})
    with pytest.raises(PCLError, match=r"not found"):
        load_state_dict_file(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(PCLError, match=r"broken\.pt"):
        load_state_dict_file(broken)


# --------------------------------------------------------------------------------------------
# BasicSR key conversion (docs/backbones.md §8)
# --------------------------------------------------------------------------------------------


def basicsr_edsr_keys(c: int, b: int) -> list[str]:
    keys = ["conv_first"] + [f"body.{i}.conv{j}" for i in range(b) for j in (1, 2)]
    keys += ["conv_after_body", "upsample.0", "upsample.2", "conv_last"]
    return [f"{k}.{p}" for k in keys for p in ("weight", "bias")]


def basicsr_rcan_keys(g: int, b: int) -> list[str]:
    keys = ["conv_first"]
    for gi in range(g):
        for bi in range(b):
            p = f"body.{gi}.residual_group.{bi}.rcab"
            keys += [f"{p}.0", f"{p}.2", f"{p}.3.attention.1", f"{p}.3.attention.3"]
        keys.append(f"body.{gi}.conv")
    keys += ["conv_after_body", "upsample.0", "upsample.2", "conv_last"]
    return [f"{k}.{p}" for k in keys for p in ("weight", "bias")]


@pytest.mark.parametrize("name", ["edsr", "rcan"])
def test_basicsr_round_trip(name: str) -> None:
    torch.manual_seed(12)
    model = build_model(name, **SMALL[name])  # rgb_range 255, analytic MeanShift
    ours = model.state_dict()
    basic = to_basicsr(ours)
    expected = basicsr_edsr_keys(8, 2) if name == "edsr" else basicsr_rcan_keys(2, 2)
    assert list(basic) == expected
    back = from_basicsr(basic)
    assert set(back) == set(ours)
    for key, value in ours.items():
        assert torch.equal(back[key], value), key  # MeanShift synthesised bit-identically
    # load_into converts on the fly and prefers params_ema
    fresh = load_into(build_model(name, **SMALL[name]), {"params_ema": basic, "params": {}}, arch_name=name)
    for key, value in ours.items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_to_basicsr_refuses_trained_mean_shift() -> None:
    state = build_model("rcan", **SMALL["rcan"]).state_dict()
    state["sub_mean.bias"] = state["sub_mean.bias"] + 0.5  # as in released RCAN weights (docs/backbones.md §1.2)
    with pytest.raises(PCLError, match=r"sub_mean\.bias holds non-analytic values"):
        to_basicsr(state)


def test_basicsr_unknown_key() -> None:
    state = {f"{k}": torch.zeros(1) for k in basicsr_edsr_keys(8, 1)} | {"extra.weight": torch.zeros(1)}
    with pytest.raises(PCLError, match=r"neither EDSR nor RCAN keys: \['extra\.weight'\]"):
        from_basicsr(state)


# --------------------------------------------------------------------------------------------
# Harness checkpoints
# --------------------------------------------------------------------------------------------


def test_save_and_load_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(13)
    config = dict(n_resblocks=2, n_feats=8, scale=3)
    model = build_model("edsr", **config)
    path = save_checkpoint(model, tmp_path / "run" / "edsr_x3.safetensors", arch="edsr", config=config,
                           provenance={"source": "unit test", "seed": 13})
    sidecar = json.loads((tmp_path / "run" / "edsr_x3.json").read_text())
    assert sidecar["architecture"] == "edsr" and sidecar["config"] == config
    assert sidecar["provenance"]["seed"] == 13 and len(sidecar["sha256"]) == 64
    assert sorted(p.name for p in path.parent.iterdir()) == ["edsr_x3.json", "edsr_x3.safetensors"]
    rebuilt, meta = load_checkpoint(path)
    assert meta["sha256"] == sidecar["sha256"]
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)
    # safetensors files also load through the generic reader
    assert set(load_state_dict_file(path)) == set(model.state_dict())


def test_checkpoint_integrity_and_config_errors(tmp_path: Path) -> None:
    model = build_model("embedding")
    path = save_checkpoint(model, tmp_path / "d.safetensors", arch="embedding", config={}, provenance={})
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PCLError, match=r"sha256 .* sidecar records"):
        load_checkpoint(path)
    with pytest.raises(PCLError, match=r"config does not rebuild the model"):
        save_checkpoint(build_model("edsr", **SMALL["edsr"]), tmp_path / "e.safetensors", arch="edsr",
                        config={}, provenance={})
    with pytest.raises(PCLError, match=r"must end in \.safetensors"):
        save_checkpoint(model, tmp_path / "d.pt", arch="embedding", config={}, provenance={})
    with pytest.raises(PCLError, match=r"sidecar .*not found"):
        load_checkpoint(tmp_path / "nothing.safetensors")


def test_saved_checkpoint_is_readable_by_other_users(tmp_path: Path) -> None:
    # On a shared cluster other users read the run directories: files get the umask's mode (0644 under
    # umask 022), like every other output of pcl.atomic, never mkstemp's 0600.
    import os

    old = os.umask(0o022)
    try:
        import importlib

        import pcl.atomic

        importlib.reload(pcl.atomic)  # FILE_MODE is read from the umask at import
        import pcl.models.harness_checkpoint as hc

        importlib.reload(hc)
        path = hc.save_checkpoint(build_model("edsr", **SMALL["edsr"]), tmp_path / "m.safetensors", arch="edsr",
                                  config=SMALL["edsr"], provenance={})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.with_suffix(".json").stat().st_mode & 0o777 == 0o644
