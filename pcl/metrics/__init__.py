"""Image-quality metrics for the harness.

``psnr_ssim`` is the vectorised torch implementation that every result row is scored with (two
protocols, spec §7); ``reference`` is an independent float64 numpy/scipy version used only by
tests and the benchmark to check it.
"""

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
    "PROTOCOLS",
    "check_protocol",
    "evaluate_pair",
    "min_size",
    "prepare_pair",
    "psnr_ssim_batch",
    "rgb_to_y",
]
