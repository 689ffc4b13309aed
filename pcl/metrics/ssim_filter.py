"""The 11x11 SSIM Gaussian ('valid' part) as two banded float64 matrix products, and the
per-thread scratch buffers the strip scorer (:mod:`pcl.metrics.ssim_strips`) reuses.

Why banded matmuls: on CPU float64 convolution has no optimised kernel (0.36 s against 0.03 s
for four 1016x760 maps, one thread), and FFT filtering took 117 ms for the same maps against
about 7 ms here.  The window is separable (outer product of the normalised 1-D Gaussian), so
it is one pass along H and one along W, each a batch of small (b, b + 10) Toeplitz products.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from pcl.errors import PCLError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5

#: Output rows per banded block of pass 1 (along H) and output columns per block of pass 2
#: (along W).  Each output costs ``block + 10`` multiply-adds per pass (11 are non-zero):
#: smaller blocks waste less but make the GEMMs less efficient.  Measured on an AMD EPYC core
#: (MKL, float64, one 64-row strip of four 1024-px maps): pass 1 0.37 / 0.47 / 0.68 ms for
#: blocks 8 / 16 / 32; pass 2 1.08 / 0.94 / 0.57 / 1.05 / 0.77 ms for 8 / 16 / 24 / 32 / 48
#: (24 output columns are three 8-double vectors: MKL's kernel for that width runs at 31
#: GFLOP/s against 15 for 16).
ROW_BLOCK = 8
COLUMN_BLOCK = 24

HALO = SSIM_WINDOW - 1


def _gaussian_1d(device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian (11 taps, sigma 1.5); its outer product is the 2-D SSIM window."""
    k = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW // 2)
    g = torch.exp(-(k * k) / (2.0 * SSIM_SIGMA**2))
    return g / g.sum()


def _band(taps: torch.Tensor, block: int) -> torch.Tensor:
    """(block, block + 10) banded Toeplitz matrix: row i holds the taps in columns i..i+10.

    Multiplying it by ``block + 10`` consecutive samples gives ``block`` consecutive 'valid'
    correlation outputs, each the same 11-product sum as a direct filter.
    """
    t = taps.numel()
    cols = torch.arange(block, device=taps.device)[:, None] + torch.arange(t, device=taps.device)
    band = torch.zeros(block, block + t - 1, dtype=taps.dtype, device=taps.device)
    return band.scatter_(1, cols, taps.expand(block, t))


class _Workspace(threading.local):
    """Per-thread CPU scratch buffers, reused from call to call (grown, never shrunk).

    Why: on the 2-core VM every fresh multi-megabyte tensor is first touched through page faults
    (the kernel zero-fills each 4 kB page); the first version of this scorer spent about a third
    of its time in the kernel doing that (20 000 minor faults per image).  Strip buffers take
    about 10 MB per thread for a 1024-px-wide image (proportional to the width), so keeping
    them costs little.  CUDA tensors come from torch's caching allocator and are not kept.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, torch.Tensor] = {}
        self.bands: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.constants: dict[float | tuple[float, ...], torch.Tensor] = {}


_WORKSPACE = _Workspace()


def scratch(name: str, numel: int, device: torch.device) -> torch.Tensor:
    """A flat float64 buffer of ``numel`` elements (contents undefined)."""
    if device.type != "cpu":
        return torch.empty(numel, dtype=torch.float64, device=device)
    buf = _WORKSPACE.buffers.get(name)
    if buf is None or buf.numel() < numel:
        buf = _WORKSPACE.buffers[name] = torch.empty(numel, dtype=torch.float64)
    return buf[:numel]


def cached_const(value: float | tuple[float, ...], device: torch.device) -> torch.Tensor:
    """A float64 constant tensor (cached per thread on CPU: it is needed for every strip)."""
    if device.type != "cpu":
        return torch.tensor(value, dtype=torch.float64, device=device)
    t = _WORKSPACE.constants.get(value)
    if t is None:
        t = _WORKSPACE.constants[value] = torch.tensor(value, dtype=torch.float64)
    return t


def gaussian_bands(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(pass-1 band, (ROW_BLOCK, ROW_BLOCK + 10); pass-2 band transposed, (COLUMN_BLOCK + 10, COLUMN_BLOCK))."""
    key = (ROW_BLOCK, COLUMN_BLOCK)
    if device.type == "cpu" and key in _WORKSPACE.bands:
        return _WORKSPACE.bands[key]
    taps = _gaussian_1d(device)
    pair = (_band(taps, ROW_BLOCK), _band(taps, COLUMN_BLOCK).T)
    if device.type == "cpu":
        _WORKSPACE.bands[key] = pair
    return pair


def padded_width(width: int) -> int:
    """Row length of the filter buffers: ``width`` rounded up to whole column blocks."""
    return -(-width // COLUMN_BLOCK) * COLUMN_BLOCK


def filter_plan(
    buf: torch.Tensor, n_maps: int, n_blocks: int, row_len: int,
    pass1: torch.Tensor, out: torch.Tensor, bands: tuple[torch.Tensor, torch.Tensor],
) -> tuple[Callable[[], None], torch.Tensor]:
    """11x11 Gaussian ('valid') of ``n_maps`` interleaved maps, as two batched matmuls.

    Returns ``(run, result)``: ``run()`` filters whatever ``buf`` holds at the time into
    ``result`` (views are built once, the strips of an image reuse them).

    ``buf`` is a flat buffer laid out (rows, n_maps, row_len): row r of every map, then row r+1,
    i.e. one row-major matrix of ``n_maps * row_len`` columns (``row_len`` a multiple of
    ``bc`` = :data:`COLUMN_BLOCK`).  Its first ``n_blocks * b + 10`` rows must be finite (``b`` =
    :data:`ROW_BLOCK`), padding included.  ``result`` is ``out`` viewed as (n_maps, row_len // bc,
    n_blocks * b, bc); element [m, j, r, c] is the filtered map m at row ``r``, column
    ``j*bc + c``.  Outputs whose window reaches the padding (row >= rows - 10 or column >= width -
    10) are garbage, possibly inf or NaN after the SSIM arithmetic: callers read the valid part
    only.  ``pass1`` needs ``n_blocks * b * n_maps * row_len + 10`` elements.

    Pass 1 (along H): each block of b output rows is one (b, b+10) band @ (b+10, all columns)
    product over b+10 consecutive input rows, written row-major.  Pass 2 (along W): each block
    of bc output columns is one (all rows, bc+10) @ (bc+10, bc) band^T product; the windows
    overlap and are strided views of ``pass1`` (no copies).  The last window of each map row
    reads 10 values into the next map (or into the zeroed tail of ``pass1``), which only feeds
    the garbage columns.  Why this layout: every product has a long side (the columns in pass 1,
    the rows of the strip in pass 2) and contiguous rows.  The earlier layout (pass 1 written
    transposed, pass 2 as many 16x16 products) ran its GEMMs at 7 GFLOP/s per core on an AMD
    EPYC, 3.4x slower than this one with 16 x 16 blocks (measured per 64-row strip of four
    1024-px maps: 4.3 ms against 1.2 ms); the block sizes above take it to 0.9 ms.
    """
    b, bc = ROW_BLOCK, COLUMN_BLOCK
    band, band_t = bands
    width = n_maps * row_len
    rows = n_blocks * b
    windows1 = buf.as_strided((n_blocks, b + HALO, width), (b * width, width, 1))
    band1 = band.expand(n_blocks, b, b + HALO)
    used = rows * width
    out1 = pass1[:used].view(n_blocks, b, width)
    tail = pass1[used:used + HALO]
    n_cols = width // bc
    windows2 = pass1.as_strided((n_cols, rows, bc + HALO), (bc, width, 1))
    band2 = band_t.expand(n_cols, bc + HALO, bc)
    res = out[: n_cols * rows * bc]
    out2 = res.view(n_cols, rows, bc)

    def run() -> None:
        torch.bmm(band1, windows1, out=out1)
        tail.zero_()
        torch.bmm(windows2, band2, out=out2)

    return run, res.view(n_maps, row_len // bc, rows, bc)


def gaussian_filter_valid(z: torch.Tensor) -> torch.Tensor:
    """Filter (..., H, W) float64 maps with the 11x11 SSIM Gaussian; returns (..., H - 10, W - 10).

    The window is separable (outer product of the normalised 1-D Gaussian), so this equals a
    2-D correlation with MATLAB's ``fspecial('gaussian', 11, 1.5)`` keeping the 'valid' part.
    Same kernel (:func:`filter_plan`) as the scorer, on the whole map in one strip.
    """
    height, width = z.shape[-2:]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise PCLError(f"maps of {height}x{width} are smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} window")
    b = ROW_BLOCK
    maps = z.reshape(-1, height, width).to(torch.float64)
    n_maps = maps.shape[0]
    out_h, out_w = height - HALO, width - HALO
    n_blocks = -(-out_h // b)
    row_len = padded_width(width)
    buf = z.new_zeros((n_blocks * b + HALO, n_maps, row_len), dtype=torch.float64)
    buf[:height, :, :width] = maps.transpose(0, 1)
    width_all = n_maps * row_len
    pass1 = z.new_empty(n_blocks * width_all * b + HALO, dtype=torch.float64)
    out = z.new_empty(n_blocks * width_all * b, dtype=torch.float64)
    run, blocks = filter_plan(buf.view(-1), n_maps, n_blocks, row_len, pass1, out, gaussian_bands(z.device))
    run()
    # [m, j, r, c] -> [m, r, j, c] -> (maps, rows, columns)
    full = blocks.permute(0, 2, 1, 3).reshape(n_maps, n_blocks * b, row_len)
    return full[:, :out_h, :out_w].reshape(*z.shape[:-2], out_h, out_w)
