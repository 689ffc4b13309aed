"""The loss formulas of PCL: dual contrastive loss, pixel cosine similarity, InfoNCE.

See docs/method.md §3.1 (dual contrastive loss) and §4.1-§4.3 (similarity, InfoNCE, cosine
difference).  Why apart from the embedding passes: the formulas are pure functions of logits and
features, tested on hand-computed cases, and the contrastive term needs their fast inner pieces
(``similarities`` on pre-normalised sample features) as well as the checked public versions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pcl.errors import PCLError


def fp32_region(t: Tensor):
    """Autocast switched off on ``t``'s device: the similarities and losses are computed in float32
    even when the networks run under bf16 autocast (their operands are cast to float32 here; under
    autocast a float32 ``bmm`` would otherwise run in bf16 again).  See docs/method_choices.md."""
    return torch.autocast(t.device.type, enabled=False)


def contrastive_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Dual contrastive loss (Yu et al., ICCV 2021; docs/method.md §3.1), all logits flattened.

    L = mean_i -log(e^{r_i} / (e^{r_i} + sum_j e^{q_j})) + mean_j -log(e^{-q_j} / (e^{-q_j} + sum_i e^{-r_i})):
    every real logit wins a softmax against all fake logits, every negated fake logit against all
    negated real logits.  O(Nr + Nf) with two logsumexps; computed in float32.
    """
    r = real_logits.reshape(-1).float()
    q = fake_logits.reshape(-1).float()
    if r.numel() == 0 or q.numel() == 0:
        raise PCLError("contrastive_discriminator_loss: needs at least one real and one fake logit")
    with fp32_region(r):
        real_term = (torch.logaddexp(r, torch.logsumexp(q, 0)) - r).mean()
        fake_term = (torch.logaddexp(-q, torch.logsumexp(-r, 0)) + q).mean()
        return real_term + fake_term


def contrastive_discriminator_chance(n_real: int, n_fake: int) -> float:
    """The dual contrastive loss of an embedding that cannot tell real from fake: ln(1 + Nf) + ln(1 + Nr).

    Why this is the reference: when every logit has the same value c, each real softmax term is
    -log(e^c / (e^c + Nf e^c)) = ln(1 + Nf) and each fake one ln(1 + Nr), whatever c is; a loss at
    or above this level means the embedding has not learnt to separate HR from SR.  Nr and Nf count
    *logits* (images times the head's logits per image: 16 with the 4x4 patch head).
    """
    if n_real < 1 or n_fake < 1:
        raise PCLError(f"contrastive_discriminator_chance: needs at least one real and one fake logit, got {n_real}, {n_fake}")
    return math.log1p(n_fake) + math.log1p(n_real)


def check_feature_shapes(feat: Tensor, others: Tensor) -> None:
    if feat.dim() != 4 or others.dim() != 5 or others.shape[0] != feat.shape[0] or others.shape[2:] != feat.shape[1:]:
        raise PCLError(
            f"similarity: expected features (B, C, h, w) and (B, K, C, h, w), got {tuple(feat.shape)} and "
            f"{tuple(others.shape)}"
        )


def _sum_sq(x: Tensor, dim: int) -> Tensor:
    """Sum of squares over ``dim`` (kept as size 1).

    Why not ``vector_norm``: on CPU, PyTorch's reductions over a middle dimension are slow
    (measured on (4, 9, 64, 96, 96): 66-78 ms for ``vector_norm(dim=2)`` vs 6 ms for accumulating
    the 64 channel slices with ``addcmul_``).  Without a graph the CPU path accumulates slices;
    with one it uses a matrix product with a ones vector; other devices use the plain reduction.
    """
    if x.device.type != "cpu":
        return x.square().sum(dim, keepdim=True)
    if torch.is_grad_enabled() and x.requires_grad:
        shape = x.shape
        channels = shape[dim]
        lead = math.prod(shape[:dim])
        rest = math.prod(shape[dim + 1 :])
        ones = torch.ones(1, channels, dtype=x.dtype, device=x.device)
        out = torch.matmul(ones, (x * x).reshape(lead, channels, rest))
        return out.reshape(*shape[:dim], 1, *shape[dim + 1 :])
    slices = x.unbind(dim)
    acc = slices[0].square()
    for t in slices[1:]:
        acc.addcmul_(t, t)
    return acc.unsqueeze(dim)


def unit_vectors(x: Tensor, dim: int) -> Tensor:
    """``F.normalize(x, dim=dim)`` (x / max(||x||, 1e-12)), fast on CPU (see ``_sum_sq``)."""
    return x * torch.rsqrt(_sum_sq(x, dim).clamp_min(1e-24))


def normalize_features_(feats: Tensor, dim: int) -> Tensor:
    """In-place ``unit_vectors`` for feature tensors that carry no graph: saves a copy of the
    (large) sample features, whose normalised form is all the similarity needs."""
    with torch.no_grad():
        return feats.mul_(torch.rsqrt(_sum_sq(feats, dim).clamp_min_(1e-24)))


def similarities(feat: Tensor, others_unit: Tensor) -> Tensor:
    """s (B, K) from raw ``feat`` (B, C, h, w) and unit-normalised ``others_unit`` (B, K, C, h, w).

    The mean of per-position cosines is one dot product over (C, h, w) of the unit vectors,
    divided by h*w: a batched matrix product (laid out so that its backward is a plain product).
    """
    b, k = others_unit.shape[:2]
    positions = feat.shape[-2] * feat.shape[-1]
    with fp32_region(feat):
        f = unit_vectors(feat.float(), 1).reshape(b, 1, -1)
        o = others_unit.float().reshape(b, k, -1)
        return torch.bmm(f, o.transpose(1, 2)).squeeze(1) / positions


def pixel_cosine_similarity(feat: Tensor, others: Tensor) -> Tensor:
    """Eq. 9: cosine over channels at every position, averaged over positions (docs/method.md §4.1).

    ``feat`` (B, C, h, w), ``others`` (B, K, C, h, w) -> (B, K).  Vectors are normalised as
    ``F.normalize`` does (eps 1e-12).
    """
    check_feature_shapes(feat, others)
    with fp32_region(others):
        return similarities(feat, unit_vectors(others.float(), 2))


def infonce_from_similarities(s_pos: Tensor, s_neg: Tensor, tau: float) -> Tensor:
    with fp32_region(s_pos):
        s_pos, s_neg = s_pos.float() / tau, s_neg.float() / tau
        return (torch.logaddexp(s_pos, torch.logsumexp(s_neg, dim=1, keepdim=True)) - s_pos).mean()


def infonce(sr_feat: Tensor, pos_feats: Tensor, neg_feats: Tensor, tau: float = 1.0) -> Tensor:
    """Eq. 8 with the similarity of Eq. 9, averaged over batch and positives (docs/method.md §4.2).

    l_{b,j} = -s(f_b, p_{j,b})/tau + log(e^{s(f_b, p_{j,b})/tau} + sum_k e^{s(f_b, n_{k,b})/tau}).
    """
    if not tau > 0:
        raise PCLError(f"infonce: tau must be positive, got {tau}")
    s_pos = pixel_cosine_similarity(sr_feat, pos_feats)  # (B, P)
    s_neg = pixel_cosine_similarity(sr_feat, neg_feats)  # (B, N)
    return infonce_from_similarities(s_pos, s_neg, tau)


def cosine_difference(sr_feat: Tensor, pos_feats: Tensor, neg_feats: Tensor) -> Tensor:
    """The NLSN script's term for one layer (docs/method.md §4.3): mean_n s(f, n) - mean_p s(f, p),
    similarities averaged over batch and positions.  ``contrastive_term`` sums it over layers."""
    return pixel_cosine_similarity(sr_feat, neg_feats).mean() - pixel_cosine_similarity(sr_feat, pos_feats).mean()
