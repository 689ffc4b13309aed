"""Training state on disk: the resumable checkpoint, the RNG streams it restores, and the weights files.

Why atomic (temporary file in the same folder, fsync, rename, fsync of the folder, through
``pcl.atomic``): a run can be killed at any instant (SIGKILL, pre-emption, power loss); every file
on disk must then be either the previous complete one or the new complete one, never a torn
file, and it gets the same permissions as every other output, readable by the other users of a
shared cluster group.

Why only plain types in the checkpoint: ``torch.load(weights_only=True)`` refuses arbitrary
pickled objects, which is what makes loading a checkpoint safe.  RNG states are therefore stored
as tensors and lists of ints (numpy's MT19937 key as an int64 tensor, Python's ``random`` state as
a list), and the sampler state is two integers (seed, iteration): patches are a pure function of
them (``pcl.train.data``).

What makes resume exact: models are rebuilt from the run seed (``pcl.train.init``), the global
streams are seeded from it and then overwritten by the checkpoint's states, and the checkpoint
holds models, optimisers, schedule, grad scaler, every RNG state and the sampler state.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch
from torch import nn

from pcl.atomic import atomic_write
from pcl.errors import PCLError
from pcl.train.config import derive_seed

if TYPE_CHECKING:
    from pcl.method import PCLObjective

CHECKPOINT_FORMAT = 1
LAST = "last.pt"


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """torch.save through :func:`pcl.atomic.atomic_write` (temporary file, fsync, rename)."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


# ---------------------------------------------------------------------------- RNG states


def seed_global_rngs(seed: int, rank: int) -> None:
    """Seed torch (CPU, CUDA), numpy and Python ``random`` from the run seed: the global streams
    that models may draw from in their forward (NLSN's random rotations).  A resumed run then
    overwrites them with the checkpoint's states."""
    base = derive_seed(seed, "global", rank)
    torch.manual_seed(base)
    np.random.seed(base % (2**32))
    random.seed(base)


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


# ---------------------------------------------------------------------------- the checkpoint


def trained_embedding(objective: PCLObjective | None) -> nn.Module | None:
    """The objective's own embedding network (None without PCL, or with the fixed VGG features),
    the one whose weights a run saves."""
    from pcl.models.embedding import EmbeddingNet

    if objective is not None and isinstance(objective.embedding, EmbeddingNet):
        return objective.embedding
    return None


def training_state(*, run: Mapping[str, Any], iteration: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                   objective: PCLObjective | None, scaler: torch.amp.GradScaler | None, schedule: Mapping[str, Any],
                   seed: int, rank: int, world_size: int, progress: Mapping[str, Any]) -> dict[str, Any]:
    """The resumable state after ``iteration`` iterations, in plain types.

    ``run`` names what wrote it (experiment, tier, identity: checked on resume); ``progress`` is the
    bookkeeping a resumed run continues (best validation, elapsed seconds, sessions, provenance).
    """
    embedding = trained_embedding(objective)
    embedding_optimizer = objective.optimizer if embedding is not None else None
    return {
        "format": CHECKPOINT_FORMAT,
        **run,
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "embedding": embedding.state_dict() if embedding is not None else None,
        "embedding_optimizer": embedding_optimizer.state_dict() if embedding_optimizer is not None else None,
        "schedule": {**schedule, "iteration": iteration},
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": capture_rng_states(),
        "sampler": {"seed": int(seed), "iteration": iteration, "rank": rank, "world_size": world_size},
        **progress,
    }


def restore_training_state(state: Mapping[str, Any], *, model: nn.Module, optimizer: torch.optim.Optimizer,
                           objective: PCLObjective | None, scaler: torch.amp.GradScaler | None, seed: int,
                           path: Path) -> int:
    """Load every part of ``state`` (read from ``path``) into the run; returns its iteration."""
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    if objective is not None and state.get("embedding") is not None:
        objective.embedding.load_state_dict(state["embedding"], strict=True)
    if objective is not None and objective.optimizer is not None and state.get("embedding_optimizer"):
        objective.optimizer.load_state_dict(state["embedding_optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng_states(state["rng"])
    sampler = state["sampler"]
    if int(sampler["seed"]) != int(seed):
        raise PCLError(f"{path}: sampler seed {sampler['seed']} differs from the run seed {seed}")
    return int(state["iteration"])


def check_identity(state: Mapping[str, Any], identity: str, path: Path) -> None:
    """Refuse to resume a checkpoint written by other settings (``run_identity`` differs)."""
    if state.get("identity") != identity:
        raise PCLError(
            f"{path} was written by a different configuration of {state.get('experiment')!r} "
            f"(identity {str(state.get('identity'))[:12]} vs {identity[:12]}); use another --run-dir or "
            "delete the run directory to start over"
        )


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


def checkpoint_iteration(path: Path | None) -> Any:
    """The iteration of the checkpoint at ``path`` for a message (None: no file, ``?``: unreadable)."""
    if path is None:
        return None
    try:
        return load_training_state(path)["iteration"]
    except PCLError:
        return "?"


# ---------------------------------------------------------------------------- weights files


def save_weights(model: nn.Module, path: Path, *, arch: str, config: dict[str, Any],
                 provenance: dict[str, Any]) -> Path:
    """``path`` (safetensors) and its ``<stem>.json`` sidecar, written atomically with the mode of
    every other output of the run (``pcl.models.checkpoints.save_checkpoint`` uses ``pcl.atomic``)."""
    from pcl.models.checkpoints import save_checkpoint

    return save_checkpoint(model, Path(path), arch=arch, config=config, provenance=provenance)
