"""The PCL extras of one SR training step: the embedding's update and the contrastive term.

See docs/method.md §3 (embedding training).  Why a module of its own: the SR trainer (``pcl.train``)
sees one object per step (``PCLObjective.step``) that draws the samples, updates the embedding on
the dual contrastive loss and returns the weighted term, in the order the chosen semantics needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pcl.errors import PCLError
from pcl.method.config import MethodConfig
from pcl.method.embedding_pass import embed_groups, scale_input
from pcl.method.frequency import embedding_input_channels
from pcl.method.loss_formulas import contrastive_discriminator_chance, contrastive_discriminator_loss, fp32_region
from pcl.method.losses import contrastive_term
from pcl.method.samples import Samples, make_samples
from pcl.models import build_model
from pcl.models.embedding import EmbeddingNet
from pcl.models.vgg import VGG19Features, build_vgg19


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
    """One Adam step of the embedding on the dual contrastive loss (docs/method.md §3); returns the loss (no sync).

    See ``embedding_update`` for the arguments; this form drops the loss's chance level.
    """
    loss, _ = embedding_update(embedding, optimizer, hr, sr_detached, samples, contrastive_d=contrastive_d,
                               input_kind=input_kind, input_scale=input_scale)
    return loss


def embedding_update(
    embedding: EmbeddingNet,
    optimizer: torch.optim.Optimizer,
    hr: Tensor,
    sr_detached: Tensor,
    samples: Samples,
    *,
    contrastive_d: bool,
    input_kind: str = "haar",
    input_scale: float = 1.0,
) -> tuple[Tensor, float]:
    """One Adam step of the embedding; returns (the loss, its chance level from the logit counts).

    real = HR [+ the sharpened positives], fake = SR (detached) [+ the blurred negatives] when
    ``contrastive_d`` (the GT and the LR negative are never added twice / never fakes, docs/method.md §3.2).
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
    x = scale_input(torch.cat(real + fake, dim=1).detach(), input_scale)
    _, logits = embed_groups(embedding, x, input_kind=input_kind, params="attached", with_logits=True)
    real_logits, fake_logits = logits[:, :n_real], logits[:, n_real:]
    loss = contrastive_discriminator_loss(real_logits, fake_logits)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), contrastive_discriminator_chance(real_logits.numel(), fake_logits.numel())


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
    embedding_chance: float | None = None


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

    def _update(self, sr: Tensor, hr: Tensor, samples: Samples) -> tuple[Tensor | None, float | None]:
        if self.optimizer is None:
            return None, None
        return embedding_update(self.embedding, self.optimizer, hr, sr.detach(), samples,
                                contrastive_d=self.config.contrastive_d, input_kind=self.input_kind,
                                input_scale=self.config.rgb_range)

    def step(self, sr: Tensor, hr: Tensor, lr: Tensor | None) -> PCLStepOutput:
        """One step; the caller may hold a bf16 autocast region for the embedding's passes.

        Precision policy: the samples (sharpening, blur, 8-bit quantisation, LR upsampling) are
        always made in float32 with autocast off -- in bf16 a blur of sigma 0.3 would be smaller
        than its own rounding error -- and the similarities and losses are float32
        (``loss_formulas.fp32_region``); only the networks' convolutions follow the autocast.
        """
        with fp32_region(hr):
            samples = make_samples(hr.float(), None if lr is None else lr.float(), self.config, generator=self.generator)
        if self.config.update_first:
            d_loss, chance = self._update(sr, hr, samples)
            term = self._term(sr, samples)
        else:
            term = self._term(sr, samples)
            d_loss, chance = self._update(sr, hr, samples)
        return PCLStepOutput(term=term, weighted=self.config.weight * term, embedding_loss=d_loss, samples=samples,
                             embedding_chance=chance)
