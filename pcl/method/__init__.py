"""The PCL method: samples, frequency inputs, losses, embedding training, settings.

Why a package of its own: the SR trainer (``pcl.train``) should see one object per step
(``PCLObjective.step``) while tests and the Table IV/VI ablations need the pieces separately.
Two behaviours, chosen by ``MethodConfig.semantics``: ``paper`` (default; the method as the
journal paper describes it, with our documented choices where it is silent, see
docs/method_choices.md) and ``released`` (the authors' scripts, docs/method.md §0-§5).
"""

from __future__ import annotations

from pcl.method.config import EMBEDDINGS, LOSS_TYPES, PRESETS, SEMANTICS, MethodConfig
from pcl.method.frequency import (
    embedding_input_channels,
    fft_features,
    haar_decompose,
    haar_highpass,
    haar_inverse,
    make_embedding_input,
)
from pcl.method.embedding_pass import embed_groups, group_batch_norm
from pcl.method.loss_formulas import (
    contrastive_discriminator_loss,
    cosine_difference,
    infonce,
    pixel_cosine_similarity,
)
from pcl.method.losses import contrastive_term
from pcl.method.objective import PCLObjective, PCLStepOutput, build_embedding, embedding_update_step
from pcl.method.samples import (
    SampleParams,
    Samples,
    draw_sample_params,
    gaussian_blur,
    make_samples,
    quantize_8bit,
    sharpen,
    upsample_lr,
)

__all__ = [
    "EMBEDDINGS",
    "LOSS_TYPES",
    "PRESETS",
    "SEMANTICS",
    "MethodConfig",
    "PCLObjective",
    "PCLStepOutput",
    "SampleParams",
    "Samples",
    "build_embedding",
    "contrastive_discriminator_loss",
    "contrastive_term",
    "cosine_difference",
    "draw_sample_params",
    "embed_groups",
    "embedding_input_channels",
    "embedding_update_step",
    "fft_features",
    "gaussian_blur",
    "group_batch_norm",
    "haar_decompose",
    "haar_highpass",
    "haar_inverse",
    "infonce",
    "make_embedding_input",
    "make_samples",
    "pixel_cosine_similarity",
    "quantize_8bit",
    "sharpen",
    "upsample_lr",
]
