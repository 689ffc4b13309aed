"""Running an SR network on benchmark images: model -> ``Predictor`` (uint8 LR -> uint8 SR).

Why a package of its own: every model-based number in the tables (released checkpoints, our
fine-tunes, smoke runs) must come from one inference path whose options are explicit and recorded.
The options that change outputs are exactly the ones the official test loops have (docs/backbones.md
§1.5): tiled/chopped inference, x8 self-ensemble, reduced precision, and, for NLSN, the random
rotations drawn in every forward (docs/backbones.md §6.3).

* :mod:`pcl.inference.settings`: what a network is (local/global, random) and the validated
  ``InferenceSettings``;
* :mod:`pcl.inference.forward`: tiling, the official chop and the x8 self-ensemble;
* :mod:`pcl.inference.predictor`: ``ModelPredictor`` (value path, precision, timing) and the
  results sidecar, and the refusal of NaN/inf outputs (``NonFiniteOutput``);
* :mod:`pcl.inference.loading`: building a network and strictly loading its checkpoint.
"""

from __future__ import annotations

from pcl.inference.forward import (
    CHOP_MIN_SIZE,
    CHOP_SHAVE,
    Forward,
    forward_chop,
    forward_self_ensemble,
    forward_tiled,
)
from pcl.inference.loading import SR_MODELS, LoadedModel, load_model
from pcl.inference.predictor import (
    SOURCE_ATTR,
    ModelPredictor,
    NonFiniteOutput,
    check_finite_output,
    device_name,
    image_to_tensor,
    tensor_to_image,
    write_sidecar,
)
from pcl.inference.settings import (
    DEFAULT_GLOBAL_OVERLAP,
    PRECISIONS,
    InferenceSettings,
    check_settings,
    is_stochastic,
    is_tile_invariant,
    receptive_field_radius,
    resolve_device,
)

__all__ = [
    "CHOP_MIN_SIZE",
    "CHOP_SHAVE",
    "DEFAULT_GLOBAL_OVERLAP",
    "PRECISIONS",
    "SOURCE_ATTR",
    "SR_MODELS",
    "Forward",
    "InferenceSettings",
    "LoadedModel",
    "ModelPredictor",
    "NonFiniteOutput",
    "check_finite_output",
    "check_settings",
    "device_name",
    "forward_chop",
    "forward_self_ensemble",
    "forward_tiled",
    "image_to_tensor",
    "is_stochastic",
    "is_tile_invariant",
    "load_model",
    "receptive_field_radius",
    "resolve_device",
    "tensor_to_image",
    "write_sidecar",
]
