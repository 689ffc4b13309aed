"""The embedding network's forward over several image sets at once, BatchNorm per set.

BatchNorm.  The released code embeds SR, each positive and each negative in a *separate*
forward call in train mode, so every set is normalised with its own batch statistics
(docs/method.md §2.3, §3.2).  ``embed_groups`` reproduces that in ONE batched call: the input is
(B, G, C, H, W) with G sets, the convolutions see B*G images, and each BatchNorm computes its
statistics per set (reduction over batch and positions of that set only).  The result equals G
separate calls up to float rounding (tested), running statistics included (updated as G
sequential calls would).  Only the blocks up to the deepest selected layer are evaluated
(train-mode BatchNorm never reads the running statistics of the deeper blocks, which the
released full pass would also update).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcl.errors import PCLError
from pcl.method.frequency import embedding_input_channels, fft_features
from pcl.models.embedding import EmbeddingNet


def scale_input(x: Tensor, scale: float) -> Tensor:
    """Images in [0, 1] times the embedding's input scale (R); no copy when R is 1."""
    return x if scale == 1.0 else x * scale


def group_batch_norm(h: Tensor, bn: nn.BatchNorm2d, groups: int, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """BatchNorm of (B*G, C, h, w), laid out batch-major (B, G), with statistics per group.

    Equals ``bn`` applied to each group in a separate call, in train mode: normalisation with the
    group's biased variance; running statistics updated as G sequential calls (group order), with
    the unbiased variance.  In eval mode the running statistics are used for all groups alike.

    How: in the batch-major layout (B, G, C, h, w) is contiguous, so (B, G*C, h, w) is a *view*
    whose channel g*C + c holds channel c of group g; one native batch_norm on that view with the
    affine parameters repeated G times computes exactly the per-group statistics (no copy, the
    fused kernel and its fused backward).  The batch statistics come back through scratch running
    buffers with momentum 1 (which then hold the batch mean and the unbiased variance).
    """
    if not bn.training and bn.running_mean is not None:
        return F.batch_norm(h, bn.running_mean, bn.running_var, weight, bias, False, 0.0, bn.eps)
    n_img, channels, height, width = h.shape
    batch = n_img // groups
    view = h.reshape(batch, groups * channels, height, width)
    w = weight.repeat(groups) if weight is not None and groups > 1 else weight
    b = bias.repeat(groups) if bias is not None and groups > 1 else bias
    tracked = bn.track_running_stats and bn.running_mean is not None
    if not tracked:
        return F.batch_norm(view, None, None, w, b, True, 0.0, bn.eps).view(n_img, channels, height, width)
    # Fresh scratch buffers (never modified later), so a graph that saves them stays valid.
    batch_mean = torch.zeros(groups * channels, device=h.device, dtype=bn.running_mean.dtype)
    batch_var = torch.ones(groups * channels, device=h.device, dtype=bn.running_var.dtype)
    out = F.batch_norm(view, batch_mean, batch_var, w, b, True, 1.0, bn.eps)
    _update_running_stats(bn, batch_mean.view(groups, channels), batch_var.view(groups, channels))
    return out.view(n_img, channels, height, width)


@torch.no_grad()
def _update_running_stats(bn: nn.BatchNorm2d, mean: Tensor, unbiased_var: Tensor) -> None:
    """Running-stat update of G sequential BatchNorm calls (rows of ``mean``), without reading
    device values on the host."""
    groups = mean.shape[0]
    if bn.momentum is None:  # cumulative average: factor 1 / (number of batches seen), per call
        for g in range(groups):
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / bn.num_batches_tracked.float()
            bn.running_mean.mul_(1 - factor).add_(factor * mean[g])
            bn.running_var.mul_(1 - factor).add_(factor * unbiased_var[g])
        return
    m = float(bn.momentum)
    # After G calls: r = (1-m)^G r0 + sum_g m (1-m)^(G-1-g) x_g.
    powers = torch.arange(groups - 1, -1, -1, device=mean.device, dtype=mean.dtype)
    coef = (m * torch.pow(torch.full_like(powers, 1 - m), powers)).view(groups, 1)
    keep = (1 - m) ** groups
    bn.running_mean.mul_(keep).add_((coef * mean).sum(0))
    bn.running_var.mul_(keep).add_((coef * unbiased_var).sum(0))
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(groups)


def _param(t: Tensor | None, mode: str) -> Tensor | None:
    """attached: the parameter itself; detached: no autograd link; snapshot: detached copy, safe
    against later in-place optimizer updates of the parameter (the SR graph may outlive them)."""
    if t is None or mode == "attached":
        return t
    if mode == "detached":
        return t.detach()
    return t.detach().clone()


def trunk_input(embedding: EmbeddingNet, x: Tensor, input_kind: str) -> Tensor:
    """Images -> the trunk's input for ``input_kind``, checking that the network was built for it."""
    first_conv = embedding.features[0][0]
    channels = x.shape[1]
    if input_kind == "haar":
        if not embedding.use_wavelet:
            raise PCLError("embedding: input_kind 'haar' needs an embedding built with use_wavelet=True")
        return embedding.transform(x)
    if embedding.use_wavelet:
        raise PCLError(f"embedding: input_kind {input_kind!r} needs an embedding built with use_wavelet=False")
    if input_kind not in ("rgb", "fft"):
        raise PCLError(f"embedding: unknown input_kind {input_kind!r}; valid kinds: rgb, haar, fft")
    expected = embedding_input_channels(input_kind, channels)
    if first_conv.in_channels != expected:
        raise PCLError(
            f"embedding: input_kind {input_kind!r} gives {expected} channels but the network's first "
            f"convolution takes {first_conv.in_channels}; build it with build_embedding({input_kind!r})"
        )
    return fft_features(x) if input_kind == "fft" else x


def embed_groups(
    embedding: EmbeddingNet,
    x: Tensor,
    *,
    layers: Sequence[int] = (),
    input_kind: str = "haar",
    params: str = "attached",
    pre_activation: bool = False,
    with_logits: bool = False,
) -> tuple[list[Tensor], Tensor | None]:
    """One batched pass of G image sets (B, G, C, H, W) with per-set BatchNorm statistics.

    Returns the features of ``layers`` as (B, G, C', h, w) tensors (post-activation unless
    ``pre_activation``) and, with ``with_logits``, the logits (B, G, L).  ``params``: 'attached'
    (train the embedding), 'detached' or 'snapshot' (no gradient into the embedding; gradient to
    ``x`` when it requires grad).  Stops after the deepest requested layer unless logits are wanted.
    """
    if x.dim() != 5:
        raise PCLError(f"embedding: expected (B, G, C, H, W) image sets, got {tuple(x.shape)}")
    batch, groups = x.shape[:2]
    blocks = list(embedding.features)
    convs_bns, activations = blocks[0::2], blocks[1::2]
    for index in layers:
        if not 0 <= index < len(convs_bns):
            raise PCLError(f"embedding: layer index {index} out of range (valid 0..{len(convs_bns) - 1})")
    depth = len(convs_bns) if with_logits else (max(layers) + 1 if layers else 0)
    wanted = set(layers)
    h = trunk_input(embedding, x.reshape(batch * groups, *x.shape[2:]), input_kind)
    found: dict[int, Tensor] = {}
    for i in range(depth):
        conv, bn = convs_bns[i][0], convs_bns[i][1]
        h = F.conv2d(h, _param(conv.weight, params), _param(conv.bias, params), conv.stride, conv.padding,
                     conv.dilation, conv.groups)
        h = group_batch_norm(h, bn, groups, _param(bn.weight, params), _param(bn.bias, params))
        slope = activations[i].negative_slope
        if pre_activation and i in wanted:
            found[i] = h
            h = F.leaky_relu(h, slope)
        else:  # in place, as the released network (its backward needs only the output, slope > 0)
            h = F.leaky_relu(h, slope, inplace=True)
            if i in wanted:
                found[i] = h
    features = [found[i].view(batch, groups, *found[i].shape[1:]) for i in layers]
    logits = None
    if with_logits:
        if params != "attached":
            raise PCLError("embedding: logits are only computed with attached parameters (embedding training)")
        logits = embedding.classifier(h).reshape(batch, groups, -1)
    return features, logits
