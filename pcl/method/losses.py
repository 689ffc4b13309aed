"""The SR network's contrastive term L_CL, in ``paper`` or ``released`` semantics.

See docs/method.md §4 (contrastive term) and §5 (gradient path).  Two behaviours:

``paper``     the SR features keep autograd, so the term trains the SR network (what P-J
              describes); the embedding's parameters never receive a gradient from it (the
              term is computed with detached copies of the parameters).
``released``  every embedding pass of the term runs under ``no_grad`` as in the authors' code
              (adversarial.py L109-111, L157-165): the term is a constant for the SR network
              (docs/method.md §5).  The VGG variant is the exception the code has: ``VGGInfoNCE`` keeps the
              SR graph (docs/method.md §2.4, §9 item 30), so it back-propagates in both behaviours.

Cost.  SR, positives and negatives are embedded with per-set BatchNorm statistics
(:func:`pcl.method.embedding_pass.embed_groups`).  In ``paper`` semantics the SR set needs a
backward through the embedding (to its input) while positives and negatives do not; putting them
in the same call would make that backward B*G images wide instead of B.  By default the SR set
therefore gets its own call (with grad) and all positives and negatives share one ``no_grad``
call (``fuse_sr=True`` puts all three in one).  In ``released`` semantics everything is
``no_grad`` and SR, positives and negatives share one call.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from pcl.errors import PCLError
from pcl.method.config import LOSS_TYPES, SEMANTICS
from pcl.method.embedding_pass import embed_groups, scale_input
from pcl.method.loss_formulas import (
    check_feature_shapes,
    infonce_from_similarities,
    normalize_features_,
    similarities,
    unit_vectors,
)
from pcl.models.vgg import VGG19Features


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily stop gradient accumulation in a module's parameters (restored afterwards)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def _check_term_args(semantics: str, loss_type: str, tau: float, layers: Sequence[int]) -> None:
    if semantics not in SEMANTICS:
        raise PCLError(f"contrastive term: unknown semantics {semantics!r}; valid values: {', '.join(SEMANTICS)}")
    if loss_type not in LOSS_TYPES:
        raise PCLError(f"contrastive term: unknown loss_type {loss_type!r}; valid values: {', '.join(LOSS_TYPES)}")
    if not tau > 0:
        raise PCLError(f"contrastive term: tau must be positive, got {tau}")
    if not layers:
        raise PCLError("contrastive term: no layers selected")


def _vgg_features(
    vgg: VGG19Features, sr: Tensor, samples: Tensor, layers: Sequence[int], scale: float
) -> tuple[list[Tensor], list[Tensor]]:
    """SR taps with autograd (to the input only), sample taps without; no BatchNorm, so the
    samples of all sets share one call exactly."""
    b, k = samples.shape[:2]
    with _frozen(vgg):
        sr_feats = vgg.taps(scale_input(sr, scale), layers)
        with torch.no_grad():
            flat = vgg.taps(scale_input(samples.reshape(b * k, *samples.shape[2:]), scale), layers)
    return sr_feats, [f.view(b, k, *f.shape[1:]) for f in flat]


def contrastive_term(
    embedding: nn.Module,
    sr: Tensor,
    positives: Tensor,
    negatives: Tensor,
    *,
    layers: Sequence[int],
    tau: float = 1.0,
    semantics: str = "paper",
    loss_type: str = "infonce",
    input_kind: str = "haar",
    pre_activation: bool = False,
    input_scale: float = 1.0,
    fuse_sr: bool = False,
) -> Tensor:
    """The contrastive term L_CL of the SR loss (unweighted), docs/method.md §4.

    ``sr`` (B, C, H, W); ``positives`` (B, P, C, H, W) and ``negatives`` (B, N, C, H, W) in [0, 1];
    images are multiplied by ``input_scale`` (R) before the embedding.  InfoNCE is averaged over
    the layers, the cosine difference summed over them (the NLSN script's definition, docs/method.md §4.3).
    ``embedding``: an ``EmbeddingNet`` (D, H+D, F+D) or a ``VGG19Features``.
    """
    _check_term_args(semantics, loss_type, tau, layers)
    p = positives.shape[1]
    if positives.dim() != 5 or negatives.dim() != 5 or p < 1 or negatives.shape[1] < 1:
        raise PCLError(
            f"contrastive term: expected positives (B, P>=1, C, H, W) and negatives (B, N>=1, C, H, W), got "
            f"{tuple(positives.shape)} and {tuple(negatives.shape)}"
        )
    samples = torch.cat((positives, negatives), dim=1)
    if isinstance(embedding, VGG19Features):
        sr_feats, sample_feats = _vgg_features(embedding, sr, samples, layers, input_scale)
    elif semantics == "released":
        with torch.no_grad():
            x = scale_input(torch.cat((sr.unsqueeze(1), samples), dim=1), input_scale)
            feats, _ = embed_groups(embedding, x, layers=layers, input_kind=input_kind, params="detached",
                                    pre_activation=pre_activation)
        sr_feats = [f[:, 0] for f in feats]
        sample_feats = [f[:, 1:] for f in feats]
    elif fuse_sr:
        x = scale_input(torch.cat((sr.unsqueeze(1), samples.detach()), dim=1), input_scale)
        feats, _ = embed_groups(embedding, x, layers=layers, input_kind=input_kind, params="snapshot",
                                pre_activation=pre_activation)
        sr_feats = [f[:, 0] for f in feats]
        sample_feats = [f[:, 1:].detach() for f in feats]
    else:
        feats, _ = embed_groups(embedding, scale_input(sr.unsqueeze(1), input_scale), layers=layers,
                                input_kind=input_kind, params="snapshot", pre_activation=pre_activation)
        sr_feats = [f[:, 0] for f in feats]
        with torch.no_grad():
            sample_feats, _ = embed_groups(embedding, scale_input(samples, input_scale), layers=layers,
                                           input_kind=input_kind, params="detached", pre_activation=pre_activation)
    terms = []
    for f, s in zip(sr_feats, sample_feats):
        check_feature_shapes(f, s)
        with torch.no_grad():  # normalise the sample features once (in place when no graph shares them)
            s = unit_vectors(s, 2) if fuse_sr and semantics == "paper" else normalize_features_(s, dim=2)
        sims = similarities(f, s)  # positives and negatives in one product
        s_pos, s_neg = sims[:, :p], sims[:, p:]
        if loss_type == "infonce":
            terms.append(infonce_from_similarities(s_pos, s_neg, tau))
        else:
            terms.append(s_neg.mean() - s_pos.mean())
    total = torch.stack(terms)
    return total.mean() if loss_type == "infonce" else total.sum()
