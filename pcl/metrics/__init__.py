"""Image-quality metrics for the harness.

``psnr_ssim`` is the vectorised torch implementation that every result row is scored with (two
protocols, docs/protocols.md); ``reference`` is an independent float64 numpy/scipy version used
only by tests and the benchmark to check it.  ``niqe`` is the official MATLAB NIQE, ``perceptual``
LPIPS, ``suite`` the set of metrics a row or ``pcl score`` computes (docs/metrics.md).
"""

from pcl.metrics.niqe import NIQE_CONVENTIONS, NIQE_MIN_SIZE, niqe, niqe_batch
from pcl.metrics.psnr_ssim import (
    PROTOCOLS,
    check_protocol,
    evaluate_pair,
    min_size,
    prepare_pair,
    psnr_ssim_batch,
    rgb_to_y,
)

__all__ = [
    "NIQE_CONVENTIONS",
    "NIQE_MIN_SIZE",
    "niqe",
    "niqe_batch",
    "PROTOCOLS",
    "check_protocol",
    "evaluate_pair",
    "min_size",
    "prepare_pair",
    "psnr_ssim_batch",
    "rgb_to_y",
]
