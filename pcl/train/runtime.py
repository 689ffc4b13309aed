"""Where and how a run computes: device, precision, determinism, DDP, and how it fails.

Why together: these are the facts of the machine, not of the experiment; they are settled once
before anything is built, recorded in ``config.yaml`` and ``provenance.json``, and every part of
the run (step, validation, checkpoints) reads them from one ``Runtime``.  The failures that
belong to the machine (out of memory, a batch system's SIGTERM) are recognised here too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any, ContextManager, Mapping

import torch

from pcl.device import resolve_device
from pcl.errors import PCLError
from pcl.train.config import TrainOptions


class TrainingFailed(PCLError):
    """The run itself failed (non-finite loss, out of memory, stopped by a signal): exit code 1,
    the last good checkpoint kept."""

    exit_code = 1


@dataclass
class Distributed:
    """torchrun environment: rank, world size, local rank (1 process = not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Distributed":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(rank=int(os.environ.get("RANK", "0")), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` is bf16 where the GPU supports it, else fp32; fp16 only on CUDA (its grad scaler)."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp32"
    if name == "fp16" and device.type != "cuda":
        raise PCLError("precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
    return name


@dataclass(frozen=True)
class Runtime:
    """The settled runtime of one process of a run."""

    device: torch.device
    precision: str
    channels_last: bool
    deterministic: bool
    dist: Distributed

    def autocast(self) -> ContextManager[Any]:
        """Autocast to the run's reduced precision (nothing for fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def describe(self) -> dict[str, Any]:
        """The runtime block of ``config.yaml``."""
        return {"device": str(self.device), "precision": self.precision, "channels_last": self.channels_last,
                "deterministic": self.deterministic, "world_size": self.dist.world_size}


def setup_runtime(options: TrainOptions, budget: Mapping[str, Any], dist: Distributed) -> Runtime:
    """Apply the process-wide settings (threads, process group, CUDA device, determinism flags)
    and return the runtime.  ``deterministic`` trades speed for bitwise-reproducible resume."""
    if options.threads:
        torch.set_num_threads(int(options.threads))
    if dist.active and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and options.device != "cpu" else "gloo"
        torch.distributed.init_process_group(backend)
    device = resolve_device(options.device, dist.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    precision = resolve_precision(str(budget["precision"]), device)
    channels_last = budget["channels_last"]
    channels_last = (device.type == "cuda") if channels_last == "auto" else bool(channels_last)
    if options.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device=device, precision=precision, channels_last=channels_last,
                   deterministic=options.deterministic, dist=dist)


_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
#: What an out-of-memory error may arrive as (the CPU allocator raises a plain RuntimeError).
OOM_ERRORS: tuple[type[BaseException], ...] = (_OUT_OF_MEMORY, RuntimeError)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA out-of-memory error or a RuntimeError that says the allocator failed."""
    if isinstance(exc, _OUT_OF_MEMORY):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


class StopSignal:
    """Records SIGTERM (a batch system's time limit or pre-emption) while the loop runs, so that
    the run stops at the end of the current iteration with a checkpoint instead of losing the
    work since the last periodic one.  A context manager; the previous handler is restored on exit.
    Signal handlers can only be installed from the main thread; elsewhere nothing is caught."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: Any = None

    def __enter__(self) -> "StopSignal":
        self.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002 - signal handler signature
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None



def set_memory_format(model: torch.nn.Module, memory_format: torch.memory_format) -> torch.nn.Module:
    """Lay out every 4-d parameter and buffer of ``model`` in ``memory_format``, in place.

    Why not ``model.to(memory_format=...)``: it refuses any tensor that is not 4-d, and HAN's
    channel-spatial attention holds a 5-d Conv3d weight; the 2-d convolutions, where channels_last
    pays off, are converted and the rest is left as it is.
    """
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=memory_format)
    return model
