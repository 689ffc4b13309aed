"""One torchrun process of the ``ddp`` part: initialise, step, checkpoint, reload.

Run as ``torchrun --standalone --nproc_per_node=N -m pcl.gpu_check.ddp_worker OUT.json DEVICE
TINY``.  The process group is initialised here with NCCL (gloo on the CPU) even for one
process, so that the collective layer is exercised; with N > 1 the trainer's own setup finds it
initialised and wraps the model in DDP itself (``pcl.train.init.wrap_for_training``), with one
process the model is wrapped here.  Rank 0 writes the trainer's checkpoint
(``Trainer._save_state``), every rank reloads it and compares it with its own weights (equal
across ranks means the gradients were all-reduced).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist


def _step_fn(trainer):
    """The trainer's step; with one process, its model wrapped in DDP here."""
    if trainer.runtime.dist.active:
        return trainer.step
    from torch.nn.parallel import DistributedDataParallel

    device = trainer.runtime.device
    wrapped = DistributedDataParallel(trainer.raw_model, device_ids=[device.index] if device.type == "cuda" else None)
    return dataclasses.replace(trainer.step, model=wrapped)


def main(out: str, device_name: str, tiny: bool) -> None:
    from pcl.device import synchronize
    from pcl.gpu_check.workloads import (PAPER_BATCH, PAPER_LR_PATCH, TINY_BATCH, TINY_LR_PATCH, build_trainer,
                                         experiment_config, random_batches)
    from pcl.train.state import load_training_state

    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    backend = "nccl" if device_name != "cpu" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    if tiny:
        torch.set_num_threads(1)
    dist.init_process_group(backend)
    batch, lr_patch = (TINY_BATCH * world, TINY_LR_PATCH) if tiny else (PAPER_BATCH, PAPER_LR_PATCH)
    work = Path(os.environ.get("PCL_GPU_CHECK_DDP_DIR") or tempfile.mkdtemp(prefix="pcl-ddp-"))
    config = experiment_config("edsr-s", "l1", tiny=tiny, batch=batch, lr_patch=lr_patch)
    trainer = build_trainer(config, device_name, work)
    step = _step_fn(trainer)
    per_rank = batch // world
    batches = random_batches(4 if tiny else 12, per_rank, lr_patch, seed=1 + rank)
    step(batches[0][0], batches[0][1], 0)
    device = trainer.runtime.device
    synchronize(device)
    start = time.perf_counter()
    for i, (lr, hr) in enumerate(batches[1:], start=1):
        out_t = step(lr, hr, i)
    float(out_t[0])
    synchronize(device)
    seconds = (time.perf_counter() - start) / (len(batches) - 1)
    trainer._save_state(len(batches))
    dist.barrier()
    state = load_training_state(trainer.last_path)
    mine = trainer.raw_model.state_dict()
    same = all(torch.equal(state["model"][k].cpu(), v.detach().cpu()) for k, v in mine.items())
    flags = torch.tensor([1.0 if same else 0.0], device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    if rank == 0:
        result = {"world_size": world, "backend": backend, "s_per_it": seconds, "batch": batch,
                  "lr_patch": lr_patch, "checkpoint": str(trainer.last_path), "iteration": state["iteration"],
                  "all_ranks_match_checkpoint": bool(flags.item() == 1.0),
                  "ddp_wrapped": type(step.model).__name__}
        Path(out).write_text(json.dumps(result), encoding="utf-8")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] == "1")
