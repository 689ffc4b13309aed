"""Learning-rate schedules of the training recipes, as pure functions of the iteration.

Why pure functions instead of ``torch.optim.lr_scheduler`` objects: a resumed run must set the
same learning rate at every iteration as an uninterrupted one, whatever the worker count or the
point of interruption.  A schedule here maps the iteration number to a learning rate; its
"state" is the iteration, which every checkpoint stores anyway.  ``state_dict`` exists so that
the checkpoint still records which schedule (and parameters) produced the run.

Every schedule steps per *epoch*, as the EDSR-PyTorch code family does (``scheduler.step()``
once per epoch of ``iterations_per_epoch`` iterations, 1000 in the released scripts): the epoch
index ``t`` used below is the number of scheduler steps completed before the iteration, i.e.
``t = iteration // iterations_per_epoch`` with iterations counted from 0.

* ``constant``        lr(t) = lr0.
* ``step``            lr(t) = lr0 * gamma ** (t // step_epochs) (EDSR's ``--decay``).
* ``cosine-restart``  the released scripts' CosineRestart (docs/method.md §5):
  cycle boundaries T_c = cumulative sums of ``periods``; cycle c is the first with t <= T_c
  (t = 0 belongs to cycle 0), t_c = T_{c-1} (0 for c = 0), P_c = periods[c], and
  lr(t) = eta_min + w_c * (lr0 - eta_min) * (1 + cos(pi * (t - t_c) / P_c)) / 2.
  With periods [200, 200, 200]: lr reaches eta_min at t = 200 and 400 and restarts at t = 201 and
  401, at the height of the next peak weight.  Past the last cycle the rate stays at eta_min.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from pcl.errors import PCLError

SCHEDULE_TYPES: tuple[str, ...] = ("constant", "step", "cosine-restart")


@dataclass(frozen=True)
class Schedule:
    """A validated learning-rate schedule; ``lr_at(iteration)`` is the rate of that iteration."""

    type: str = "constant"
    lr: float = 1e-4
    iterations_per_epoch: int = 1000
    # step
    step_epochs: int = 200
    gamma: float = 0.5
    # cosine-restart
    periods: tuple[int, ...] = field(default=(200, 200, 200))
    weights: tuple[float, ...] = field(default=(1.0, 1.0, 1.0))
    eta_min: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Schedule":
        """Build from a catalog mapping (``type`` plus its keys); PCLError names a bad key."""
        if not isinstance(data, Mapping):
            raise PCLError(f"schedule: expected a mapping, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PCLError(f"schedule: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(known))}")
        values = dict(data)
        for key in ("periods", "weights"):
            if key in values:
                values[key] = tuple(values[key])
        if "periods" in values and "weights" not in values:
            values["weights"] = tuple(1.0 for _ in values["periods"])
        schedule = cls(**values)
        schedule.validate()
        return schedule

    def validate(self) -> "Schedule":
        if self.type not in SCHEDULE_TYPES:
            raise PCLError(f"schedule: unknown type {self.type!r}; valid types: {', '.join(SCHEDULE_TYPES)}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise PCLError(f"schedule: lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.iterations_per_epoch, int) and self.iterations_per_epoch >= 1):
            raise PCLError(f"schedule: iterations_per_epoch must be an integer >= 1, got {self.iterations_per_epoch!r}")
        if self.type == "step":
            if not (isinstance(self.step_epochs, int) and self.step_epochs >= 1):
                raise PCLError(f"schedule: step_epochs must be an integer >= 1, got {self.step_epochs!r}")
            if not 0 < self.gamma <= 1:
                raise PCLError(f"schedule: gamma must be in (0, 1], got {self.gamma!r}")
        if self.type == "cosine-restart":
            if not self.periods or any(not isinstance(p, int) or p < 1 for p in self.periods):
                raise PCLError(f"schedule: periods must be positive integers, got {list(self.periods)}")
            if len(self.weights) != len(self.periods):
                raise PCLError(
                    f"schedule: weights {list(self.weights)} must have one entry per period {list(self.periods)}"
                )
            if any(not 0 < w <= 1 for w in self.weights):
                raise PCLError(f"schedule: weights must be in (0, 1], got {list(self.weights)}")
            if not 0 <= self.eta_min < self.lr:
                raise PCLError(f"schedule: eta_min must be in [0, lr), got {self.eta_min!r} (lr {self.lr!r})")
        return self

    # ------------------------------------------------------------------ evaluation

    def epoch_of(self, iteration: int) -> int:
        """Scheduler steps completed before ``iteration`` (0-based)."""
        return int(iteration) // self.iterations_per_epoch

    def lr_at_epoch(self, t: int) -> float:
        """The learning rate after ``t`` scheduler steps."""
        if t < 0:
            raise PCLError(f"schedule: epoch index must be >= 0, got {t}")
        if self.type == "constant":
            return float(self.lr)
        if self.type == "step":
            return float(self.lr * self.gamma ** (t // self.step_epochs))
        start = 0
        for period, weight in zip(self.periods, self.weights):
            end = start + period
            if t <= end:
                phase = (t - start) / period
                return float(self.eta_min + weight * (self.lr - self.eta_min) * 0.5 * (1.0 + math.cos(math.pi * phase)))
            start = end
        return float(self.eta_min)

    def lr_at(self, iteration: int) -> float:
        """The learning rate used by (0-based) ``iteration``."""
        return self.lr_at_epoch(self.epoch_of(iteration))

    def state_dict(self) -> dict[str, Any]:
        """Plain types only (the checkpoint is read with ``weights_only=True``)."""
        out = asdict(self)
        out["periods"] = list(self.periods)
        out["weights"] = list(self.weights)
        return out
