"""Reading, converting, strictly loading and writing model checkpoints: one import for all four.

Why so strict: the official loaders are non-strict, so a checkpoint with wrong keys silently
half-loads and evaluates as a randomly initialised network (docs/backbones.md §9).  Here every load
is strict, and a mismatch is reported in one line that lists the missing, unexpected and
wrong-shape keys and names the paper architecture that fits the file best.

Why ``weights_only``: checkpoints come from the internet; unpickling arbitrary objects executes
code.  Every ``.pt``/``.pth`` file is read with ``torch.load(..., weights_only=True)`` and a file
that needs more is refused.  The harness's own checkpoints are safetensors plus a JSON sidecar
(architecture, config, provenance, sha256), so a saved model can be rebuilt without pickle.

Where each part lives:

* :mod:`pcl.models.state_dict_files`: safe reading of ``.pt``/``.pth``/``.safetensors`` files and
  unwrapping to a bare state_dict;
* :mod:`pcl.models.basicsr_keys`: BasicSR EDSR/RCAN key conversion;
* :mod:`pcl.models.strict_loading`: strict loading with the mismatch diagnosis;
* :mod:`pcl.models.harness_checkpoint`: the safetensors + sidecar format.
"""

from __future__ import annotations

from pcl.models.basicsr_keys import from_basicsr, is_basicsr_format, normalise_state_dict, to_basicsr
from pcl.models.harness_checkpoint import load_checkpoint, save_checkpoint, sidecar_path
from pcl.models.state_dict_files import WRAPPER_KEYS, PathLike, load_state_dict_file, unwrap_state_dict
from pcl.models.strict_loading import best_fitting_arch, infer_scale, load_into

__all__ = [
    "WRAPPER_KEYS",
    "PathLike",
    "best_fitting_arch",
    "from_basicsr",
    "infer_scale",
    "is_basicsr_format",
    "load_checkpoint",
    "load_into",
    "load_state_dict_file",
    "normalise_state_dict",
    "save_checkpoint",
    "sidecar_path",
    "to_basicsr",
    "unwrap_state_dict",
]
