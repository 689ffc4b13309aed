"""Reading a checkpoint file safely and unwrapping it to a bare state_dict.

Why ``weights_only``: checkpoints come from the internet; unpickling arbitrary objects executes
code.  Every ``.pt``/``.pth`` file is read with ``torch.load(..., weights_only=True)`` and a file
that needs more is refused.  Why unwrapping: released files hold the weights under different
wrapper keys (BasicSR ``params_ema``/``params``, ``state_dict``, ``model``) and key prefixes
(DataParallel ``module.``, the PCL loss container), and every loader wants the bare mapping.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pcl.errors import PCLError

#: Wrapper keys that hold a state_dict, in order of preference (EMA weights first, as BasicSR).
WRAPPER_KEYS: tuple[str, ...] = ("params_ema", "params", "state_dict", "model")
#: How many keys of each kind an error message lists.
LIST_LIMIT = 10

PathLike = str | os.PathLike[str]


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
    and a ``loss_module.<i>.`` prefix (the PCL loss container, docs/backbones.md §7.3) shared by every key.
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
            non_tensor = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)][:LIST_LIMIT]
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
