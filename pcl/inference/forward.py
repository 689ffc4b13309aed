"""Forward wrappers that change how a network sees an image: tiles, chop, x8 self-ensemble.

Tiling.  ``tile`` LR pixels per tile, each tile run with ``tile_overlap`` pixels of context on
every side that the image has, and only the tile's own (centre) region kept.  For a purely local
network (EDSR) whose receptive-field radius is at most the overlap, the stitched image equals the
whole-image forward (``receptive_field_radius``; exactly, bit for bit, with PyTorch's native
convolution; oneDNN picks size-dependent algorithms that differ by float rounding, ~1e-5 on the
0..255 scale).  Chop and the self-ensemble reproduce the official test loops.

Each wrapper takes and returns tensors on the model's value scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

#: The official ``forward_chop`` constants (EDSR-PyTorch src/model/__init__.py).
CHOP_SHAVE = 10
CHOP_MIN_SIZE = 160_000

Forward = Callable[[Tensor], Tensor]


def _splits(length: int, tile: int) -> list[tuple[int, int]]:
    """Near-equal tiles of at most ``tile`` pixels covering [0, length) (no sliver at the end)."""
    count = max(1, math.ceil(length / tile))
    bounds = [round(i * length / count) for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(count)]


def forward_tiled(forward: Forward, x: Tensor, *, scale: int, tile: int, overlap: int) -> Tensor:
    """Run ``forward`` on overlapping LR tiles and keep each tile's own region of the output.

    Each tile [y0, y1) x [x0, x1) is cropped with ``overlap`` extra pixels on every side that
    exists; the output rows/columns of the tile proper are copied, so every output pixel comes from
    exactly one tile (no blending).
    """
    _, _, height, width = x.shape
    out: Tensor | None = None
    for y0, y1 in _splits(height, tile):
        for x0, x1 in _splits(width, tile):
            cy0, cy1 = max(0, y0 - overlap), min(height, y1 + overlap)
            cx0, cx1 = max(0, x0 - overlap), min(width, x1 + overlap)
            part = forward(x[:, :, cy0:cy1, cx0:cx1])
            if out is None:
                out = part.new_empty(part.shape[0], part.shape[1], height * scale, width * scale)
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] = part[
                :, :, (y0 - cy0) * scale : (y1 - cy0) * scale, (x0 - cx0) * scale : (x1 - cx0) * scale
            ]
    assert out is not None
    return out


def forward_chop(
    forward: Forward, x: Tensor, *, scale: int, shave: int = CHOP_SHAVE, min_size: int = CHOP_MIN_SIZE
) -> Tensor:
    """The EDSR-PyTorch ``forward_chop`` (one GPU): four overlapping quadrants, recursively.

    Quadrants are half the LR size plus ``shave`` pixels; they are split again while the image has
    at least ``4 * min_size`` LR pixels.  The RCAN, HAN and NLSN authors evaluate with it
    (docs/backbones.md §1.5), so it is offered to reproduce their images, not for exactness.
    """
    height, width = x.shape[-2:]
    top, bottom = slice(0, height // 2 + shave), slice(height - height // 2 - shave, height)
    left, right = slice(0, width // 2 + shave), slice(width - width // 2 - shave, width)
    parts = [x[..., top, left], x[..., top, right], x[..., bottom, left], x[..., bottom, right]]
    if height * width < 4 * min_size:
        outs = [forward(p) for p in parts]
    else:
        outs = [forward_chop(forward, p, scale=scale, shave=shave, min_size=min_size) for p in parts]
    big_h, big_w = height * scale, width * scale
    top, bottom, bottom_r = slice(0, big_h // 2), slice(big_h - big_h // 2, big_h), slice(big_h // 2 - big_h, None)
    left, right, right_r = slice(0, big_w // 2), slice(big_w - big_w // 2, big_w), slice(big_w // 2 - big_w, None)
    out = outs[0].new_empty(outs[0].shape[0], outs[0].shape[1], big_h, big_w)
    out[..., top, left] = outs[0][..., top, left]
    out[..., top, right] = outs[1][..., top, right_r]
    out[..., bottom, left] = outs[2][..., bottom_r, left]
    out[..., bottom, right] = outs[3][..., bottom_r, right_r]
    return out


def _transform(x: Tensor, index: int) -> Tensor:
    """Geometric transform ``index`` (0..7) of the x8 ensemble: bit 0 flips W, bit 1 flips H,
    bit 2 transposes (applied in that order, as EDSR-PyTorch builds its list)."""
    if index & 1:
        x = x.flip(-1)
    if index & 2:
        x = x.flip(-2)
    if index & 4:
        x = x.transpose(-2, -1)
    return x


def _untransform(y: Tensor, index: int) -> Tensor:
    """Inverse of ``_transform`` (transpose first, then the flips)."""
    if index & 4:
        y = y.transpose(-2, -1)
    if index & 2:
        y = y.flip(-2)
    if index & 1:
        y = y.flip(-1)
    return y


def forward_self_ensemble(forward: Forward, x: Tensor) -> Tensor:
    """x8 self-ensemble (EDSR "+"): mean of the 8 flip/transpose outputs, each transformed back."""
    outs = [_untransform(forward(_transform(x, i).contiguous()), i) for i in range(8)]
    return torch.stack(outs, dim=0).mean(dim=0)
