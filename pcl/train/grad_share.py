"""How much the contrastive term weighs in the SR network's update: the measured gradient share.

Why measured and not inferred from alpha: the L1 is computed on the backbone's value range
(``loss_scale``: 255 for EDSR/RCAN/HAN under ``backbone``) while the term is scale-free, and the
term's gradient also depends on how well the embedding separates the samples, so the nominal
alpha says little about the term's real influence.  The share is

    share  = ||grad_theta(alpha * L_CL)|| / ||grad_theta(L1)||
    cosine = <grad_theta(alpha * L_CL), grad_theta(L1)> / (||.|| ||.||)

over all trainable SR parameters theta (one flat vector), on the batch of the logging iteration.

How it leaves training unchanged: both gradients come from ``torch.autograd.grad`` on the graph
of the iteration's own forward (kept with ``retain_graph``); nothing is written to ``.grad``,
no random number is drawn and the update that follows is the normal backward of L1 + alpha L_CL
(bitwise the same weights with and without the measurement, tested on CPU).  Cost: one extra
backward of each term at every logging iteration.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

#: The values a step without a measurement reports: share and cosine undefined.
NOT_MEASURED = (math.nan, math.nan)


def _flat_grads(loss: Tensor, params: Sequence[nn.Parameter]) -> list[Tensor]:
    """d loss / d params as float64 tensors (zeros for parameters the loss does not reach)."""
    grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p, dtype=torch.float64) if g is None else g.detach().double()
            for g, p in zip(grads, params)]


def share_and_cosine(g_term: Sequence[Tensor], g_l1: Sequence[Tensor]) -> Tensor:
    """[||g_term|| / ||g_l1||, cosine(g_term, g_l1)] over the concatenated gradients, on the device.

    The cosine is NaN when either gradient is zero (it has no direction); the share is NaN when
    the L1 gradient is zero.  Nothing is read back to the host.
    """
    sq_term = sum((g.square().sum() for g in g_term), torch.zeros((), dtype=torch.float64, device=g_l1[0].device))
    sq_l1 = sum((g.square().sum() for g in g_l1), torch.zeros((), dtype=torch.float64, device=g_l1[0].device))
    dot = sum(((a * b).sum() for a, b in zip(g_term, g_l1)),
              torch.zeros((), dtype=torch.float64, device=g_l1[0].device))
    n_term, n_l1 = sq_term.sqrt(), sq_l1.sqrt()
    nan = torch.full((), math.nan, dtype=torch.float64, device=n_l1.device)
    share = torch.where(n_l1 > 0, n_term / n_l1, nan)
    cosine = torch.where((n_term > 0) & (n_l1 > 0), dot / (n_term * n_l1), nan)
    return torch.stack([share, cosine]).float()


def measure_share(l1: Tensor, weighted: Tensor | None, params: Sequence[nn.Parameter],
                  scale: float | Tensor | None = None) -> Tensor:
    """Share and cosine of ``weighted`` (alpha * L_CL) against ``l1`` on ``params``.

    ``weighted`` None or without a graph (the released term, or a term switched off): the term
    gives the SR network no gradient, so the share is exactly 0 and the cosine undefined (NaN).
    ``scale`` (a GradScaler's factor) multiplies both losses before differentiation so that fp16
    gradients do not underflow; the share and the cosine do not depend on it.
    """
    l1_for_grad = l1 * scale if scale is not None else l1
    if weighted is None or not weighted.requires_grad:
        return torch.tensor([0.0, math.nan], device=l1.device)
    term_for_grad = weighted * scale if scale is not None else weighted
    return share_and_cosine(_flat_grads(term_for_grad, params), _flat_grads(l1_for_grad, params))


#: log.csv columns of the measurement and of the embedding's chance level.
DIAGNOSTIC_COLUMNS = ("grad_share", "grad_cosine", "embedding_loss", "embedding_chance")


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def diagnostics_summary(rows: Sequence[dict[str, object]], *, warmup: int) -> dict[str, object]:
    """``result.json``'s ``pcl_diagnostics``: medians of the logged measurements over the run.

    Only training rows after the warm-up count (validation rows carry no loss; warm-up rows
    describe a network that the term does not train).  Rows come from log.csv (text) or from
    the trainer (numbers) alike, so a resumed run summarises all its sessions.
    """
    kept = [r for r in rows if _number(r.get("loss")) is not None and (_number(r.get("iteration")) or 0) > warmup]

    def median(key: str) -> float | None:
        values = sorted(v for v in (_number(r.get(key)) for r in kept) if v is not None)
        if not values:
            return None
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])

    return {
        "grad_share_median": median("grad_share"),
        "grad_cosine_median": median("grad_cosine"),
        "embedding_loss_median": median("embedding_loss"),
        "embedding_chance": median("embedding_chance"),
        "measurements": sum(1 for r in kept if _number(r.get("grad_share")) is not None),
        "after_iteration": warmup,
    }


def measured_fields(step: object) -> dict[str, float | None]:
    """The log row's share, cosine and chance level from a ``TrainStep`` after its logging
    iteration (None where undefined: no measurement, a frozen SR network, a zero gradient)."""
    last = getattr(step, "last_measure", None)
    share, cosine = last.tolist() if last is not None else NOT_MEASURED
    return {"grad_share": share if math.isfinite(share) else None,
            "grad_cosine": cosine if math.isfinite(cosine) else None,
            "embedding_chance": getattr(step, "embedding_chance", None)}
