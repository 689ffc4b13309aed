"""Reading, converting, strictly loading and writing model checkpoints.

Why so strict: the official loaders are non-strict, so a checkpoint with wrong keys silently
half-loads and evaluates as a randomly initialised network (spec backbones.md 9).  Here every load
is strict, and a mismatch is reported in one line that lists the missing, unexpected and
wrong-shape keys and names the paper architecture that fits the file best.

Why ``weights_only``: checkpoints come from the internet; unpickling arbitrary objects executes
code.  Every ``.pt``/``.pth`` file is read with ``torch.load(..., weights_only=True)`` and a file
that needs more is refused.  The harness's own checkpoints are safetensors plus a JSON sidecar
(architecture, config, provenance, sha256), so a saved model can be rebuilt without pickle.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pcl.errors import PCLError
from pcl.models import PAPER_CONFIGS, build_model, canonical_name, count_parameters
from pcl.models.common import analytic_mean_shift, infer_rgb_range

#: Wrapper keys that hold a state_dict, in order of preference (EMA weights first, as BasicSR).
WRAPPER_KEYS: tuple[str, ...] = ("params_ema", "params", "state_dict", "model")
#: How many keys of each kind a mismatch message lists.
_LIST_LIMIT = 10
#: Relative disagreement between configured and inferred rgb_range that triggers a warning.
_RGB_RANGE_TOLERANCE = 0.1

PathLike = str | os.PathLike[str]

# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def load_state_dict_file(path: PathLike) -> dict[str, Tensor]:
    """Read a checkpoint file (.safetensors or a torch pickle) and unwrap it to a state_dict.

    Torch pickles are always read with ``weights_only=True`` on the CPU; anything that would need
    code execution is refused with a PCLError.
    """
    path = Path(path)
    if not path.is_file():
        raise PCLError(f"checkpoint file {path} not found; check the path")
    if path.suffix == ".safetensors":
        obj: Any = _read_safetensors(path)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise PCLError(
                f"refusing to load {path}: it contains pickled objects that would need code execution "
                f"(torch.load weights_only=True rejected it: {_unpickling_reason(exc)}); re-save it as a "
                "plain state_dict or safetensors from a trusted environment"
            ) from None
        except Exception as exc:  # corrupt zip, truncated file, not a torch file at all
            raise PCLError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    return unwrap_state_dict(obj, source=str(path))


def _unpickling_reason(exc: BaseException) -> str:
    """The informative line of torch's weights_only refusal (it names the forbidden global)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    for line in text.splitlines():
        found = re.search(r"Unsupported (?:global: GLOBAL \S+|[^.\n]*)", line)
        if found:
            return found.group(0).strip()
    return "not a plain tensor pickle"


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise PCLError(f"cannot read safetensors file {path}: {exc}".splitlines()[0]) from None


def unwrap_state_dict(obj: Any, *, source: str = "checkpoint") -> dict[str, Tensor]:
    """Return the tensor mapping inside ``obj``.

    Accepts a bare state_dict or a dict holding it under ``params_ema`` (preferred), ``params``,
    ``state_dict`` or ``model`` (nested wrappers too); strips a ``module.`` prefix (DataParallel)
    and a ``loss_module.<i>.`` prefix (the PCL loss container, spec 7.3) shared by every key.
    """
    for _ in range(5):
        if not isinstance(obj, Mapping):
            raise PCLError(
                f"{source} holds a {type(obj).__name__}, not a state_dict; save model.state_dict() instead"
            )
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return _strip_common_prefixes({str(k): v for k, v in obj.items()})
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            non_tensor = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)][:_LIST_LIMIT]
            raise PCLError(
                f"{source} is not a state_dict: entries {non_tensor} are not tensors and none of the "
                f"wrapper keys {list(WRAPPER_KEYS)} holds one"
            )
        obj = inner
    raise PCLError(f"{source}: state_dict wrappers nested too deeply; extract the state_dict first")


def _strip_common_prefixes(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    keys = list(state_dict)
    if keys and all(k.startswith("module.") for k in keys):
        state_dict = {k[len("module.") :]: v for k, v in state_dict.items()}
        keys = list(state_dict)
    match = re.match(r"^loss_module\.\d+\.", keys[0]) if keys else None
    if match and all(k.startswith(match.group(0)) for k in keys):
        cut = len(match.group(0))
        state_dict = {k[cut:]: v for k, v in state_dict.items()}
    return state_dict


# --------------------------------------------------------------------------------------------
# BasicSR key conversion (EDSR and RCAN; spec backbones.md 8)
# --------------------------------------------------------------------------------------------


def is_basicsr_format(state_dict: Mapping[str, Tensor]) -> bool:
    """BasicSR EDSR/RCAN checkpoints start with ``conv_first``; EDSR-PyTorch ones with ``head.0``."""
    return "conv_first.weight" in state_dict


def _mean_shift_entries(rgb_range: float) -> dict[str, Tensor]:
    sub_w, sub_b = analytic_mean_shift(rgb_range, sign=-1)
    add_w, add_b = analytic_mean_shift(rgb_range, sign=1)
    return {"sub_mean.weight": sub_w, "sub_mean.bias": sub_b, "add_mean.weight": add_w, "add_mean.bias": add_b}


def _count_indices(keys: list[str], pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    if found and found != set(range(len(found))):
        raise PCLError(f"checkpoint block indices {sorted(found)} are not contiguous from 0; the file is damaged")
    return len(found)


def from_basicsr(state_dict: Mapping[str, Tensor], *, rgb_range: float = 255.0) -> dict[str, Tensor]:
    """Convert BasicSR EDSR/RCAN keys to the EDSR-PyTorch layout and add analytic MeanShift tensors.

    BasicSR keeps the mean outside the state_dict, so ``sub_mean``/``add_mean`` are synthesised
    (identity weight, -/+ rgb_range * DIV2K mean), which matches BasicSR with img_range 255.
    """
    keys = list(state_dict)
    is_rcan = any(".residual_group." in k for k in keys)
    out: dict[str, Tensor] = {} if "sub_mean.weight" in state_dict else _mean_shift_entries(rgb_range)
    if is_rcan:
        n_groups = _count_indices(keys, r"^body\.(\d+)\.residual_group\.")
        n_blocks = _count_indices(keys, r"^body\.0\.residual_group\.(\d+)\.")
        rules = [
            (r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.([02])\.", r"body.\1.body.\2.body.\3."),
            (r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.1\.", r"body.\1.body.\2.body.3.conv_du.0."),
            (r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.3\.", r"body.\1.body.\2.body.3.conv_du.2."),
            (r"^body\.(\d+)\.conv\.", rf"body.\1.body.{n_blocks}."),
            (r"^conv_after_body\.", f"body.{n_groups}."),
        ]
    else:
        n_blocks = _count_indices(keys, r"^body\.(\d+)\.conv1\.")
        rules = [
            (r"^body\.(\d+)\.conv1\.", r"body.\1.body.0."),
            (r"^body\.(\d+)\.conv2\.", r"body.\1.body.2."),
            (r"^conv_after_body\.", f"body.{n_blocks}."),
        ]
    rules += [
        (r"^conv_first\.", "head.0."),
        (r"^upsample\.(\d+)\.", r"tail.0.\1."),
        (r"^conv_last\.", "tail.1."),
        (r"^(sub_mean|add_mean)\.", r"\1."),
    ]
    unknown: list[str] = []
    for key, value in state_dict.items():
        for pattern, replacement in rules:
            new_key, hits = re.subn(pattern, replacement, key)
            if hits:
                out[new_key] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise PCLError(
            f"BasicSR checkpoint has keys that are neither EDSR nor RCAN keys: {unknown[:_LIST_LIMIT]}; "
            "only BasicSR EDSR and RCAN checkpoints can be converted"
        )
    return out


def to_basicsr(state_dict: Mapping[str, Tensor], *, rgb_range: float = 255.0) -> dict[str, Tensor]:
    """Convert an EDSR-PyTorch-format EDSR/RCAN state_dict to BasicSR keys (MeanShift dropped).

    Dropping the MeanShift tensors is lossless only when they hold the analytic values for
    ``rgb_range`` (released RCAN weights may not, spec 1.2), so that is checked first.
    """
    expected = _mean_shift_entries(rgb_range)
    for key, value in expected.items():
        if key in state_dict and not torch.allclose(state_dict[key].float().cpu(), value, rtol=1e-6, atol=1e-5):
            raise PCLError(
                f"cannot convert to BasicSR: {key} holds non-analytic values {state_dict[key].flatten().tolist()} "
                f"(expected {value.flatten().tolist()} for rgb_range {rgb_range}); BasicSR has no place for them"
            )
    keys = list(state_dict)
    is_rcan = any(re.match(r"^body\.\d+\.body\.\d+\.body\.3\.conv_du\.", k) for k in keys)
    if is_rcan:
        n_groups = _count_indices(keys, r"^body\.(\d+)\.body\.\d+\.body\.0\.weight$")
        n_blocks = _count_indices(keys, r"^body\.0\.body\.(\d+)\.body\.0\.weight$")
        rules = [
            (r"^body\.(\d+)\.body\.(\d+)\.body\.([02])\.", r"body.\1.residual_group.\2.rcab.\3."),
            (r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.0\.", r"body.\1.residual_group.\2.rcab.3.attention.1."),
            (r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.2\.", r"body.\1.residual_group.\2.rcab.3.attention.3."),
            (rf"^body\.(\d+)\.body\.{n_blocks}\.", r"body.\1.conv."),
            (rf"^body\.{n_groups}\.", "conv_after_body."),
        ]
    else:
        n_blocks = _count_indices(keys, r"^body\.(\d+)\.body\.0\.weight$")
        rules = [
            (r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1."),
            (r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2."),
            (rf"^body\.{n_blocks}\.", "conv_after_body."),
        ]
    rules += [(r"^head\.0\.", "conv_first."), (r"^tail\.0\.(\d+)\.", r"upsample.\1."), (r"^tail\.1\.", "conv_last.")]
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if key in expected:
            continue
        for pattern, replacement in rules:
            new_key, hits = re.subn(pattern, replacement, key)
            if hits:
                out[new_key] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise PCLError(f"cannot convert to BasicSR: keys {unknown[:_LIST_LIMIT]} are not EDSR/RCAN keys")
    return out


def normalise_state_dict(obj: Any, *, source: str = "checkpoint") -> dict[str, Tensor]:
    """Unwrap a loaded object and convert BasicSR key names when it is in BasicSR format."""
    state_dict = unwrap_state_dict(obj, source=source)
    if is_basicsr_format(state_dict):
        state_dict = from_basicsr(state_dict)
    return state_dict


# --------------------------------------------------------------------------------------------
# Strict loading with a diagnosis
# --------------------------------------------------------------------------------------------


def infer_scale(state_dict: Mapping[str, Tensor]) -> int | None:
    """Upscaling factor implied by the tail shapes (x4: tail.0.2 exists; x2/x3: 4C or 9C outputs)."""
    if "tail.0.2.weight" in state_dict:
        return 4
    weight = state_dict.get("tail.0.0.weight")
    if weight is None or weight.ndim != 4 or weight.shape[1] == 0:
        return None
    return {4: 2, 9: 3}.get(int(weight.shape[0]) // int(weight.shape[1]))


@functools.lru_cache(maxsize=32)
def _reference_shapes(name: str, scale: int | None) -> dict[str, tuple[int, ...]]:
    config = dict(PAPER_CONFIGS[name])
    if scale is not None and "scale" in config:
        config["scale"] = scale
    with torch.device("meta"):
        model = build_model(name, **config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def best_fitting_arch(state_dict: Mapping[str, Tensor]) -> tuple[str, int | None, int, int]:
    """Paper architecture that fits a state_dict best: (name, scale, matching keys, its key count).

    The score is the Jaccard overlap of (key, shape) pairs, so a superset (HAN vs an RCAN file)
    does not win over the exact architecture.
    """
    scale = infer_scale(state_dict)
    best: tuple[float, str, int, int] | None = None
    for name in PAPER_CONFIGS:
        reference = _reference_shapes(name, scale)
        matched = sum(1 for k, v in state_dict.items() if reference.get(k) == tuple(v.shape))
        score = matched / max(1, len(state_dict) + len(reference) - matched)
        if best is None or score > best[0]:
            best = (score, name, matched, len(reference))
    assert best is not None
    _, name, matched, total = best
    return name, (scale if "scale" in PAPER_CONFIGS[name] else None), matched, total


def _mismatch_message(model: nn.Module, state_dict: Mapping[str, Tensor], arch_name: str, source: str) -> str | None:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or wrong):
        return None
    name, scale, matched, total = best_fitting_arch(state_dict)
    fit = f"{name}" + (f" x{scale}" if scale else "")

    def listing(items: list[str]) -> str:
        more = f" (+{len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else ""
        return "[" + ", ".join(items[:_LIST_LIMIT]) + "]" + more

    return (
        f"checkpoint {source} does not fit architecture {arch_name!r}: "
        f"{len(missing)} missing keys {listing(missing)}; "
        f"{len(unexpected)} unexpected keys {listing(unexpected)}; "
        f"{len(wrong)} wrong-shape keys (checkpoint vs model) {listing(wrong)}; "
        f"best-fitting architecture: {fit} ({matched}/{total} of its keys match); "
        "choose that architecture/configuration or the right checkpoint"
    )


def load_into(model: nn.Module, state_dict_or_path: Any, *, arch_name: str) -> nn.Module:
    """Strictly load a state_dict (or a checkpoint file) into ``model`` and return the model.

    BasicSR EDSR/RCAN keys are converted first.  On any key or shape mismatch a PCLError lists
    the missing, unexpected and wrong-shape keys (first 10 each) and the best-fitting paper
    architecture.  Warns when the checkpoint's MeanShift implies another rgb_range than the
    model's.
    """
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        source = str(state_dict_or_path)
        state_dict = normalise_state_dict(load_state_dict_file(state_dict_or_path), source=source)
    else:
        source = "(in-memory state_dict)"
        state_dict = normalise_state_dict(state_dict_or_path, source=source)
    message = _mismatch_message(model, state_dict, arch_name, source)
    if message:
        raise PCLError(message)
    rgb_range = getattr(model, "rgb_range", None)
    if rgb_range and "sub_mean.bias" in state_dict:
        inferred = infer_rgb_range(state_dict)
        if abs(inferred / float(rgb_range) - 1.0) > _RGB_RANGE_TOLERANCE:
            warnings.warn(
                f"checkpoint {source} looks trained with rgb_range ~{inferred:.4g} (from sub_mean.bias) but "
                f"the {arch_name} model is configured with rgb_range {rgb_range:g}; outputs will be wrong "
                "unless rgb_range is set to match",
                UserWarning,
                stacklevel=2,
            )
    model.load_state_dict(state_dict, strict=True)
    return model


# --------------------------------------------------------------------------------------------
# Harness checkpoints: safetensors + JSON sidecar
# --------------------------------------------------------------------------------------------


def sidecar_path(path: PathLike) -> Path:
    """``<stem>.json`` beside the weights file."""
    return Path(path).with_suffix(".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _temp_in(directory: Path, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(handle)
    return Path(name)


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def save_checkpoint(
    model: nn.Module, path: PathLike, *, arch: str, config: dict[str, Any], provenance: dict[str, Any]
) -> Path:
    """Write ``model`` as safetensors plus a ``<stem>.json`` sidecar, both atomically.

    The sidecar holds the architecture, the keyword config that rebuilds it with
    ``build_model(arch, **config)``, the caller's provenance and the sha256 of the weights file.
    The config is checked against the model's state_dict first, so that ``load_checkpoint`` works.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise PCLError(f"checkpoint path {path} must end in .safetensors")
    arch = canonical_name(arch)
    with torch.device("meta"):
        reference = build_model(arch, **config)
    message = _mismatch_message(reference, model.state_dict(), arch, f"of the {type(model).__name__} being saved")
    if message:
        raise PCLError(f"save_checkpoint: config does not rebuild the model: {message}")
    try:
        json.dumps({"config": config, "provenance": provenance})
    except (TypeError, ValueError) as exc:
        raise PCLError(f"save_checkpoint: config and provenance must be JSON-serialisable ({exc})") from None

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    tmp_weights = _temp_in(path.parent, ".safetensors")
    tmp_sidecar = _temp_in(path.parent, ".json")
    try:
        save_file(tensors, str(tmp_weights), metadata={"architecture": arch})
        _fsync(tmp_weights)
        sidecar = {
            "format_version": 1,
            "weights": path.name,
            "architecture": arch,
            "config": config,
            "provenance": provenance,
            "sha256": _sha256(tmp_weights),
            "n_entries": len(tensors),
            "n_parameters": count_parameters(model),
        }
        tmp_sidecar.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
        _fsync(tmp_sidecar)
        os.replace(tmp_weights, path)
        os.replace(tmp_sidecar, sidecar_path(path))
    finally:
        for leftover in (tmp_weights, tmp_sidecar):
            leftover.unlink(missing_ok=True)
    return path


def load_checkpoint(path: PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild and strictly load a model saved by :func:`save_checkpoint`; returns (model, sidecar).

    ``path`` may name the .safetensors file or its .json sidecar.  The sha256 is verified first.
    """
    weights = Path(path).with_suffix(".safetensors")
    meta_file = sidecar_path(weights)
    if not meta_file.is_file():
        raise PCLError(f"checkpoint sidecar {meta_file} not found; harness checkpoints are <stem>.safetensors + <stem>.json")
    if not weights.is_file():
        raise PCLError(f"checkpoint weights {weights} not found (sidecar {meta_file} exists)")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        arch, config, expected = meta["architecture"], meta["config"], meta["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PCLError(f"checkpoint sidecar {meta_file} is malformed ({type(exc).__name__}: {exc}); re-save the checkpoint") from None
    actual = _sha256(weights)
    if actual != expected:
        raise PCLError(
            f"checkpoint {weights} has sha256 {actual} but its sidecar records {expected}; the file was "
            "modified or truncated - re-download or re-save it"
        )
    model = build_model(arch, **config)
    load_into(model, weights, arch_name=arch)
    return model, meta
