"""One training iteration, as the trainer's loop and ``pcl bench train`` both run it.

The order is that of the released trainer (docs/method.md §0): SR forward on the LR batch; L1 on
images scaled by ``loss_scale`` (the backbone's rgb_range by default, i.e. the L1 that each
backbone's official code computes); for the PCL methods ``PCLObjective.step`` draws the
positives/negatives, updates the embedding on the *detached* SR output and returns the
contrastive term, computed with the embedding frozen (with gradient to the SR output in
``paper`` semantics, without in ``released``); backward, optional gradient *value* clipping, Adam
step.  The learning rate of iteration i is ``Schedule.lr_at(i)`` (per-epoch steps).  During an
embedding warm-up (``embedding_warmup`` > 0) the SR network is either not updated (``freeze``) or
trained on L1 alone (``term_off``) while the embedding trains; the schedule is not shifted.

Why one class: the benchmark's figure is only meaningful if it times the very step that trains.
The step never reads a value back from the device (no host synchronisation); it returns the loss
terms as a device tensor that the loop accumulates and reads every ``log_every`` iterations.  At
those iterations a PCL step also measures the term's gradient share (``pcl.train.grad_share``) on
the same forward, without changing the update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from pcl.train.config import derive_seed
from pcl.train.data import to_float
from pcl.train.grad_share import NOT_MEASURED, measure_share
from pcl.train.runtime import Runtime
from pcl.train.schedules import Schedule

if TYPE_CHECKING:
    from pcl.method import PCLObjective

#: Adam settings of the SR network (those of the released trainers).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass
class StepLosses:
    """The loss terms of one forward: total and L1 with their graphs, alpha * L_CL with its graph
    (None when it does not enter the update), term and embedding loss detached."""

    total: Tensor
    l1: Tensor
    weighted: Tensor | None
    term: Tensor
    d_loss: Tensor


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
    #: Which iterations ``__call__`` measures the gradient share at (the trainer: its logging ones).
    measure_when: Callable[[int], bool] | None = None
    #: [share, cosine] of the last measured iteration (device tensor), None when it was not measured.
    last_measure: Tensor | None = field(default=None, init=False)
    #: Chance level of the embedding's loss at the last iteration (from its logit counts).
    embedding_chance: float | None = field(default=None, init=False)
    _parts: StepLosses | None = field(default=None, init=False, repr=False)

    def __call__(self, lr_u8: Tensor, hr_u8: Tensor, iteration: int, *, measure: bool | None = None) -> Tensor:
        """Update on the batch of ``iteration`` (0-based); returns [total, l1, term, embedding loss]
        on the device without reading it.

        ``measure`` (default: ``measure_when(iteration)``): also measure the contrastive term's
        gradient share on this batch (``pcl.train.grad_share``; the update is unchanged), left in
        ``last_measure``; the embedding loss's chance level is left in ``embedding_chance``.
        """
        channels_last = self.runtime.channels_last
        lr = to_float(lr_u8, self.runtime.device, channels_last=channels_last)
        hr = to_float(hr_u8, self.runtime.device, channels_last=channels_last)
        rate = self.schedule.lr_at(iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        if measure is None:
            measure = self.measure_when is not None and self.measure_when(iteration)
        frozen = self.warmup_frozen(iteration)
        total, l1, term, d_loss = self.losses(lr, hr, iteration)
        self.last_measure = None
        if measure and self.objective is not None:
            self.last_measure = self._measure(self._parts, frozen)
        self._parts = None  # the graphs are not kept past the update
        if not frozen:
            self._update(total)
        return torch.stack([total.detach(), l1, term, d_loss])

    def _update(self, total: Tensor) -> None:
        """Backward of the combined loss, optional gradient value clipping, Adam step."""
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

    def _measure(self, parts: StepLosses, frozen: bool) -> Tensor:
        """[share, cosine] of this iteration: NaN while the SR network is frozen (no SR update)."""
        if frozen:
            return torch.tensor(NOT_MEASURED, device=parts.l1.device)
        scale = self.scaler.get_scale() if self.scaler is not None else None
        return measure_share(parts.l1, parts.weighted, self.params, scale)

    def warmup_frozen(self, iteration: int) -> bool:
        """Whether the SR network is held fixed at ``iteration`` (embedding warm-up, mode freeze)."""
        c = self.objective.config if self.objective is not None else None
        return c is not None and iteration < c.embedding_warmup and c.warmup_mode == "freeze"

    def _term_off(self, iteration: int) -> bool:
        c = self.objective.config if self.objective is not None else None
        return c is not None and iteration < c.embedding_warmup and c.warmup_mode == "term_off"

    def forward(self, lr: Tensor, hr: Tensor, iteration: int, *, frozen: bool = False) -> StepLosses:
        """Forward pass and loss terms of one iteration, with the graphs of L1 and alpha * L_CL.

        The PCL objective updates its embedding here, before the SR network's backward.  While
        ``frozen`` the SR network runs without a graph; during a ``term_off`` warm-up the term
        is computed (and logged) but not added to the total.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            with self.runtime.autocast():
                sr = self.model(lr)
        sr = sr.float()
        l1 = (sr - hr).abs().mean() * self.loss_scale
        total = l1
        zero = l1.new_zeros(())
        parts = StepLosses(total=total, l1=l1, weighted=None, term=zero, d_loss=zero)
        if self.objective is not None:
            self.objective.generator.manual_seed(derive_seed(self.seed, "samples", iteration, self.runtime.dist.rank))
            with self.runtime.autocast():
                out = self.objective.step(sr, hr, lr)
            parts.term = out.term.detach().float()
            if out.embedding_loss is not None:
                parts.d_loss = out.embedding_loss.detach().float()
            self.embedding_chance = out.embedding_chance
            if not self._term_off(iteration):
                parts.weighted = out.weighted.float()
                parts.total = total + parts.weighted
        return parts

    def losses(self, lr: Tensor, hr: Tensor, iteration: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(total to back-propagate, L1, contrastive term, embedding loss); all but the total detached.

        The terms with their graphs stay in ``_parts`` for the measurement of ``__call__``."""
        parts = self.forward(lr, hr, iteration, frozen=self.warmup_frozen(iteration))
        self._parts = parts
        return parts.total, parts.l1.detach(), parts.term, parts.d_loss
