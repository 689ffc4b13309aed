"""One image's Y-PSNR and mean SSIM, strip by strip, on worker threads (the scorer every row uses).

The protocol (which plane is scored, crops, quantisation) is :mod:`pcl.metrics.psnr_ssim`'s;
this module only turns two planes, delivered row range by row range, into the sum of squared
errors and the mean SSIM.

Implementation.  Everything runs in float64 on whatever device the tensors live on; a batch is
N images of one size, scored one after the other.  Per image:

* The two planes are built strip by strip (:data:`STRIP_ROWS` SSIM rows plus the 10 halo rows,
  which are taken over from the previous strip): uint8 rows become 255 Y with one
  ``torch.addmv`` (no division), then u = x + y, v = x - y, u^2 + 2 C2 and v^2 go into one
  interleaved buffer.  A strip's buffers (about 10 MB for a 1024-px-wide image; each step
  touches 0.5-2 MB of them) stay in the L2/L3 caches.
* The separable 11-tap Gaussian is two batched float64 matmuls with a small banded Toeplitz
  block (:func:`pcl.metrics.ssim_filter.filter_plan`).  Why not ``conv2d``: on CPU float64 convolution has no
  optimised kernel (0.36 s against 0.03 s for four 1016x760 maps, one thread).
* SSIM from u and v (algebra and why in :func:`_score_planes`), PSNR from the sum of v^2.
* On CPU the strips of an image are split between worker threads that each run torch
  single-threaded (:func:`pcl.workers.split_run`); an image under :data:`SPLIT_MIN_PIXELS` runs
  in the caller's thread while the cores are free, else on one such worker.  On CUDA the whole
  image is one strip.

Speed, with ``pcl bench metrics --repeats 10`` (five 1024x768 photos, x4, uint8 RGB in and
floats out, the same work on both sides, alternating order; torch 2.14.1 with MKL; 2-core VMs,
quiet).  The ratio depends on the CPU because most of the time is the float64 GEMMs of the
banded filter (:mod:`pcl.metrics.ssim_filter`):

* AMD EPYC, this version: 0.0146 s per image against 0.0680 s for the numpy luma +
  ``skimage.metrics.structural_similarity`` pipeline (4.7x; a first pass right after skimage's,
  the second core idle and slow to come back, 3.9x), 0.026 CPU-seconds per image (18.6 ms on
  one core), most of them in the filter's GEMMs.  With 16 x 16 blocks the same layout gave
  4.3x; the filter's earlier layout (pass 1 written transposed, pass 2 as 16x16 products) ran
  at 7 GFLOP/s there: 0.0333 s (2.0x); the whole-image version before it took 0.128 s (0.5x).
* Intel Xeon, the earlier layout: 0.0108 s against 0.0749 s (6.9x; first pass 5.0x; one core
  4.0x); the whole-image version 0.030 s (2.5x).
* Intel Xeon, this version (2026-12-07 17:27, idle, results/bench/metrics.csv): 0.0108 s per
  photo against 0.0744 s for skimage (6.9x) and 0.0748 s for the authors' cv2 script (6.9x); on
  the 19 Set5/Set14 images, in the caller's team with doubled strips, 2.7 ms against 14.4 ms (5.4x)
  and 18.8 ms (7.0x); under load see results/bench/metrics_load.csv.

Precision: float64 throughout, and no faster lower-precision mode, because none met the
budget.  Results agree with skimage to 4e-15 dB / 2e-15 SSIM on the benchmark photos and Set5
(tests assert 1e-6) and with :mod:`pcl.metrics.reference` to 3e-15 (tests assert 1e-9).
On one machine a score is the same bits whichever path ran it (caller's team, one worker, several
workers, any strip height): every row is summed whole by one thread, then the rows in one sum.
Summing strip by strip instead moved 7 of the 19 Set5/Set14 scores by one unit in the last place
between the team and the worker, so a re-run under another load wrote different digits.
Tried and measured, not kept:

* float32 filtering (2x faster filter): mean SSIM off by up to 2.5e-7 on real photos with
  x/y moments centred on the image mean, 8e-8 with the u/v moments below, and 1.5e-6 to
  3.5e-6 on adversarial pairs (HR against its inverse, HR + 40): above the 1e-6 budget, so
  it was dropped rather than offered as a default.
* FFT filtering: 117 ms for four 1016x760 maps against about 7 ms for the banded matmuls.
* Whole-image temporaries: every fresh multi-MB tensor is page-faulted in (20 000 minor faults,
  a third of the time in the kernel); strips and reused per-thread buffers avoid that.
* Torch's intra-op threads on the strips: as fast on a quiet machine (14.9 against 15.2 ms
  per image at the time), but every element-wise step is an OpenMP fork/join, and with other
  processes on the cores an image took up to 1.47 s (16x slower than skimage); the worker
  threads took 0.028 s under the same load.
* Other blocks and strip heights on the EPYC (row block / column block / strip rows, median
  ms per image): 8/24/32 14.2, 8/24/48 15.4, 8/24/96 14.6, 8/24/128 16.6, 16/24/64 15.0,
  8/48/64 16.9, 8/16/64 16.8 against 14.5 for 8/24/64: within the run-to-run noise except the
  column blocks, so the strip height stays at 64 (best on the Xeon with the earlier layout).
* OpenBLAS (numpy's matmul) for the filter: pass 2 in 0.55 ms per strip against MKL's 0.86 on
  one EPYC core, but it starts threads of its own inside the scorer's workers and would tie
  the result to the BLAS that numpy happens to bundle.
* The x/y form of SSIM with its constants folded into the moment maps: same speed, but it
  drifted 1e-14 from skimage on a photo with large flat areas; the u/v form keeps 1e-16.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from pcl.metrics.ssim_filter import (
    COLUMN_BLOCK,
    HALO,
    ROW_BLOCK,
    cached_const,
    filter_plan,
    gaussian_bands,
    padded_width,
    scratch,
)
from pcl.workers import free_cores, split_run

DATA_RANGE = 255.0
SSIM_K1 = 0.01
SSIM_K2 = 0.03

#: SSIM rows per strip on CPU (a multiple of the block).  An element-wise step on cache-resident
#: 0.5 MB arrays cost a quarter of the same step on whole 6 MB maps; 64 was the fastest of 32,
#: 48, 64, 96, 128 (more strips mean more halo and call overhead).
STRIP_ROWS = 64

#: Pixels per strip on CPU for narrower images: a strip of a ``w``-px-wide image has at least
#: ``STRIP_PIXELS // w`` rows (as many pixels as STRIP_ROWS rows of a 1024-px image, so about the same
#: cache footprint), so a Set5/Set14-size image is one or two strips instead of four to eight, each
#: a few dozen small torch calls.  0: always STRIP_ROWS.
STRIP_PIXELS = STRIP_ROWS * 1024

#: Pixels per strip when the caller's torch team scores a small image (:func:`_team_would_wait`):
#: two threads share each step, so a strip twice the size still sits in their caches.  Measured on
#: the idle 2-core Intel Xeon VM, the 19 Set5/Set14 images, ms per image: 64k pixels 2.84-2.85,
#: 96k 2.66, 128k 2.59-2.61, 192k 2.67, 256k 2.67-2.73, whole images 2.82.  (One single-threaded
#: worker: 32k 4.35, 64k 4.48, 128k 4.53, so it keeps STRIP_PIXELS.)  0: always STRIP_ROWS.
TEAM_STRIP_PIXELS = 2 * STRIP_PIXELS

#: SSIM pixels below which the strips are not split between workers (unless STRIP_WORKERS is set):
#: handing strips to a second thread costs more than it saves on small images.  Such an image runs in
#: the caller's thread with its torch team when the cores are free, else on one single-threaded
#: worker (:func:`_team_would_wait`).  Measured on the idle 2-core Intel Xeon VM, the 19 Set5/Set14
#: images (0.03-0.37 MP of SSIM pixels), ms per image: 64-row strips on 2 workers 5.19, in the
#: caller's thread 4.56; width-scaled strips on 2 workers 4.0-4.19, in the caller's thread 2.8-3.4
#: (skimage 16.3-16.9 in the same process).
SPLIT_MIN_PIXELS = 400_000

#: Fills rows [r0, r1) of the two planes (SR, HR) into two (r1 - r0, w) float64 tensors.
RowSource = Callable[[int, int, torch.Tensor, torch.Tensor], None]


#: Worker threads that score the strips of one image on CPU, each a contiguous run of strips
#: with torch single-threaded; ``None``: as many as torch's intra-op threads (at most 8).  See
#: :mod:`pcl.workers` for why not torch's own intra-op threads.
STRIP_WORKERS: int | None = None

#: How long one look at the free cores decides (:func:`_team_would_wait`).  A daemon that wakes for
#: a moment is caught by a snapshot now and then; looking before every image flipped between the
#: paths 11 times in 171 images, and each flip costs (the team's threads fall asleep): 3.5 ms per
#: Set5/Set14 image against 3.0 with the choice kept for 0.25 s.
TEAM_CHOICE_SECONDS = 0.25
_TEAM_CHOICE: tuple[float, bool] = (-1e9, True)


def _team_would_wait() -> bool:
    """True when an image scored in the caller's thread would share its OpenMP team's cores with
    other processes: it is then scored by one single-threaded worker instead.

    Measured on the 2-core Intel Xeon VM, the 19 Set5/Set14 images, ms per image, alternating in
    one process with skimage (17.6-19.0): the caller's two-thread team 2.9-3.1 idle and 91-147
    with a busy loop on the other core; one single-threaded worker 4.6-4.8 idle and 4.7-4.9 loaded;
    this choice 3.0-3.1 idle and 4.7 loaded.  After a numpy matrix product whose BLAS threads still
    spin, the team took 7.9 and the worker 4.7; this choice mostly takes the team there (7.7),
    because it cannot tell a sleeping team from a spinning BLAS pool (:func:`pcl.workers.free_cores`).
    """
    global _TEAM_CHOICE
    now = time.monotonic()
    if now - _TEAM_CHOICE[0] > TEAM_CHOICE_SECONDS:
        team = torch.get_num_threads()
        free = free_cores(team)
        _TEAM_CHOICE = (now, free is None or free < team)
    return _TEAM_CHOICE[1]


def n_workers(n_strips: int) -> int:
    wanted = STRIP_WORKERS if STRIP_WORKERS is not None else min(torch.get_num_threads(), 8)
    return max(1, min(wanted, n_strips))


def score_planes(
    fill: RowSource, height: int, width: int, device: torch.device, unit: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of squared errors, mean SSIM) of one pair of (height, width) planes, as 0-dim tensors.

    ``fill`` may deliver the planes multiplied by ``unit`` (the luma rows come as 255 Y, which
    saves a division per pixel): SSIM is unchanged when C1, C2 are scaled by ``unit^2``, and the
    squared errors are divided by it at the end.

    The planes x (SR) and y (HR) are produced strip by strip by ``fill``; each strip of
    :data:`STRIP_ROWS` SSIM rows (more for narrow images, :data:`STRIP_PIXELS`; plus the 10-row
    halo) goes through moments, filter and SSIM arithmetic while its buffers are in cache.  On CPU
    contiguous runs of strips go to :func:`n_workers` worker threads when the image has at least
    :data:`SPLIT_MIN_PIXELS` (smaller ones: :func:`_team_would_wait`); CUDA runs the whole image as
    one strip (fewer launches; memory is not the constraint there).

    Algebra (why u = x + y and v = x - y): with mu, var the filtered means and variances,
    2 mu_x mu_y = (mu_u^2 - mu_v^2) / 2, mu_x^2 + mu_y^2 = (mu_u^2 + mu_v^2) / 2,
    2 cov_xy = (var_u - var_v) / 2 and var_x + var_y = (var_u + var_v) / 2, hence

        SSIM = (1 - 2p)(1 - 2q),  p = mu_v^2 / (mu_u^2 + mu_v^2 + 2 C1),
                                  q = var_v / (var_u + var_v + 2 C2),

    and the mean SSIM is ``1 - 2 mean(p + q - 2pq)``.  Still four filtered maps (u, v, u^2 + 2 C2,
    v^2: the constant is folded into the map, the weights sum to 1), but every quantity that
    decides 1 - SSIM comes from v, the small SR error, so it keeps its relative precision: where
    SR equals HR the map is exactly 1 (v = 0), and the mean agrees with skimage's x/y formula to
    ~1e-16 (the x/y form with folded constants drifted 1e-14 on a photo with flat sky).  The
    PSNR numerator is the sum of the v^2 map over the image, computed anyway.
    """
    b = ROW_BLOCK
    out_h, out_w = height - HALO, width - HALO
    on_cpu = device.type == "cpu"
    split = on_cpu and (STRIP_WORKERS is not None or out_h * out_w >= SPLIT_MIN_PIXELS)
    team = on_cpu and not split and not _team_would_wait()
    pixels = TEAM_STRIP_PIXELS if team else STRIP_PIXELS
    strip = max(STRIP_ROWS, pixels // max(out_w, 1)) if on_cpu else out_h
    strip = min(-(-strip // b) * b, -(-out_h // b) * b)
    starts = list(range(0, out_h, strip))
    workers = n_workers(len(starts)) if split else 1
    # Per-row sums, each row summed whole by one thread, then one sum over the rows: the result
    # does not depend on the strips, the workers or torch's threads (a run under load that took
    # another path gives the same bits).
    sq_rows = torch.empty(height, dtype=torch.float64, device=device)
    deficit_rows = torch.empty(out_h, dtype=torch.float64, device=device)

    def score(run: list[int]) -> None:
        _score_strips(fill, height, width, device, unit, strip, run, sq_rows, deficit_rows)

    if team or not on_cpu:
        score(starts)
    else:
        # Contiguous runs of strips per worker (each run reuses its halo rows).
        split_run("ssim", workers, score, starts)
    sq_sum, deficit = sq_rows.sum(), deficit_rows.sum()
    return sq_sum / (unit * unit), 1.0 - 2.0 * deficit / (out_h * out_w)


def _score_strips(
    fill: RowSource, height: int, width: int, device: torch.device, unit: float, strip: int,
    starts: list[int], sq_rows: torch.Tensor, deficit_rows: torch.Tensor,
) -> None:
    """Per-row sums of squared errors (plane rows, into ``sq_rows``) and of (1 - SSIM) / 2 (SSIM
    rows, into ``deficit_rows``) over the strips starting at ``starts``.

    Strips are ``strip`` SSIM rows (a multiple of the block) starting at the given output
    rows, in increasing order; a strip that directly follows the previous one takes its 10
    halo rows over instead of converting them again.
    """
    b, bc = ROW_BLOCK, COLUMN_BLOCK
    out_h, out_w = height - HALO, width - HALO
    row_len = padded_width(width)
    max_blocks = strip // b
    rows_in = strip + HALO
    map_len = max_blocks * b * row_len

    moments = scratch("moments", rows_in * 4 * row_len, device).view(rows_in, 4, row_len)
    moments[:, :, width:].zero_()  # right padding: finite, never written below
    x = scratch("x", rows_in * width, device).view(rows_in, width)
    y = scratch("y", rows_in * width, device).view(rows_in, width)
    pass1 = scratch("pass1", max_blocks * b * 4 * row_len + HALO, device)
    filtered = scratch("filtered", 4 * map_len, device)
    t1 = scratch("t1", map_len, device)
    t2 = scratch("t2", map_len, device)
    bands = gaussian_bands(device)
    two_c1 = cached_const(2.0 * (SSIM_K1 * DATA_RANGE * unit) ** 2, device)
    two_c2 = cached_const(2.0 * (SSIM_K2 * DATA_RANGE * unit) ** 2, device)
    full_j, rem_j = divmod(out_w, bc)
    halo_to, halo_from = moments[:HALO], moments[strip:strip + HALO]

    def plan(first: int, n_out: int, psnr_rows: int) -> Callable[[int], None]:
        """The work of one strip shape, views built once (the inner strips all share one)."""
        n_in = n_out + HALO
        n_blocks = -(-n_out // b)
        xs, ys = x[first:n_in], y[first:n_in]
        u, v, uu, vv = (moments[first:n_in, m, :width] for m in range(4))
        psnr_part = moments[:psnr_rows, 3, :width]
        pad = moments[n_in:n_blocks * b + HALO]
        run_filter, f = filter_plan(moments.view(-1), 4, n_blocks, row_len, pass1, filtered, bands)
        mu, mv, e_uu, e_vv = f.unbind(0)  # each (column block, row, column in block)
        n = n_blocks * b * row_len
        lum, p = t1[:n].view(mu.shape), t2[:n].view(mu.shape)
        # The valid outputs: rows < n_out, columns < out_w.
        valid = [lum[:full_j, :n_out]]
        if rem_j:
            valid.append(lum[full_j, :n_out, :rem_j])

        def run(o0: int) -> None:
            if first:
                halo_to.copy_(halo_from)
            fill(o0 + first, o0 + n_in, xs, ys)
            torch.add(xs, ys, out=u)
            torch.sub(xs, ys, out=v)
            torch.addcmul(two_c2, u, u, out=uu)
            torch.mul(v, v, out=vv)
            torch.sum(psnr_part, dim=1, out=sq_rows[o0:o0 + psnr_rows])
            if pad.numel():
                pad.zero_()
            run_filter()
            torch.addcmul(two_c1, mu, mu, out=lum)
            torch.mul(mv, mv, out=p)
            lum.add_(p)                          # mu_u^2 + mu_v^2 + 2 C1
            e_vv.sub_(p)                         # var_v
            p.div_(lum)                          # p
            e_uu.addcmul_(mu, mu, value=-1.0)    # var_u + 2 C2
            e_uu.add_(e_vv)                      # var_u + var_v + 2 C2
            q = e_vv.div_(e_uu)                  # q
            torch.addcmul(p, p, q, value=-2.0, out=lum).add_(q)  # p + q - 2pq = (1 - SSIM) / 2
            rows = deficit_rows[o0:o0 + n_out]
            torch.sum(valid[0], dim=(0, 2), out=rows)
            if len(valid) > 1:
                rows.add_(valid[1].sum(dim=1))

        return run

    plans: dict[tuple[int, int, int], Callable[[int], None]] = {}
    previous = None
    for o0 in starts:
        n_out = min(strip, out_h - o0)
        # Rows [0, 10) of this strip are the last 10 input rows of the previous one: their
        # moments move down instead of being converted again.
        first = HALO if previous is not None and o0 == previous + strip else 0
        previous = o0
        # PSNR: each plane row once -- this strip's own rows, the last strip also its halo.
        psnr_rows = n_out + HALO if o0 + strip >= out_h else n_out
        key = (first, n_out, psnr_rows)
        if key not in plans:
            plans[key] = plan(*key)
        plans[key](o0)
