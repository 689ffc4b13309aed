"""Tests of the MATLAB-exact bicubic imresize (pcl.data.imresize).

There is no MATLAB here, so the expected numbers are derived by hand from MATLAB's rules
(``imresize.m``: Keys cubic a = -0.5, antialiased kernel ``s*cubic(s*x)`` of width 4/s when
shrinking, ``u = x/s + 0.5*(1 - 1/s)``, ``left = floor(u - width/2)``, ``P = ceil(width) + 2``
taps, weights normalised, indices mirrored with ``aux = [1:n, n:-1:1]``).  All hand weights below
are dyadic rationals, so float64 reproduces them exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pcl.data.imresize import (
    bicubic_degrade,
    bicubic_upscale,
    contributions,
    cubic,
    imresize,
    weight_matrix,
)
from pcl.errors import PCLError

torch.set_num_threads(1)


def _nchw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy()


def _round_u8(x: np.ndarray) -> np.ndarray:
    """MATLAB's double -> uint8: saturate, round half away from zero."""
    return np.floor(np.clip(x, 0, 255) + 0.5)


# --------------------------------------------------------------------------- kernel and weights


def test_cubic_kernel_values():
    # Keys a = -0.5: |x|<=1: 1.5|x|^3 - 2.5|x|^2 + 1 ; 1<|x|<=2: -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2
    # x=0.5: 0.1875 - 0.625 + 1 = 0.5625 ; x=1.5: -1.6875 + 5.625 - 6 + 2 = -0.0625
    x = np.array([0.0, 0.5, -0.5, 1.0, 1.5, -1.5, 2.0, 2.5, -3.0])
    expected = [1.0, 0.5625, 0.5625, 0.0, -0.0625, -0.0625, 0.0, 0.0, 0.0]
    np.testing.assert_array_equal(cubic(x), expected)


# Downscale a length-8 signal by 1/4 (out = ceil(8/4) = 2).  Width 4/0.25 = 16, P = 18 taps,
# u = 4x - 1.5 -> u(1) = 2.5, u(2) = 6.5; left(1) = floor(2.5 - 8) = -6.  Taps j = -6..11 have
# offsets d = u - j = 8.5 .. -8.5; h(d) = cubic(d/4)/4 is zero for |d| >= 8, so taps -6 and 11
# (the first and last column, zero for both outputs) are dropped: 16 taps remain.
# cubic(t)/4 at t = d/4 for |d| = 0.5, 1.5, ..., 7.5:
#   0.240966796875, 0.181884765625, 0.097412109375, 0.022705078125,
#  -0.011962890625, -0.018310546875, -0.010986328125, -0.001708984375   (they sum to 1/2,
# so the normalisation divides by exactly 1).  Mirroring: j = 0,-1,...,-5 -> 1,2,...,6 and
# j = 9, 10 -> 8, 7.  Summing the weights that land on each input sample (output 1):
#   s1: j=1 (d=1.5) + j=0 (2.5)   = 0.181884765625 + 0.097412109375  =  0.279296875 = 286/1024
#   s2: j=2 (0.5)   + j=-1 (3.5)  = 0.240966796875 + 0.022705078125  =  0.263671875 = 270/1024
#   s3: j=3 (0.5)   + j=-2 (4.5)  = 0.240966796875 - 0.011962890625  =  0.22900390625 = 234.5/1024
#   s4: j=4 (1.5)   + j=-3 (5.5)  = 0.181884765625 - 0.018310546875  =  0.16357421875 = 167.5/1024
#   s5: j=5 (2.5)   + j=-4 (6.5)  = 0.097412109375 - 0.010986328125  =  0.08642578125 = 88.5/1024
#   s6: j=6 (3.5)   + j=-5 (7.5)  = 0.022705078125 - 0.001708984375  =  0.02099609375 = 21.5/1024
#   s7: j=7 (4.5)   + j=10 (7.5)  = -0.011962890625 - 0.001708984375 = -0.013671875 = -14/1024
#   s8: j=8 (5.5)   + j=9 (6.5)   = -0.018310546875 - 0.010986328125 = -0.029296875 = -30/1024
# Output 2 (u = 6.5 = 9 - 2.5) is the mirror image of output 1.
DOWN4_ROW1 = np.array([286.0, 270.0, 234.5, 167.5, 88.5, 21.5, -14.0, -30.0]) / 1024


def test_contributions_downscale_by_4_hand_derived():
    weights, indices = contributions(8, 2, 0.25)
    assert weights.shape == indices.shape == (2, 16)  # 18 taps minus the two all-zero columns
    # output 1 taps j = -5..10 (1-based), mirrored and made 0-based (see the derivation above)
    np.testing.assert_array_equal(indices[0], [5, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 7, 6])
    matrix = weight_matrix(8, 2, 0.25)
    np.testing.assert_allclose(matrix[0], DOWN4_ROW1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(matrix[1], DOWN4_ROW1[::-1], rtol=0, atol=1e-15)


def test_imresize_downscale_impulses_match_hand_weights():
    # The response to the unit impulse at sample k is column k of the weight matrix.  The single
    # column (width 1 -> ceil(0.25) = 1) is an identity resize: all taps mirror onto it.
    got = np.stack([imresize(np.eye(8)[:, k:k + 1], 0.25)[:, 0] for k in range(8)], axis=1)
    np.testing.assert_allclose(got, np.stack([DOWN4_ROW1, DOWN4_ROW1[::-1]]), rtol=0, atol=1e-15)


# Upscale a length-8 signal by 4 (out = 32).  No antialiasing, width 4, P = 6 taps,
# u = x/4 + 0.375, left = floor(u - 2).  cubic at the offsets that occur:
#   cubic(0.125) = 0.9638671875  cubic(0.375) = 0.7275390625  cubic(0.625) = 0.3896484375
#   cubic(0.875) = 0.0908203125  cubic(1.125) = -0.0478515625 cubic(1.375) = -0.0732421875
#   cubic(1.625) = -0.0439453125 cubic(1.875) = -0.0068359375 (each output's four sum to 1)
# x=1: u=0.625, taps j=-2..3, d=2.625,1.625,0.625,-0.375,-1.375,-2.375; j=-1 -> 2, j=0 -> 1:
#   s1 = cubic(.625)+cubic(.375) = 1.1171875 ; s2 = cubic(1.625)+cubic(1.375) = -0.1171875
# x=2: u=0.875, d=2.875,1.875,0.875,-0.125,-1.125,-2.125:
#   s1 = cubic(.875)+cubic(.125) = 1.0546875 ; s2 = cubic(1.875)+cubic(1.125) = -0.0546875
# x=16: u=4.375, taps j=2..7, d=2.375,1.375,0.375,-0.625,-1.625,-2.625 (interior, no mirroring):
#   s3 = -0.0732421875, s4 = 0.7275390625, s5 = 0.3896484375, s6 = -0.0439453125
# x=17: u=4.625: s3 = -0.0439453125, s4 = 0.3896484375, s5 = 0.7275390625, s6 = -0.0732421875
# x=32: u=8.375, taps j=6..11; j=9 -> 8, j=10 -> 7: mirror image of x=1.
UP4_ROWS = {
    0: [1.1171875, -0.1171875, 0, 0, 0, 0, 0, 0],
    1: [1.0546875, -0.0546875, 0, 0, 0, 0, 0, 0],
    15: [0, 0, -0.0732421875, 0.7275390625, 0.3896484375, -0.0439453125, 0, 0],
    16: [0, 0, -0.0439453125, 0.3896484375, 0.7275390625, -0.0732421875, 0, 0],
    31: [0, 0, 0, 0, 0, 0, -0.1171875, 1.1171875],
}


def test_contributions_upscale_by_4_hand_derived():
    weights, _ = contributions(8, 32, 4.0)
    # the first tap (d in (2, 3]) and the last (d in (-3, -2]) are zero for every output
    assert weights.shape == (32, 4)
    matrix = weight_matrix(8, 32, 4.0)
    for row, expected in UP4_ROWS.items():
        np.testing.assert_allclose(matrix[row], expected, rtol=0, atol=1e-15, err_msg=f"output {row + 1}")


def test_imresize_upscale_signal_matches_hand_weights():
    signal = np.array([0.1, 0.9, 0.3, 0.5, 0.7, 0.2, 0.8, 0.4])
    out = imresize(signal[:, None], 4.0, output_shape=(32, 1))[:, 0]
    for row, expected in UP4_ROWS.items():
        assert out[row] == pytest.approx(float(np.dot(expected, signal)), abs=1e-15)


def test_weights_are_cached_and_read_only():
    first = contributions(8, 2, 0.25)
    assert contributions(8, 2, 0.25) is first  # lru_cache keyed by (in_len, out_len, scale)
    with pytest.raises(ValueError):
        first[0][0, 0] = 1.0


# --------------------------------------------------------------------------- exactness properties


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.7, 2.0, 3.0, 4.0])
def test_constant_image_stays_constant(scale):
    # weights sum to 1 and mirrored taps stay inside the image, so a constant is reproduced
    img = np.full((19, 14, 3), 0.37)
    np.testing.assert_allclose(imresize(img, scale), 0.37, rtol=0, atol=1e-12)
    img8 = np.full((19, 14), 200, dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img8, scale), 200)


def test_x4_reproduces_linear_ramp_in_interior():
    # Keys' cubic (a = -0.5) reproduces polynomials up to degree 2 away from the borders, so the
    # x4 result of f(i, j) = 0.3 + 0.01 i + 0.02 j (1-based) is f(u_r, u_c) with u = x/4 + 0.375.
    # Interior: all four non-zero taps in range, i.e. 2 <= u < n - 1 -> x in 7 .. 4n - 6.
    rows, cols = 40, 30
    i, j = np.meshgrid(np.arange(1, rows + 1), np.arange(1, cols + 1), indexing="ij")
    out = imresize(0.3 + 0.01 * i + 0.02 * j, 4.0)
    assert out.shape == (160, 120)
    xr = np.arange(7, 4 * rows - 6 + 1)
    xc = np.arange(7, 4 * cols - 6 + 1)
    expected = 0.3 + 0.01 * (xr[:, None] / 4 + 0.375) + 0.02 * (xc[None, :] / 4 + 0.375)
    np.testing.assert_allclose(out[xr[0] - 1:xr[-1], xc[0] - 1:xc[-1]], expected, rtol=0, atol=1e-12)
    # near the border the mirrored (non-linear) extension must show: output 1 is not 0.3+...
    assert abs(out[0, 60] - (0.3 + 0.01 * 0.625 + 0.02 * (61 / 4 + 0.375))) > 1e-4


def test_div4_reproduces_linear_ramp_in_interior():
    # For 1/4, u = 4x - 1.5 is a half-integer and the 16 taps lie symmetrically about it, so a
    # linear signal is reproduced where u - 7.5 >= 1 and u + 7.5 <= n: x in 3 .. (n - 6)/4.
    n = 40
    ramp = 0.5 + 0.01 * np.arange(1, n + 1)
    out = imresize(ramp[:, None], 0.25)[:, 0]
    x = np.arange(3, (n - 6) // 4 + 1)
    np.testing.assert_allclose(out[x - 1], 0.5 + 0.01 * (4 * x - 1.5), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "scale", "expected"),
    [
        ((2040, 1356), 0.25, (510, 339)),  # DIV2K-sized HR -> x4 LR
        ((255, 171), 1 / 3, (85, 57)),     # ceil(255 * (1/3)) = 85 in float64, as in MATLAB
        ((7, 5), 0.5, (4, 3)),             # ceil(3.5) = 4, ceil(2.5) = 3
        ((7, 5), 4.0, (28, 20)),
        ((10, 9), 0.7, (7, 7)),            # ceil(7.0) = 7, ceil(6.3) = 7
    ],
)
def test_output_shapes(shape, scale, expected):
    assert imresize(np.zeros(shape, dtype=np.float32), scale).shape == expected
    t = torch.zeros((1, 1) + shape, dtype=torch.float32)
    assert tuple(imresize(t, scale).shape) == (1, 1) + expected


def test_output_shape_argument():
    img = np.random.default_rng(1).random((20, 16))
    assert imresize(img, output_shape=(7, 33)).shape == (7, 33)
    assert imresize(img[..., None], 0.5, output_shape=(11, 9)).shape == (11, 9, 1)


@pytest.mark.parametrize("scale", [0.25, 3.0])
def test_2d_resize_equals_two_1d_resizes(scale):
    # weight_matrix itself is pinned by the hand-derived MATLAB weights of the tests above; this
    # checks the 2-D path (pass order, mirrored borders, blocks) against that separable form.
    img = np.random.default_rng(2).random((17, 23))
    oh, ow = math.ceil(17 * scale), math.ceil(23 * scale)
    expected = weight_matrix(17, oh, scale) @ img @ weight_matrix(23, ow, scale).T
    np.testing.assert_allclose(imresize(img, scale), expected, rtol=0, atol=1e-13)


def test_output_shape_without_scale_uses_per_dimension_scales():
    # imresize(A, [rows cols]): scale_k = out_k / in_k for each dimension separately
    img = np.random.default_rng(3).random((12, 10))
    expected = weight_matrix(12, 5, 5 / 12) @ img @ weight_matrix(10, 25, 25 / 10).T
    np.testing.assert_allclose(imresize(img, output_shape=(5, 25)), expected, rtol=0, atol=1e-13)


def test_float_results_are_not_clipped_or_rounded():
    step = np.zeros((8, 8), dtype=np.float32)
    step[:, 4:] = 1.0
    out = imresize(step, 4.0)
    assert out.dtype == np.float32
    # the cubic overshoots on both sides of an edge: -0.0732421875 - 0.0439453125 = -0.1171875 ...
    assert out.min() < -0.05 and out.max() > 1.05


# --------------------------------------------------------------------------- uint8 semantics


def _two_pass_uint8(img: np.ndarray, scale_rc: tuple[float, float], out_rc: tuple[int, int],
                    rows_first: bool, round_between: bool = True) -> np.ndarray:
    mh = weight_matrix(img.shape[0], out_rc[0], scale_rc[0])
    mw = weight_matrix(img.shape[1], out_rc[1], scale_rc[1])
    x = img.astype(np.float64)
    first, second = ((lambda a: mh @ a), (lambda a: a @ mw.T))[:: 1 if rows_first else -1]
    x = first(x)
    if round_between:
        x = _round_u8(x)
    return _round_u8(second(x)).astype(np.uint8)


def test_uint8_rounds_after_each_pass_like_matlab():
    # MATLAB keeps the class after each 1-D pass (imresizemex returns uint8 for uint8 input).
    img = np.random.default_rng(4).integers(0, 256, (21, 18), dtype=np.uint8)
    got = imresize(img, 0.25)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, _two_pass_uint8(img, (0.25, 0.25), (6, 5), rows_first=True))
    # the keyword switches to one rounding at the end, and the two really differ here
    single = imresize(img, 0.25, round_between_passes=False)
    np.testing.assert_array_equal(single, _two_pass_uint8(img, (0.25, 0.25), (6, 5), True, False))
    assert np.any(single != got)


def test_smaller_scale_dimension_is_resized_first():
    # output 30x6 from 15x12: scale rows 2.0, columns 0.5 -> columns first (MATLAB dimensionOrder)
    img = np.random.default_rng(5).integers(0, 256, (15, 12), dtype=np.uint8)
    got = imresize(img, output_shape=(30, 6))
    cols_first = _two_pass_uint8(img, (2.0, 0.5), (30, 6), rows_first=False)
    rows_first = _two_pass_uint8(img, (2.0, 0.5), (30, 6), rows_first=True)
    assert np.any(cols_first != rows_first)  # the order is observable on this image
    np.testing.assert_array_equal(got, cols_first)
    # and the torch path follows the same order
    got_t = imresize(torch.from_numpy(img)[None, None], output_shape=(30, 6))[0, 0].numpy()
    np.testing.assert_array_equal(got_t, cols_first)


# --------------------------------------------------------------------------- numpy vs torch


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.6, 2.0, 4.0])
def test_numpy_and_torch_paths_agree(scale):
    rng = np.random.default_rng(6)
    imgs = rng.random((2, 37, 29, 3))
    batch = torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)))
    out64 = imresize(batch, scale)
    out32 = imresize(batch.float(), scale)
    assert out64.dtype == torch.float64 and out32.dtype == torch.float32
    for n in range(2):
        ref = imresize(imgs[n], scale)
        np.testing.assert_allclose(out64[n].permute(1, 2, 0).numpy(), ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(out32[n].permute(1, 2, 0).numpy(), ref, rtol=0, atol=1e-5)
        ref32 = imresize(imgs[n].astype(np.float32), scale)
        assert ref32.dtype == np.float32


def test_numpy_and_torch_uint8_identical():
    img = np.random.default_rng(7).integers(0, 256, (40, 33, 3), dtype=np.uint8)
    for scale in (0.25, 4.0):
        t = imresize(_nchw(img), scale)
        assert t.dtype == torch.uint8
        np.testing.assert_array_equal(_hwc(t), imresize(img, scale))


def test_torch_tall_image_spans_several_blocks():
    # > 64 output rows exercises the banded block product of the CPU path
    img = np.random.default_rng(8).random((300, 20, 1))
    for scale in (0.25, 4.0):
        np.testing.assert_allclose(_hwc(imresize(_nchw(img), scale)), imresize(img, scale), rtol=0, atol=1e-12)


def test_torch_accepts_non_contiguous_and_half_input():
    img = np.random.default_rng(10).random((24, 20, 3))
    view = torch.from_numpy(img).permute(2, 0, 1)[None]  # a strided view, not contiguous
    assert not view.is_contiguous()
    np.testing.assert_allclose(_hwc(imresize(view, 0.5)), imresize(img, 0.5), rtol=0, atol=1e-12)
    half = imresize(view.half(), 0.5)  # computed in float32, returned as float16
    assert half.dtype == torch.float16
    np.testing.assert_allclose(_hwc(half.double()), imresize(img, 0.5), rtol=0, atol=2e-3)


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 4.0])
def test_independent_bench_port_agrees(scale):
    # the benchmark's reference port computes its own weights and gathers; same MATLAB rules
    from pcl.bench.imresize_bench import numpy_port_imresize

    img = np.random.default_rng(11).random((31, 27, 3))
    np.testing.assert_allclose(numpy_port_imresize(img, scale), imresize(img, scale), rtol=0, atol=1e-12)


def test_bench_run_writes_csv_and_png(tmp_path, monkeypatch):
    import pandas as pd

    from pcl.bench import imresize_bench

    monkeypatch.setattr(imresize_bench, "IMAGE_SHAPE", (64, 48, 3))  # tiny image: files, not speed
    figures = imresize_bench.run(tmp_path, repeats=1)
    table = pd.read_csv(tmp_path / "imresize.csv")
    assert list(table["implementation"]) == ["numpy port", "pcl numpy", "pcl torch (cpu)", "pcl torch (cpu)"]
    assert {"processor", "torch_threads", "torch_version", "cuda_device"} <= set(table.columns)
    assert (tmp_path / "imresize.png").stat().st_size > 0
    assert figures["max_abs_diff_float64"] < 1e-12 and figures["max_abs_diff_float32"] < 1e-5
    assert figures["speedup_float32"] > 0


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("img", "kwargs"),
    [
        (np.zeros(5), {"scale": 2.0}),                            # 1-D
        (np.zeros((2, 3, 4, 5)), {"scale": 2.0}),                 # 4-D numpy
        (torch.zeros(3, 4, 5), {"scale": 2.0}),                   # 3-D torch
        (np.zeros((0, 4)), {"scale": 2.0}),                       # empty
        (torch.zeros(1, 1, 0, 4), {"scale": 2.0}),                # empty torch
        (np.zeros((4, 4)), {"scale": 0.0}),
        (np.zeros((4, 4)), {"scale": -1.0}),
        (np.zeros((4, 4)), {"scale": float("nan")}),
        (np.zeros((4, 4)), {"scale": None}),                      # neither scale nor shape
        (np.zeros((4, 4)), {"output_shape": (0, 3)}),
        (np.zeros((4, 4)), {"output_shape": (3,)}),
        (np.zeros((4, 4), dtype=np.int32), {"scale": 2.0}),       # unsupported dtype
        ([[0.0, 1.0]], {"scale": 2.0}),                           # not an array
    ],
)
def test_bad_input_raises_pclerror(img, kwargs):
    with pytest.raises(PCLError):
        imresize(img, **kwargs)


# --------------------------------------------------------------------------- helpers


def test_bicubic_degrade_mod_crops_then_shrinks():
    hr = np.random.default_rng(9).integers(0, 256, (50, 37, 3), dtype=np.uint8)
    lr = bicubic_degrade(hr, 4)
    # 50x37 is cropped to 48x36 (multiples of 4), then 1/4 -> 12x9
    assert lr.shape == (12, 9, 3) and lr.dtype == np.uint8
    np.testing.assert_array_equal(lr, imresize(hr[:48, :36], 0.25))
    gray = bicubic_degrade(hr[..., 0], 3)  # 48x36 -> 16x12
    assert gray.shape == (16, 12)


def test_bicubic_upscale_shape_and_constant():
    lr = np.full((9, 7, 3), 77, dtype=np.uint8)
    sr = bicubic_upscale(lr, 4)
    assert sr.shape == (36, 28, 3) and sr.dtype == np.uint8
    np.testing.assert_array_equal(sr, 77)


@pytest.mark.parametrize(
    ("func", "img", "scale"),
    [
        (bicubic_degrade, np.zeros((8, 8), dtype=np.float32), 4),  # not uint8
        (bicubic_degrade, np.zeros((8, 8), dtype=np.uint8), 0),
        (bicubic_degrade, np.zeros((8, 8), dtype=np.uint8), 2.5),
        (bicubic_degrade, np.zeros((3, 8), dtype=np.uint8), 4),    # crops to nothing
        (bicubic_upscale, np.zeros((2, 2, 2, 2), dtype=np.uint8), 2),
    ],
)
def test_helpers_reject_bad_input(func, img, scale):
    with pytest.raises(PCLError):
        func(img, scale)


def test_cpu_path_runs_single_threaded_and_restores_the_callers_threads(monkeypatch):
    # pcl.data.imresize_torch._CPU_THREADS: every share of block products (in the caller or in a
    # worker, pcl.workers) runs on one torch thread; the caller's setting (here 2) is back after
    # the call, and the result still matches the numpy path.
    import torch

    from pcl.data import imresize_torch as module

    seen = []
    real = module._split
    monkeypatch.setattr(module, "_split", lambda run, placed, workers: real(
        lambda share: (seen.append(torch.get_num_threads()), run(share)), placed, workers))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        img = np.random.default_rng(3).random((137, 153, 3))
        out = imresize(torch.from_numpy(img.transpose(2, 0, 1)[None].copy()), 0.25)
        assert torch.get_num_threads() == 2 and len(seen) >= 4 and set(seen) == {module._CPU_THREADS}
    finally:
        torch.set_num_threads(before)
    ref = imresize(img, 0.25)  # the numpy path, MATLAB's gather-and-sum
    assert np.abs(out[0].permute(1, 2, 0).numpy() - ref).max() < 1e-12


@pytest.mark.parametrize("scale", [0.25, 0.5, 3.0])
@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8"])
def test_channels_last_and_worker_count_do_not_change_the_result(monkeypatch, scale, dtype):
    # An HWC numpy image viewed as NCHW (channels-last strides) is resized without a layout copy,
    # and the blocks of a pass may be shared by 1 or 3 workers: every variant must give the
    # plain NCHW, one-worker result bit for bit (each block writes its own slice with the same
    # product), and that result must match the numpy path (float64 gather-and-sum, MATLAB's
    # loop): within float32 rounding, 1e-12 in float64, exactly on uint8.
    import torch

    from pcl.data import imresize_torch as module

    rng = np.random.default_rng(11)
    img = (rng.random((70, 91, 3)) * 255).astype(dtype)
    nchw = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))[None])
    channels_last = torch.from_numpy(img).permute(2, 0, 1)[None]
    assert channels_last.is_contiguous(memory_format=torch.channels_last) and not channels_last.is_contiguous()
    results = []
    for workers in (1, 3):
        monkeypatch.setattr(module, "_CPU_WORKERS", workers)
        results += [imresize(nchw, scale), imresize(channels_last, scale)]
    for other in results[1:]:
        assert torch.equal(other, results[0])
    ref = imresize(img, scale)
    tol = {"float32": 1e-4, "float64": 1e-12, "uint8": 0}[dtype]
    assert np.abs(results[1][0].permute(1, 2, 0).numpy().astype(np.float64) - ref).max() <= tol


@pytest.mark.parametrize("scale, rows", [(0.25, 8), (0.5, 16), (1.0, 32), (4.0, 32)])
def test_cpu_block_rows_follow_the_input_span(scale, rows):
    # _cpu_block_rows: a block spans about 32 / scale input rows, between 8 and 32 output rows
    from pcl.data.imresize_torch import _cpu_block_rows

    assert _cpu_block_rows(scale) == rows


def test_load_bench_without_basicsr_says_so(monkeypatch):
    import importlib.util

    from pcl.bench import imresize_load_bench

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    fn, why = imresize_load_bench.load_basicsr_imresize()
    assert fn is None and "pip install --no-deps basicsr==1.4.2" in why
