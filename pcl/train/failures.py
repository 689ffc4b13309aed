"""What a failed run says: which weights it keeps, and whether its weights are still numbers.

Why a module of its own: every way a run stops (a NaN loss, NaN weights, a NaN validation output,
out of memory) ends in a message that tells the user what is left to resume from and to use,
and that message must be read from the files on disk, never assumed: a message that says no
checkpoint was written while ``best.safetensors`` exists sends the user to the wrong files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pcl.train.state import checkpoint_iteration


def weights_finite(model: nn.Module, objective: Any | None) -> bool:
    """True when every parameter of the SR network (and of the objective's embedding) is finite;
    one host synchronisation for all of them."""
    tensors = list(model.parameters())
    if objective is not None:
        tensors += list(objective.embedding.parameters())
    if not tensors:
        return True
    flags = torch.stack([torch.isfinite(t).all() for t in tensors])
    return bool(flags.all().item())


def kept_text(last: Path, best: Path, best_iteration: Any) -> str:
    """What the run leaves: the last checkpoint (with its iteration, read from the file) and the
    best weights, or that nothing was written."""
    kept = []
    if last.is_file():
        kept.append(f"the last good checkpoint {last} (iteration {checkpoint_iteration(last)}) is kept; rerunning the "
                    "command resumes from it")
    if best.is_file():
        kept.append(f"{best} holds the best weights validated before (iteration {best_iteration})")
    return "; ".join(kept) if kept else "no checkpoint had been written yet"


def oom_message(iteration: int, trainer: Any) -> str:
    """Out of memory at ``iteration`` (0-based) of ``trainer``: the batch and patch that failed."""
    patch, hr = trainer.budget["lr_patch"], trainer.hr_patch
    return (f"out of memory at iteration {iteration + 1} of {trainer.config['experiment']} on {trainer.runtime.device}: "
            f"batch {trainer.local_batch} per process, LR patch {patch}x{patch} (HR {hr}x{hr}), "
            f"{trainer.runtime.precision}; lower --batch or the patch, or use bf16; the last good checkpoint is kept "
            f"({trainer.last_path})")
