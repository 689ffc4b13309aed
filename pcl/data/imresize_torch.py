"""The torch path of :func:`pcl.data.imresize.imresize`: MATLAB's bicubic as banded matrix products.

The weights of :mod:`pcl.data.imresize_kernel` are folded into a dense ``out x in`` matrix per
axis and applied with matrix products, cut into row blocks so that the zero band of the matrix is
skipped on CPU; on a GPU each pass is one dense product. On CPU the blocks of a pass are shared
between single-threaded worker threads (:mod:`pcl.workers`), and a channels-last tensor (an HWC
numpy image viewed as NCHW) is resized without a layout copy of its input.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from pcl.data.imresize_kernel import _order, _plan, _uint8_levels_torch, weight_matrix
from pcl.errors import PCLError

#: output rows per matrix block in the torch CPU path, for scale >= 1 (fewer when shrinking, see
#: :func:`_cpu_block_rows`).  Why blocks: the folded matrix is banded (an output depends on
#: ~4/scale inputs), so multiplying the full ``out x in`` matrix wastes ~in/(4/scale) of the work.
#: Measured on 2040x1356x3, x1/4 then x4, 1-2 CPU threads (shared machine, best of 8): dense
#: product 0.2-0.25 s (float32) / 0.37-0.45 s (float64); blocks of 16-32 rows 20 ms / 61-74 ms;
#: 64 rows 20-23 ms / 76 ms; 8 rows 35 ms / 77-96 ms.
_CPU_BLOCK_ROWS = 32

#: torch threads of each CPU worker (and of the caller during the call).  Why one: each block is a
#: small product (tens of rows), so an OpenMP team costs more to wake than it saves, and when another
#: process or numpy's BLAS pool holds a core its spinning workers stall every block.  Measured in
#: one process on a 2-core Intel Xeon VM whose two cores were busy with a training run, 2040x1356x3
#: float32 x1/4: 0.32 s at two torch threads against 0.014 s at one (BasicSR's ``imresize``
#: alternating with it: 0.039-0.08 s).  The caller's thread setting is restored after the call.
_CPU_THREADS = 1

#: Worker threads that share the blocks of a pass on CPU (:func:`cpu_workers`); ``None``: one per
#: torch thread of the caller, at most 4.  Why threads of our own rather than torch's: see
#: :mod:`pcl.workers`; they use a second free core without spinning when it is not free.
_CPU_WORKERS: int | None = None


@functools.lru_cache(maxsize=64)
def _torch_blocks(in_len: int, out_len: int, scale: float, dtype: Any, device: str,
                  block_rows: int) -> tuple[tuple[int, tuple[int, int, Any]], ...]:
    """Row blocks ``(r0, (lo, hi, M[r0:r0 + rows, lo:hi]))`` of :func:`weight_matrix` as tensors on
    ``device``; ``r0`` is the block's first output row.

    ``lo:hi`` is the span of input samples with a non-zero weight for the block's rows, so each
    block's product touches only the band of the matrix.  One block covers all rows when
    ``block_rows >= out_len`` (plain dense matmul).
    """
    import torch

    matrix = weight_matrix(in_len, out_len, scale)
    blocks = []
    for r0 in range(0, out_len, block_rows):
        rows = matrix[r0:r0 + block_rows]
        nonzero = np.flatnonzero(np.any(rows != 0.0, axis=0))
        lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
        block = torch.from_numpy(np.ascontiguousarray(rows[:, lo:hi])).to(device=device, dtype=dtype)
        blocks.append((r0, (lo, hi, block)))
    return tuple(blocks)


def _cpu_block_rows(scale: float) -> int:
    """Output rows per block: ``_CPU_BLOCK_ROWS`` when enlarging, down to 8 when shrinking, so that a
    block spans a similar number of input rows (32 / scale + 4 / scale taps).  Measured at one thread,
    x1/4 of 2040x1356x3 float32 (loaded 2-core Intel Xeon, median of 7): 8 rows 4.2 ms, 16 rows
    8.2 ms, 32 rows 7.8 ms, 64 rows 10.4 ms; x4 back: 32 rows 5.5-6.3 ms, 64 and 128 rows 5.8-6.2 ms."""
    return int(min(_CPU_BLOCK_ROWS, max(8, round(_CPU_BLOCK_ROWS * scale))))


@contextlib.contextmanager
def _cpu_threads(device_type: str) -> Iterator[None]:
    """Run the block products on ``_CPU_THREADS`` torch threads (CPU only), then restore the caller's."""
    import torch

    before = torch.get_num_threads()
    if device_type != "cpu" or before == _CPU_THREADS:
        yield
        return
    torch.set_num_threads(_CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_workers(n_blocks: int) -> int:
    """Worker threads of the CPU path: ``_CPU_WORKERS``, else the caller's torch threads (at most
    4), never more than there are blocks."""
    import torch

    wanted = _CPU_WORKERS if _CPU_WORKERS is not None else min(torch.get_num_threads(), 4)
    return max(1, min(wanted, n_blocks))


def _resize_axis_torch(x: Any, axis: int, out_len: int, scale: float, workers: int = 1) -> Any:
    """Resize an ``(N, C, H, W)`` tensor along H (``axis=0``) or W (``axis=1``) with matmuls.

    Each row block of the weight matrix multiplies only its band of the input and writes
    straight into its slice of a preallocated output (no concatenation copy). On CPU with
    ``workers > 1`` contiguous runs of blocks go to single-threaded workers (:mod:`pcl.workers`);
    every block writes its own slice, so the result does not depend on the split.

    A CPU tensor in the channels-last layout (what ``torch.from_numpy(hwc).permute(2, 0, 1)[None]``
    gives) is resized without first copying it to NCHW: along H the (N, H, W*C) view is one
    product per block; along W the tensor is transposed to (N, H, C, W) first, the only layout in
    which the products are large, and the result is returned as a strided view of that memory.
    """
    n, c, h, w = (int(v) for v in x.shape)
    in_len = (h, w)[axis]
    block_rows = _cpu_block_rows(scale) if x.device.type == "cpu" else out_len  # GPUs: one dense product
    placed = _torch_blocks(in_len, out_len, scale, x.dtype, str(x.device), block_rows)
    channels_last = _channels_last(x)
    if channels_last and axis == 0:
        src = x.permute(0, 2, 3, 1).reshape(n, h, w * c)
        out = x.new_empty((n, out_len, w * c))
        _along_rows(src, out, placed, workers)
        return out.view(n, out_len, w, c).permute(0, 3, 1, 2)
    if channels_last:
        src = x.permute(0, 2, 1, 3).reshape(n * h * c, w)
        out = x.new_empty((n * h * c, out_len))
        _along_columns(src, out, placed, workers)
        return out.view(n, h, c, out_len).permute(0, 2, 1, 3)
    if axis == 0:
        out = x.new_empty((n * c, out_len, w))
        _along_rows(x.reshape(n * c, h, w), out, placed, workers)
        return out.reshape(n, c, out_len, w)
    out = x.new_empty((n * c * h, out_len))
    _along_columns(x.reshape(n * c * h, w), out, placed, workers)
    return out.reshape(n, c, h, out_len)


def _channels_last(x: Any) -> bool:
    """A CPU tensor laid out (N, H, W, C) in memory and not also plain NCHW-contiguous."""
    import torch

    return x.device.type == "cpu" and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _split(run: Any, placed: tuple, workers: int) -> None:
    if workers > 1:
        from pcl.workers import split_run

        split_run("imresize", workers, run, placed)
    else:
        run(placed)


def _along_rows(src: Any, out: Any, placed: tuple, workers: int) -> None:
    """``out[:, rows] = M[rows] @ src[:, band]`` per block; src (B, in, K), out (B, out, K)."""
    import torch

    def run(share: Any) -> None:
        for r0, (lo, hi, m) in share:
            torch.matmul(m, src[:, lo:hi, :], out=out[:, r0:r0 + m.shape[0], :])

    _split(run, placed, workers)


def _along_columns(src: Any, out: Any, placed: tuple, workers: int) -> None:
    """``out[:, cols] = src[:, band] @ M[cols]^T`` per block; src (R, in), out (R, out)."""
    import torch

    def run(share: Any) -> None:
        for r0, (lo, hi, m) in share:
            torch.mm(src[:, lo:hi], m.T, out=out[:, r0:r0 + m.shape[0]])

    _split(run, placed, workers)


def _imresize_torch(img: Any, scale: float | None, output_shape: tuple[int, int] | None,
                    round_between_passes: bool) -> Any:
    import torch

    if img.ndim != 4:
        raise PCLError(f"imresize expects a torch tensor of shape (N, C, H, W), got shape {tuple(img.shape)}")
    if img.numel() == 0:
        raise PCLError(f"imresize got an empty tensor of shape {tuple(img.shape)}")
    is_uint8 = img.dtype == torch.uint8
    if is_uint8:
        work = torch.float64  # as exact as the numpy path; values are re-quantised per pass
    elif img.dtype in (torch.float32, torch.float64):
        work = img.dtype
    elif img.dtype in (torch.float16, torch.bfloat16):
        work = torch.float32
    else:
        raise PCLError(f"imresize supports uint8 and float tensors, got dtype {img.dtype}; convert it first")
    out_hw, scales = _plan((int(img.shape[2]), int(img.shape[3])), scale, output_shape)
    x = img.to(work)
    on_cpu = x.device.type == "cpu"
    # Decided from the caller's torch threads, before _cpu_threads sets them to one for the call.
    workers = [cpu_workers(-(-out_hw[a] // _cpu_block_rows(scales[a]))) if on_cpu else 1 for a in (0, 1)]
    with _cpu_threads(x.device.type):
        for step, axis in enumerate(_order(scales)):
            x = _resize_axis_torch(x, axis, out_hw[axis], scales[axis], workers[axis])
            if is_uint8 and (round_between_passes or step == 1):
                x = _uint8_levels_torch(x)
    return x.to(img.dtype)
