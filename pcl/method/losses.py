"""PCL losses: the embedding network's dual contrastive loss and the SR network's contrastive term.

Spec method.md 3 (embedding training), 4 (contrastive term), 5 (gradient path).  Two behaviours:

``paper``     the SR features keep autograd, so the term trains the SR network (what P-J
              describes); the embedding's parameters never receive a gradient from it (the
              term is computed with detached copies of the parameters).
``released``  every embedding pass of the term runs under ``no_grad`` as in the authors' code
              (adversarial.py L109-111, L157-165): the term is a constant for the SR network
              (spec 5).  The VGG variant is the exception the code has: ``VGGInfoNCE`` keeps the
              SR graph (spec 2.4, 9 item 30), so it back-propagates in both behaviours.

BatchNorm.  The released code embeds SR, each positive and each negative in a *separate*
forward call in train mode, so every set is normalised with its own batch statistics (spec 2.3,
3.2).  ``embed_groups`` reproduces that in ONE batched call: the input is (B, G, C, H, W) with G
sets, the convolutions see B*G images, and each BatchNorm computes its statistics per set
(reduction over batch and positions of that set only).  The result equals G separate calls up to
float rounding (tested), running statistics included (updated as G sequential calls would).

Cost.  In ``paper`` semantics the SR set needs a backward through the embedding (to its input)
while positives and negatives do not; putting them in the same call would make that backward
B*G images wide instead of B.  By default the SR set therefore gets its own call (with grad) and
all positives and negatives share one ``no_grad`` call (``fuse_sr=True`` puts all three in one).
In ``released`` semantics everything is ``no_grad`` and SR, positives and negatives share one call.
Only the blocks up to the deepest selected layer are evaluated (train-mode BatchNorm never reads
the running statistics of the deeper blocks, which the released full pass would also update).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcl.errors import PCLError
from pcl.method.config import LOSS_TYPES, SEMANTICS, MethodConfig
from pcl.method.frequency import embedding_input_channels, fft_features
from pcl.method.samples import Samples, make_samples
from pcl.models import build_model
from pcl.models.embedding import EmbeddingNet
from pcl.models.vgg import VGG19Features, build_vgg19

# ---------------------------------------------------------------------------- loss formulas


def contrastive_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Dual contrastive loss (Yu et al., ICCV 2021; spec 3.1), all logits flattened.

    L = mean_i -log(e^{r_i} / (e^{r_i} + sum_j e^{q_j})) + mean_j -log(e^{-q_j} / (e^{-q_j} + sum_i e^{-r_i})):
    every real logit wins a softmax against all fake logits, every negated fake logit against all
    negated real logits.  O(Nr + Nf) with two logsumexps; computed in float32.
    """
    r = real_logits.reshape(-1).float()
    q = fake_logits.reshape(-1).float()
    if r.numel() == 0 or q.numel() == 0:
        raise PCLError("contrastive_discriminator_loss: needs at least one real and one fake logit")
    real_term = (torch.logaddexp(r, torch.logsumexp(q, 0)) - r).mean()
    fake_term = (torch.logaddexp(-q, torch.logsumexp(-r, 0)) + q).mean()
    return real_term + fake_term


def _check_feature_shapes(feat: Tensor, others: Tensor) -> None:
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


def _similarities(feat: Tensor, others_unit: Tensor) -> Tensor:
    """s (B, K) from raw ``feat`` (B, C, h, w) and unit-normalised ``others_unit`` (B, K, C, h, w).

    The mean of per-position cosines is one dot product over (C, h, w) of the unit vectors,
    divided by h*w: a batched matrix product (laid out so that its backward is a plain product).
    """
    b, k = others_unit.shape[:2]
    positions = feat.shape[-2] * feat.shape[-1]
    f = unit_vectors(feat.float(), 1).reshape(b, 1, -1)
    o = others_unit.float().reshape(b, k, -1)
    return torch.bmm(f, o.transpose(1, 2)).squeeze(1) / positions


def pixel_cosine_similarity(feat: Tensor, others: Tensor) -> Tensor:
    """Eq. 9: cosine over channels at every position, averaged over positions (spec 4.1).

    ``feat`` (B, C, h, w), ``others`` (B, K, C, h, w) -> (B, K).  Vectors are normalised as
    ``F.normalize`` does (eps 1e-12).
    """
    _check_feature_shapes(feat, others)
    return _similarities(feat, unit_vectors(others.float(), 2))


def _infonce_from_similarities(s_pos: Tensor, s_neg: Tensor, tau: float) -> Tensor:
    s_pos, s_neg = s_pos / tau, s_neg / tau
    return (torch.logaddexp(s_pos, torch.logsumexp(s_neg, dim=1, keepdim=True)) - s_pos).mean()


def infonce(sr_feat: Tensor, pos_feats: Tensor, neg_feats: Tensor, tau: float = 1.0) -> Tensor:
    """Eq. 8 with the similarity of Eq. 9, averaged over batch and positives (spec 4.2).

    l_{b,j} = -s(f_b, p_{j,b})/tau + log(e^{s(f_b, p_{j,b})/tau} + sum_k e^{s(f_b, n_{k,b})/tau}).
    """
    if not tau > 0:
        raise PCLError(f"infonce: tau must be positive, got {tau}")
    s_pos = pixel_cosine_similarity(sr_feat, pos_feats)  # (B, P)
    s_neg = pixel_cosine_similarity(sr_feat, neg_feats)  # (B, N)
    return _infonce_from_similarities(s_pos, s_neg, tau)


def cosine_difference(sr_feat: Tensor, pos_feats: Tensor, neg_feats: Tensor) -> Tensor:
    """The NLSN script's term for one layer (spec 4.3): mean_n s(f, n) - mean_p s(f, p),
    similarities averaged over batch and positions.  ``contrastive_term`` sums it over layers."""
    return pixel_cosine_similarity(sr_feat, neg_feats).mean() - pixel_cosine_similarity(sr_feat, pos_feats).mean()


# ---------------------------------------------------------------------------- grouped embedding pass


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


# ---------------------------------------------------------------------------- contrastive term


def _check_term_args(semantics: str, loss_type: str, tau: float, layers: Sequence[int]) -> None:
    if semantics not in SEMANTICS:
        raise PCLError(f"contrastive term: unknown semantics {semantics!r}; valid values: {', '.join(SEMANTICS)}")
    if loss_type not in LOSS_TYPES:
        raise PCLError(f"contrastive term: unknown loss_type {loss_type!r}; valid values: {', '.join(LOSS_TYPES)}")
    if not tau > 0:
        raise PCLError(f"contrastive term: tau must be positive, got {tau}")
    if not layers:
        raise PCLError("contrastive term: no layers selected")


def _scaled(x: Tensor, scale: float) -> Tensor:
    return x if scale == 1.0 else x * scale


def _vgg_features(
    vgg: VGG19Features, sr: Tensor, samples: Tensor, layers: Sequence[int], scale: float
) -> tuple[list[Tensor], list[Tensor]]:
    """SR taps with autograd (to the input only), sample taps without; no BatchNorm, so the
    samples of all sets share one call exactly."""
    b, k = samples.shape[:2]
    with _frozen(vgg):
        sr_feats = vgg.taps(_scaled(sr, scale), layers)
        with torch.no_grad():
            flat = vgg.taps(_scaled(samples.reshape(b * k, *samples.shape[2:]), scale), layers)
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
    """The contrastive term L_CL of the SR loss (unweighted), spec 4.

    ``sr`` (B, C, H, W); ``positives`` (B, P, C, H, W) and ``negatives`` (B, N, C, H, W) in [0, 1];
    images are multiplied by ``input_scale`` (R) before the embedding.  InfoNCE is averaged over
    the layers, the cosine difference summed over them (the NLSN script's definition, spec 4.3).
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
            x = _scaled(torch.cat((sr.unsqueeze(1), samples), dim=1), input_scale)
            feats, _ = embed_groups(embedding, x, layers=layers, input_kind=input_kind, params="detached",
                                    pre_activation=pre_activation)
        sr_feats = [f[:, 0] for f in feats]
        sample_feats = [f[:, 1:] for f in feats]
    elif fuse_sr:
        x = _scaled(torch.cat((sr.unsqueeze(1), samples.detach()), dim=1), input_scale)
        feats, _ = embed_groups(embedding, x, layers=layers, input_kind=input_kind, params="snapshot",
                                pre_activation=pre_activation)
        sr_feats = [f[:, 0] for f in feats]
        sample_feats = [f[:, 1:].detach() for f in feats]
    else:
        feats, _ = embed_groups(embedding, _scaled(sr.unsqueeze(1), input_scale), layers=layers,
                                input_kind=input_kind, params="snapshot", pre_activation=pre_activation)
        sr_feats = [f[:, 0] for f in feats]
        with torch.no_grad():
            sample_feats, _ = embed_groups(embedding, _scaled(samples, input_scale), layers=layers,
                                           input_kind=input_kind, params="detached", pre_activation=pre_activation)
    terms = []
    for f, s in zip(sr_feats, sample_feats):
        _check_feature_shapes(f, s)
        with torch.no_grad():  # normalise the sample features once (in place when no graph shares them)
            s = unit_vectors(s, 2) if fuse_sr and semantics == "paper" else normalize_features_(s, dim=2)
        sims = _similarities(f, s)  # positives and negatives in one product
        s_pos, s_neg = sims[:, :p], sims[:, p:]
        if loss_type == "infonce":
            terms.append(_infonce_from_similarities(s_pos, s_neg, tau))
        else:
            terms.append(s_neg.mean() - s_pos.mean())
    total = torch.stack(terms)
    return total.mean() if loss_type == "infonce" else total.sum()


# ---------------------------------------------------------------------------- embedding training


def embedding_update_step(
    embedding: EmbeddingNet,
    optimizer: torch.optim.Optimizer,
    hr: Tensor,
    sr_detached: Tensor,
    samples: Samples,
    *,
    contrastive_d: bool,
    input_kind: str = "haar",
    input_scale: float = 1.0,
) -> Tensor:
    """One Adam step of the embedding on the dual contrastive loss (spec 3); returns the loss (no sync).

    real = HR [+ the sharpened positives], fake = SR (detached) [+ the blurred negatives] when
    ``contrastive_d`` (the GT and the LR negative are never added twice / never fakes, spec 3.2).
    Each set is one BatchNorm group of a single batched call, BatchNorm in train mode.
    """
    if isinstance(embedding, VGG19Features):
        raise PCLError("embedding update: the VGG embedding is frozen and is never trained")
    embedding.train()
    real = [hr.unsqueeze(1)]
    fake = [sr_detached.detach().unsqueeze(1)]
    if contrastive_d:
        if samples.generated_positives.shape[1]:
            real.append(samples.generated_positives)
        if samples.generated_negatives.shape[1]:
            fake.append(samples.generated_negatives)
    n_real = sum(t.shape[1] for t in real)
    x = _scaled(torch.cat(real + fake, dim=1).detach(), input_scale)
    _, logits = embed_groups(embedding, x, input_kind=input_kind, params="attached", with_logits=True)
    loss = contrastive_discriminator_loss(logits[:, :n_real], logits[:, n_real:])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


# ---------------------------------------------------------------------------- construction and one step


def build_embedding(
    kind: str,
    *,
    patch_d: bool = True,
    patch_size: int = 192,
    vgg_normalize: bool = True,
    vgg_pretrained: bool = True,
    vgg_weights: str | None = None,
) -> nn.Module:
    """The embedding of a Table IV configuration: 'haar' (H+D), 'rgb' (D), 'fft' (F+D: 6 input
    channels), 'vgg' (frozen VGG-19; ImageNet weights required when ``vgg_pretrained``)."""
    if kind == "vgg":
        return build_vgg19(normalize=vgg_normalize, pretrained=vgg_pretrained, path=vgg_weights)
    if kind == "haar":
        return build_model("embedding", use_wavelet=True, patch_d=patch_d, patch_size=patch_size)
    if kind in ("rgb", "fft"):
        return build_model("embedding", use_wavelet=False, patch_d=patch_d, patch_size=patch_size,
                           n_colors=embedding_input_channels(kind, 3))
    raise PCLError(f"unknown embedding kind {kind!r}; valid kinds: haar, rgb, fft, vgg")


@dataclass
class PCLStepOutput:
    """What one PCL step produces: the unweighted term, alpha * term, the embedding loss (or None)."""

    term: Tensor
    weighted: Tensor
    embedding_loss: Tensor | None
    samples: Samples


class PCLObjective:
    """The PCL extras of one SR training step, configured by a ``MethodConfig``.

    ``step(sr, hr, lr)`` draws the samples, updates the embedding (before the term in released
    semantics, after it in paper semantics) and returns the contrastive term; the caller adds
    ``weighted`` to its L1 loss and back-propagates.  The embedding has its own Adam optimiser.
    """

    def __init__(
        self,
        config: MethodConfig,
        *,
        device: str | torch.device = "cpu",
        sr_lr: float | None = None,
        embedding: nn.Module | None = None,
        generator: torch.Generator | None = None,
        patch_size: int = 192,
        vgg_pretrained: bool = True,
        vgg_weights: str | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.input_kind = "rgb" if config.embedding == "vgg" else config.input_kind
        if embedding is None:
            embedding = build_embedding(self.input_kind if config.embedding != "vgg" else "vgg",
                                        patch_size=patch_size, vgg_normalize=config.vgg_normalize,
                                        vgg_pretrained=vgg_pretrained, vgg_weights=vgg_weights)
        self.embedding = embedding.to(device).train()
        self.generator = generator
        self.optimizer: torch.optim.Optimizer | None = None
        if not isinstance(self.embedding, VGG19Features):
            lr = config.d_lr if config.d_lr is not None else sr_lr
            if lr is None:
                raise PCLError("PCL: the embedding's learning rate is unset; give d_lr in the method config or sr_lr")
            self.optimizer = torch.optim.Adam(self.embedding.parameters(), lr=lr, betas=config.d_betas,
                                              eps=config.d_eps)

    def _term(self, sr: Tensor, samples: Samples) -> Tensor:
        c = self.config
        return contrastive_term(self.embedding, sr, samples.positives, samples.negatives, layers=c.layers, tau=c.tau,
                                semantics=c.semantics, loss_type=c.loss_type, input_kind=self.input_kind,
                                pre_activation=c.pre_activation, input_scale=c.rgb_range, fuse_sr=c.fuse_sr)

    def _update(self, sr: Tensor, hr: Tensor, samples: Samples) -> Tensor | None:
        if self.optimizer is None:
            return None
        return embedding_update_step(self.embedding, self.optimizer, hr, sr.detach(), samples,
                                     contrastive_d=self.config.contrastive_d, input_kind=self.input_kind,
                                     input_scale=self.config.rgb_range)

    def step(self, sr: Tensor, hr: Tensor, lr: Tensor | None) -> PCLStepOutput:
        samples = make_samples(hr, lr, self.config, generator=self.generator)
        if self.config.update_first:
            d_loss = self._update(sr, hr, samples)
            term = self._term(sr, samples)
        else:
            term = self._term(sr, samples)
            d_loss = self._update(sr, hr, samples)
        return PCLStepOutput(term=term, weighted=self.config.weight * term, embedding_loss=d_loss, samples=samples)
