"""NIQE (Mittal, Soundararajan, Bovik, IEEE SPL 2013) computed the way the official MATLAB code does.

Why our own: the score depends on details the Python ports change, above all on the *sign* of
MSCN coefficients that are zero in exact arithmetic (flat or symmetric 7x7 windows):
``estimateaggdparam`` counts only ``vec < 0`` and ``vec > 0``, so a coefficient of -1e-14
instead of 0 moves a block's left/right spread.  That sign is decided by how the filter rounds;
:mod:`pcl.metrics.niqe_filter` reproduces MATLAB's rounding, and
:mod:`pcl.metrics.niqe_uncertainty` measures how far the score moves under the alternatives.

Reproduced, step by step (``computequality.m``, ``computefeature.m``, ``estimateaggdparam.m``):

* grey input as given; RGB through ``rgb2gray`` (convention ``niqe``) or the Y of ``rgb2ycbcr``
  (``niqe-y``, BasicSR's choice), computed in double and rounded to uint8 as MATLAB does;
* crop to whole 96x96 blocks from the top-left (before any filtering); scale 2 is MATLAB
  ``imresize(im, 0.5)`` of the cropped image, cut into 48x48 blocks;
* ``mu = imfilter(im, w, 'replicate')``, ``sigma = sqrt(abs(imfilter(im.*im) - mu.*mu))``,
  coefficients ``(im - mu) ./ (sigma + 1)``; the filter is separable, each tap accumulated with
  one rounding (fused multiply-add), taps in increasing offset (see ``niqe_filter``);
* per block (all blocks: ``sharpness`` is computed by the script but never used), AGGD fits of
  the coefficients and of four circularly shifted products (18 values); ``mean([])`` is NaN;
  ``alpha`` from the grid ``0.2:0.001:10`` built with MATLAB's colon rule, first index on ties,
  index 1 when every distance is NaN or Inf (MATLAB's ``min``);
* ``nanmean`` per feature, ``nancov`` over complete rows (N-1), ``pinv`` with MATLAB's tolerance
  ``max(size) * eps(max singular value)``.

Everything runs batched in float64 torch on the images' device; blocks are never looped over.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcl.data.imresize import contributions
from pcl.errors import PCLError
from pcl.metrics.niqe_aggd import aggd_tables, alpha_index, matlab_colon  # noqa: F401 (re-exported)
from pcl.metrics.niqe_filter import ARITHMETIC_MODELS, local_stats
from pcl.resources import resource_path

NIQE_CONVENTIONS = ("niqe", "niqe-y")
#: side of the smallest image NIQE can score: one 96x96 block at scale 1 (48x48 at scale 2)
NIQE_MIN_SIZE = 96
#: SHA-256 of resources/niqe/niqe_pris_params.npz (see its PROVENANCE.md)
MODEL_SHA256 = "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"

_BLOCK = 96
#: MATLAB rgb2gray: first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703])
_GRAY_COEF = (0.298936021293775, 0.587043074451121, 0.114020904255103)
#: MATLAB rgb2ycbcr on uint8: Y = (1/255 * [65.481 128.553 24.966]) * rgb + 16
_Y_COEF = tuple((1.0 / 255.0) * c for c in (65.481, 128.553, 24.966))
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # computefeature.m, as circshift(block, shift)
_MAX_VECTOR_ELEMENTS = 1 << 22  # coefficients per AGGD chunk: bounds temporaries to ~0.3 GB
#: pixels per pass through the pipeline.  Why chunks on CPU: the ~100 element-wise passes are
#: memory-bound; one 480x480 image (1.8 MB per array) stays in cache, a batch of four does not
#: (measured, 2 threads: 20-23 ms per 512x512 image one at a time, 29-32 ms in a batch of 4).
_CPU_CHUNK_PIXELS = 1 << 18
_GPU_CHUNK_PIXELS = 1 << 25  # bounds GPU memory to a few GB


def model_path() -> Path:
    """Where the pristine model is read from (inside the shipped resources)."""
    return resource_path("niqe", "niqe_pris_params.npz")


def load_model() -> dict[str, np.ndarray]:
    """``mu`` (36,), ``cov`` (36, 36) and the 1-D window factor ``g`` (7,), after a SHA-256 check."""
    return _load_verified(*_model_key())


def _model_key() -> tuple[str, int, int]:
    """(path, mtime, size) of the model file: the caches key on it, so an edited file is re-checked."""
    path = model_path()
    try:
        stat = path.stat()
    except OSError:
        raise PCLError(
            f"NIQE model {path} not found; restore resources/niqe/niqe_pris_params.npz from the "
            "repository (or point PCL_RESOURCES at a resources folder that has it)"
        ) from None
    return str(path), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4)
def _load_verified(path: str, mtime_ns: int, size: int) -> dict[str, np.ndarray]:
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise PCLError(
            f"NIQE model {path} has sha256 {digest}, expected {MODEL_SHA256}; the file was altered "
            "or replaced: restore it from the repository (resources/niqe/niqe_pris_params.npz)"
        )
    with np.load(io.BytesIO(data)) as npz:
        mu = np.asarray(npz["mu_pris_param"], dtype=np.float64).reshape(36)
        cov = np.asarray(npz["cov_pris_param"], dtype=np.float64).reshape(36, 36)
        window = np.asarray(npz["gaussian_window"], dtype=np.float64).reshape(7, 7)
    model = {"mu": mu, "cov": cov, "g": window[:, 3] / math.sqrt(window[3, 3])}
    for array in model.values():
        array.setflags(write=False)  # shared by every caller through the cache
    return model


@functools.lru_cache(maxsize=8)
def _on_device(model_key: tuple[str, int, int] | None, device: str) -> dict[str, torch.Tensor]:
    """The AGGD tables (``model_key`` None) or the model's ``mu``/``cov`` as float64 tensors on ``device``."""
    arrays = aggd_tables() if model_key is None else {k: _load_verified(*model_key)[k] for k in ("mu", "cov")}
    return {k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in arrays.items()}


def to_luminance(x: torch.Tensor, convention: str) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, H, W) float64 grey levels, rounded like MATLAB's uint8 result.

    ``niqe``: ``rgb2gray``; ``niqe-y``: Y of ``rgb2ycbcr`` (its uint8 path scales the matrix by
    1/255 and adds 16).  Products are summed left to right in double, then rounded half away from
    zero, as ``imapplymatrix``/``imlincomb`` do.  One channel is returned unchanged.
    """
    if x.shape[1] == 1:
        return x[:, 0].to(torch.float64)
    r, g, b = (x[:, c].to(torch.float64) for c in range(3))
    if convention == "niqe":
        v = r * _GRAY_COEF[0] + g * _GRAY_COEF[1] + b * _GRAY_COEF[2]
    else:
        v = r * _Y_COEF[0] + g * _Y_COEF[1] + b * _Y_COEF[2] + 16.0
    return (v.clamp(0.0, 255.0) + 0.5).floor()  # round half away from zero, saturate


@functools.lru_cache(maxsize=32)
def _half_plan(length: int) -> tuple[tuple[float, ...], np.ndarray]:
    """Weights and mirror-extended input index of MATLAB's 1/2 resize along one dimension: every
    output ``k`` uses the same 8 weights on ``ext[2k .. 2k+7]`` (checked), so taps are strided views."""
    weights, indices = contributions(length, length // 2, 0.5)
    out_len, taps = indices.shape
    ext = np.empty(2 * (out_len - 1) + taps, dtype=np.int64)
    for k in range(out_len):
        ext[2 * k:2 * k + taps] = indices[k]
    pos = 2 * np.arange(out_len)[:, None] + np.arange(taps)[None, :]
    if not (np.array_equal(ext[pos], indices) and np.all(weights == weights[0])):
        raise RuntimeError(f"NIQE: unexpected imresize taps at scale 1/2 for length {length}")
    return tuple(float(v) for v in weights[0]), ext


def _half(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imresize(x, 0.5)`` of (N, H, W) float64: rows, then columns, taps summed in order.

    The weights are multiples of 1/256, so on the integer grey levels of scale 1 every product
    and partial sum is exact: the result is MATLAB's to the last bit whatever the order.
    """
    for dim in (1, 2):
        out_len = x.shape[dim] // 2
        weights, ext = _half_plan(x.shape[dim])
        src = x.index_select(dim, torch.as_tensor(ext, device=x.device))
        out = None
        for tap, wt in enumerate(weights):
            view = src.narrow(dim, tap, 2 * out_len - 1)
            term = (view[:, ::2] if dim == 1 else view[:, :, ::2]) * wt
            out = term if out is None else out + term
        x = out
    return x


def _circular_product(b: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``b .* circshift(b, [dy dx])`` within each block of (B, S, S), without materialising the shift."""
    s = b.shape[-1]
    pieces = {0: [(slice(None), slice(None))],  # (destination, source) ranges along one axis
              1: [(slice(1, None), slice(0, s - 1)), (slice(0, 1), slice(s - 1, None))],
              -1: [(slice(0, s - 1), slice(1, None)), (slice(s - 1, None), slice(0, 1))]}
    out = torch.empty_like(b)
    for rd, rs in pieces[dy]:
        for cd, cs in pieces[dx]:
            torch.mul(b[:, rd, cd], b[:, rs, cs], out=out[:, rd, cd])
    return out


def _aggd_sums(v: torch.Tensor, neg: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """(B, L) samples -> (B, 5): count < 0, count > 0, sum of squares < 0, > 0, sum of |v|.
    ``neg``/``pos``: scratch like ``v``.  0 and -0.0 count on neither side, as in MATLAB."""
    torch.clamp(v, max=0.0, out=neg)
    torch.clamp(v, min=0.0, out=pos)
    return torch.stack([
        torch.count_nonzero(neg, dim=-1).to(v.dtype), torch.count_nonzero(pos, dim=-1).to(v.dtype),
        torch.linalg.vecdot(neg, neg), torch.linalg.vecdot(pos, pos), pos.sum(-1) - neg.sum(-1),
    ], -1)


def _aggd(sums: torch.Tensor, length: int, tab: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """``estimateaggdparam`` from :func:`_aggd_sums`: (alpha, betal, betar, gamma(2/a)/gamma(1/a))."""
    n_neg, n_pos, sq_neg, sq_pos, abs_sum = sums.unbind(-1)
    left = torch.sqrt(sq_neg / n_neg)  # mean([]) is NaN in MATLAB; 0/0 is NaN here
    right = torch.sqrt(sq_pos / n_pos)
    gh = left / right
    rhat = (abs_sum / length) ** 2 / ((sq_neg + sq_pos) / length)
    rnorm = rhat * (gh ** 3 + 1) * (gh + 1) / ((gh ** 2 + 1) ** 2)
    pick = alpha_index(rnorm, tab["r_gam"])
    factor = tab["beta_factor"][pick]
    return tab["gam"][pick], left * factor, right * factor, tab["mean_factor"][pick]


def aggd_fit(sample: np.ndarray | torch.Tensor) -> tuple[float, float, float]:
    """``[alpha, betal, betar] = estimateaggdparam(sample(:))`` for one sample (checks and tests)."""
    v = torch.as_tensor(np.asarray(sample, dtype=np.float64).ravel())[None]
    sums = _aggd_sums(v, torch.empty_like(v), torch.empty_like(v))
    alpha, bl, br, _ = _aggd(sums, v.shape[1], _on_device(None, "cpu"))
    return float(alpha[0]), float(bl[0]), float(br[0])


def _block_features(sd: torch.Tensor, size: int, tab: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, H, W) MSCN coefficients -> (N, blocks, 18) ``computefeature`` rows, blocks column-major."""
    n, h, w = sd.shape
    rows, cols = h // size, w // size
    blocks = sd.reshape(n, rows, size, cols, size).permute(0, 3, 1, 2, 4).reshape(-1, size, size)
    chunk = max(1, _MAX_VECTOR_ELEMENTS // (size * size))
    sums = []
    for start in range(0, blocks.shape[0], chunk):
        b = blocks[start:start + chunk]
        flat = b.reshape(b.shape[0], -1)
        neg, pos = torch.empty_like(flat), torch.empty_like(flat)
        vecs = [flat] + [_circular_product(b, dy, dx).reshape(b.shape[0], -1) for dy, dx in _SHIFTS]
        sums.append(torch.stack([_aggd_sums(v, neg, pos) for v in vecs], 1))
    alpha, bl, br, mfac = _aggd(torch.cat(sums), size * size, tab)  # each (blocks, 5)
    first = torch.stack([alpha[:, 0], (bl[:, 0] + br[:, 0]) / 2], -1)
    per_shift = torch.stack([alpha[:, 1:], (br - bl)[:, 1:] * mfac[:, 1:], bl[:, 1:], br[:, 1:]], -1)
    return torch.cat([first, per_shift.reshape(-1, 16)], -1).reshape(n, rows * cols, 18)


def _quality(feat: torch.Tensor, mu_p: torch.Tensor, cov_p: torch.Tensor) -> torch.Tensor:
    """(N, blocks, 36) features -> (N,) ``sqrt(d * pinv((cov_p + cov_d)/2) * d')``."""
    nan = torch.isnan(feat)
    zero = torch.zeros((), dtype=feat.dtype, device=feat.device)
    mu_d = torch.where(nan, zero, feat).sum(1) / (~nan).sum(1)  # nanmean
    complete = ~nan.any(-1, keepdim=True)  # nancov: rows with a NaN are dropped
    n_c = complete.sum(1)  # (N, 1)
    mean_c = torch.where(complete, feat, zero).sum(1) / n_c
    xc = torch.where(complete, feat - mean_c[:, None, :], zero)
    cov_d = xc.mT @ xc / (n_c - 1).clamp(min=1)[..., None]  # one row: MATLAB divides by 1
    a = (cov_p + cov_d) / 2
    usable = torch.isfinite(a).all(-1).all(-1) & (n_c[:, 0] > 0)
    a = torch.where(usable[:, None, None], a, torch.eye(36, dtype=a.dtype, device=a.device))
    u, s, vh = torch.linalg.svd(a)
    smax = s[:, :1]
    tol = 36 * (torch.nextafter(smax, torch.full_like(smax, math.inf)) - smax)  # 36 * eps(max(s))
    s_inv = torch.where(s > tol, 1.0 / s, zero)
    pinv = (vh.mT * s_inv[:, None, :]) @ u.mT
    d = (mu_p - mu_d)[:, None, :]
    q = torch.sqrt(((d @ pinv) @ d.mT)[:, 0, 0])
    return torch.where(usable, q, torch.full_like(q, math.nan))


def _check_options(convention: str, crop_border: Any) -> int:
    if convention not in NIQE_CONVENTIONS:
        raise PCLError(f"unknown NIQE convention {convention!r}; use one of {', '.join(NIQE_CONVENTIONS)}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise PCLError(f"NIQE crop_border must be a non-negative integer, got {crop_border!r}")
    return int(crop_border)


def niqe_batch(imgs: torch.Tensor, *, convention: str = "niqe", crop_border: int = 0) -> torch.Tensor:
    """NIQE of each image of an (N, C, H, W) uint8 batch (C = 1 or 3, RGB order), as (N,) float64.

    Runs on ``imgs.device`` in float64.  ``crop_border`` pixels are removed on every side first;
    the rest is cropped to whole 96x96 blocks from the top-left, as the MATLAB code does.  A score
    is NaN when no block has finite features (e.g. a constant image), where MATLAB has no value.

    Raises:
        PCLError: not a uint8 (N, 1|3, H, W) tensor, unknown convention, bad ``crop_border``, or
            fewer than 96x96 pixels left after the border crop.
    """
    return niqe_distance(niqe_features(imgs, convention=convention, crop_border=crop_border))


def niqe_features(imgs: torch.Tensor, *, convention: str = "niqe", crop_border: int = 0,
                  arithmetic: str = "fma") -> torch.Tensor:
    """(N, blocks, 36) ``computefeature`` rows of every 96x96 block (column-major block order;
    columns 0-17 scale 1, 18-35 scale 2), as ``computequality`` builds ``distparam``.

    ``arithmetic``: how the local mean rounds (:data:`pcl.metrics.niqe_filter.ARITHMETIC_MODELS`);
    ``fma`` is MATLAB's, the others exist to measure how much the score depends on it.
    Same input rules and errors as :func:`niqe_batch`.
    """
    cb = _check_options(convention, crop_border)
    if arithmetic not in ARITHMETIC_MODELS:
        raise PCLError(f"unknown NIQE arithmetic {arithmetic!r}; use one of {', '.join(ARITHMETIC_MODELS)}")
    if not isinstance(imgs, torch.Tensor) or imgs.dtype != torch.uint8 or imgs.ndim != 4 \
            or imgs.shape[1] not in (1, 3) or imgs.shape[0] == 0:
        got = f"{type(imgs).__name__} {getattr(imgs, 'dtype', '')} {tuple(getattr(imgs, 'shape', ()))}"
        raise PCLError(f"NIQE expects a uint8 (N, C, H, W) batch with C = 1 or 3, got {got}; "
                       "convert images to uint8 0..255 first")
    h, w = imgs.shape[2] - 2 * cb, imgs.shape[3] - 2 * cb
    if h < NIQE_MIN_SIZE or w < NIQE_MIN_SIZE:
        raise PCLError(
            f"NIQE needs at least {NIQE_MIN_SIZE}x{NIQE_MIN_SIZE} pixels (one 96x96 block at scale 1, "
            f"48x48 at scale 2), got {h}x{w} after crop_border={cb}; use a larger image or a smaller crop_border"
        )
    g = [float(v) for v in load_model()["g"]]  # verifies the SHA-256 (cached)
    tab = _on_device(None, str(imgs.device))
    h, w = h // _BLOCK * _BLOCK, w // _BLOCK * _BLOCK
    per_chunk = max(1, (_CPU_CHUNK_PIXELS if imgs.device.type == "cpu" else _GPU_CHUNK_PIXELS) // (h * w))
    return torch.cat([
        _features(to_luminance(imgs[i:i + per_chunk, :, cb:cb + h, cb:cb + w], convention), g, tab, arithmetic)
        for i in range(0, imgs.shape[0], per_chunk)])


def niqe_distance(feat: torch.Tensor) -> torch.Tensor:
    """(N, blocks, 36) features -> (N,) NIQE: the distance of their ``nanmean``/``nancov`` to the pristine model."""
    model = _on_device(_model_key(), str(feat.device))
    return _quality(feat, model["mu"], model["cov"])


def _features(x: torch.Tensor, g: list[float], tab: dict[str, torch.Tensor], model: str) -> torch.Tensor:
    """(N, H, W) grey levels (H, W multiples of 96) -> (N, blocks, 36): both scales of every block."""
    feats = []
    for scale in (1, 2):
        mu, mu2 = local_stats(x, g, model)
        sigma = torch.sqrt(torch.abs(mu2 - mu * mu))
        feats.append(_block_features((x - mu) / (sigma + 1), _BLOCK // scale, tab))
        if scale == 1:
            x = _half(x)
    return torch.cat(feats, -1)


def niqe(img: np.ndarray | torch.Tensor, *, convention: str = "niqe", crop_border: int = 0) -> float:
    """NIQE of one uint8 image: numpy (H, W) or (H, W, 3) RGB, or torch (H, W) or (C, H, W).

    ``convention``: ``"niqe"`` = the official script (``rgb2gray``); ``"niqe-y"`` = BasicSR's
    (Y of MATLAB ``rgb2ycbcr``).  Grey images are used as they are under both.  Lower is better.
    """
    return float(niqe_batch(as_batch(img, convention, crop_border), convention=convention,
                            crop_border=crop_border)[0])


def as_batch(img: np.ndarray | torch.Tensor, convention: str, crop_border: int) -> torch.Tensor:
    """One image as :func:`niqe` takes it -> a (1, C, H, W) uint8 batch (options checked first)."""
    _check_options(convention, crop_border)
    is_numpy = isinstance(img, np.ndarray)
    if not (is_numpy or isinstance(img, torch.Tensor)):
        raise PCLError(f"NIQE expects a numpy array or a torch tensor, got {type(img).__name__}")
    channels = img.shape[2 if is_numpy else 0] if img.ndim == 3 else 1
    if str(img.dtype).replace("torch.", "") != "uint8" or img.ndim not in (2, 3) or channels not in (1, 3):
        layout = "(H, W) or (H, W, 3)" if is_numpy else "(H, W) or (C, H, W)"
        raise PCLError(f"NIQE expects a uint8 image {layout}, got {img.dtype} {tuple(img.shape)}; "
                       "convert it to uint8 0..255 first")
    t = torch.from_numpy(np.array(img)) if is_numpy else img  # numpy: a writable copy
    return t[None, None] if img.ndim == 2 else (t.permute(2, 0, 1)[None] if is_numpy else t[None])
