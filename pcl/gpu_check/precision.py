"""Part ``precision``: bf16 autocast against fp32 on the same batches, and the PCL samples' dtype.

What is compared, per backbone-independent workload (EDSR-S +PCL in paper semantics, paper size;
``--tiny``: the smoke network): the loss terms and the SR network's gradient of one step from the
same weights, the same embedding state and the same batch, once in fp32 and once under bf16
autocast.  Tolerances (bf16 keeps 8 mantissa bits, relative rounding 2^-8 = 0.4 % per operation):
loss relative error <= 2e-2, gradient cosine >= 0.99.  The documented precision policy
(``PCLObjective.step``, docs/method_choices.md) says the samples are made in float32 with
autocast off: they must be float32 and bitwise equal between the two runs.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch

from pcl.gpu_check.report import RowSink
from pcl.gpu_check.workloads import (PAPER_BATCH, PAPER_LR_PATCH, TINY_BATCH, TINY_LR_PATCH, build_trainer,
                                     experiment_config, random_batches, step_variant)

LOSS_RTOL, GRAD_COSINE = 2e-2, 0.99


def _one_step(trainer, step, batch, objective_state: dict) -> tuple[torch.Tensor, torch.Tensor, object]:
    """Losses, flattened SR gradient and the samples of iteration 0 from the saved embedding state."""
    trainer.objective.embedding.load_state_dict(objective_state["embedding"])
    trainer.objective.optimizer.load_state_dict(objective_state["optimizer"])
    device = trainer.runtime.device
    from pcl.train.data import to_float

    lr = to_float(batch[0], device, channels_last=False)
    hr = to_float(batch[1], device, channels_last=False)
    captured = {}
    original = trainer.objective.step

    def spy(sr, hr_, lr_):
        out = original(sr, hr_, lr_)
        captured["samples"] = out.samples
        return out

    trainer.objective.step = spy
    try:
        total, l1, term, _ = step.losses(lr, hr, 0)
    finally:
        trainer.objective.step = original
    trainer.optimizer.zero_grad(set_to_none=True)
    total.backward()
    grad = torch.cat([p.grad.detach().float().reshape(-1) for p in step.params if p.grad is not None])
    return torch.stack([total.detach().float(), l1.float(), term.float()]), grad, captured["samples"]


def run(sink: RowSink, device: torch.device, *, tiny: bool, deadline: float) -> None:  # noqa: ARG001 - one short step
    batch, lr_patch = (TINY_BATCH, TINY_LR_PATCH) if tiny else (PAPER_BATCH, PAPER_LR_PATCH)
    with tempfile.TemporaryDirectory(prefix="pcl-gpu-check-precision-") as tmp:
        config = experiment_config("edsr-s", "pcl-paper", tiny=tiny, batch=batch, lr_patch=lr_patch)
        trainer = build_trainer(config, str(device), Path(tmp))
        state = {"embedding": copy.deepcopy(trainer.objective.embedding.state_dict()),
                 "optimizer": copy.deepcopy(trainer.objective.optimizer.state_dict())}
        data = random_batches(1, batch, lr_patch)[0]
        results = {}
        for precision in ("fp32", "bf16"):
            step = step_variant(trainer, precision=precision, channels_last=False)
            results[precision] = _one_step(trainer, step, data, state)
    (l32, g32, s32), (l16, g16, s16) = results["fp32"], results["bf16"]
    case = f"edsr-s/pcl-paper, batch {batch}, LR patch {lr_patch}"
    for i, name in enumerate(("total", "l1", "term")):
        rel = float((l16[i] - l32[i]).abs() / l32[i].abs().clamp_min(1e-12))
        sink.add("precision", case, f"loss_{name}_rel_err", rel, "", tolerance=LOSS_RTOL, ok=rel <= LOSS_RTOL,
                 note=f"fp32 {float(l32[i])!r} bf16 {float(l16[i])!r}")
    cosine = float(torch.nn.functional.cosine_similarity(g32, g16, dim=0))
    rel = float((g16 - g32).norm() / g32.norm().clamp_min(1e-30))
    sink.add("precision", case, "grad_cosine", cosine, "", tolerance=GRAD_COSINE, ok=cosine >= GRAD_COSINE,
             note=f"{g32.numel()} SR parameters")
    sink.add("precision", case, "grad_rel_err", rel, "", note="||g_bf16 - g_fp32|| / ||g_fp32||")
    for name in ("positives", "negatives"):
        a, b = getattr(s32, name), getattr(s16, name)
        fp32 = a.dtype == torch.float32 and b.dtype == torch.float32
        sink.add("precision", case, f"samples_{name}_dtype", str(b.dtype).replace("torch.", ""), "", tolerance="float32",
                 ok=fp32, note="made under bf16 autocast; policy: float32 with autocast off")
        same = fp32 and a.shape == b.shape and bool(torch.equal(a, b))
        sink.add("precision", case, f"samples_{name}_bitwise_equal", same, "", tolerance="bitwise", ok=same,
                 note="fp32 run vs bf16 run, same generator seed")
