"""One training iteration, as the trainer's loop and ``pcl bench train`` both run it.

The order is that of the released trainer (docs/method.md §0): SR forward on the LR batch; L1 on
images scaled by ``loss_scale`` (the backbone's rgb_range by default, i.e. the L1 that each
backbone's official code computes); for the PCL methods ``PCLObjective.step`` draws the
positives/negatives, updates the embedding on the *detached* SR output and returns the
contrastive term, computed with the embedding frozen (with gradient to the SR output in
``paper`` semantics, without in ``released``); backward, optional gradient *value* clipping, Adam
step.  The learning rate of iteration i is ``Schedule.lr_at(i)`` (per-epoch steps).

Why one class: the benchmark's figure is only meaningful if it times the very step that trains.
The step never reads a value back from the device (no host synchronisation); it returns the loss
terms as a device tensor that the loop accumulates and reads every ``log_every`` iterations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from pcl.train.config import derive_seed
from pcl.train.data import to_float
from pcl.train.runtime import Runtime
from pcl.train.schedules import Schedule

if TYPE_CHECKING:
    from pcl.method import PCLObjective

#: Adam settings of the SR network (those of the released trainers).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass
class TrainStep:
    """``step(lr_u8, hr_u8, iteration)``: one SR (and embedding) update on a uint8 batch.

    ``model`` is the module to call (compiled or DDP-wrapped), ``params`` the SR parameters the
    optimiser updates.  The PCL samples of iteration i come from the objective's generator
    re-seeded from (seed, i, rank), so they do not depend on where a run was resumed.
    """

    model: nn.Module
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    runtime: Runtime
    seed: int
    loss_scale: float
    objective: PCLObjective | None = None
    scaler: torch.amp.GradScaler | None = None
    grad_clip: float | None = None

    def __call__(self, lr_u8: Tensor, hr_u8: Tensor, iteration: int) -> Tensor:
        """Update on the batch of ``iteration`` (0-based); returns [total, l1, term, embedding loss]
        on the device without reading it."""
        channels_last = self.runtime.channels_last
        lr = to_float(lr_u8, self.runtime.device, channels_last=channels_last)
        hr = to_float(hr_u8, self.runtime.device, channels_last=channels_last)
        rate = self.schedule.lr_at(iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        total, l1, term, d_loss = self.losses(lr, hr, iteration)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            if self.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_value_(self.params, float(self.grad_clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_value_(self.params, float(self.grad_clip))
            self.optimizer.step()
        return torch.stack([total.detach(), l1, term, d_loss])

    def losses(self, lr: Tensor, hr: Tensor, iteration: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Forward pass and loss terms of one iteration: (total to back-propagate, L1, contrastive
        term, embedding loss); all but the total detached.  The PCL objective updates its
        embedding here, before the SR network's backward."""
        with self.runtime.autocast():
            sr = self.model(lr)
        sr = sr.float()
        l1 = (sr - hr).abs().mean() * self.loss_scale
        total = l1
        zero = l1.new_zeros(())
        term, d_loss = zero, zero
        if self.objective is not None:
            self.objective.generator.manual_seed(derive_seed(self.seed, "samples", iteration, self.runtime.dist.rank))
            with self.runtime.autocast():
                out = self.objective.step(sr, hr, lr)
            total = total + out.weighted.float()
            term = out.term.detach().float()
            if out.embedding_loss is not None:
                d_loss = out.embedding_loss.detach().float()
        return total, l1.detach(), term, d_loss
