"""Resumable training states: written atomically, read with ``weights_only=True``.

Why atomic (temporary file in the same folder, fsync, rename, fsync of the folder): a run can be
killed at any instant (SIGKILL, pre-emption, power loss); the checkpoint on disk must then be
either the previous complete one or the new complete one, never a torn file.

Why only plain types: ``torch.load(weights_only=True)`` refuses arbitrary pickled objects, which
is what makes loading a checkpoint safe.  RNG states are therefore stored as tensors and lists of
ints (numpy's MT19937 key as an int64 tensor, Python's ``random`` state as a list), and the
sampler state is two integers (seed, iteration): patches are a pure function of them
(``pcl.train.data``).
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcl.atomic import atomic_write
from pcl.errors import PCLError

CHECKPOINT_FORMAT = 1
LAST = "last.pt"


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """torch.save through :func:`pcl.atomic.atomic_write` (temporary file, fsync, rename)."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


# ---------------------------------------------------------------------------- RNG states


def capture_rng_states() -> dict[str, Any]:
    """torch (CPU and every CUDA device), numpy and Python ``random`` states as plain types."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {"kind": str(kind), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": [int(v) for v in internal],
                   "gauss_next": None if gauss_next is None else float(gauss_next)},
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_states`."""
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


# ---------------------------------------------------------------------------- reading


def load_training_state(path: Path) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``; PCLError naming the file otherwise."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PCLError(f"training checkpoint {path} not found") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PCLError(
            f"cannot read training checkpoint {path} ({type(exc).__name__}: {first}); delete it to start over"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise PCLError(f"{path} is not a pcl training checkpoint (format {CHECKPOINT_FORMAT}); delete it to start over")
    return state
