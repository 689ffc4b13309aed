"""LPIPS of many images in one pass per size (pcl.metrics.lpips_batch) and its use by the evaluator.

References: the one-pair-at-a-time scorer (itself checked against the `lpips` package in
test_perceptual.py) on a seeded random AlexNet saved under the real file name; the batched
values must equal it within 1e-6 (a batched convolution may round differently). The queue's
routing and memory bound are checked with a forward function whose values are known by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pcl.evaluate import evaluate_folder
from pcl.metrics.lpips_batch import LPIPSQueue
from pcl.metrics.perceptual import LPIPSScorer, scored_region
from pcl.metrics.suite import MetricSuite

torch.set_num_threads(1)


def _pair(seed: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-25, 26, hr.shape), 0, 255).astype(np.uint8)
    return sr, hr


class _Recorder:
    """forward(): per pair the mean of SR (known by hand: a constant image of value v gives v/255)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(sr.shape))
        return sr.mean(dim=(1, 2, 3))


def _const(value: int, h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_one_pass_per_size_and_each_value_reaches_its_pair() -> None:
    fwd, got = _Recorder(), {}
    queue = LPIPSQueue(fwd, budget_pixels=10**9)
    for i, (h, w) in enumerate([(8, 12), (12, 8), (8, 12), (8, 12), (12, 8)]):
        queue.add(_const(10 * i, h, w), _const(0, h, w), lambda v, i=i: got.__setitem__(i, v))
    assert fwd.calls == [] and got == {}
    queue.flush()
    assert sorted(fwd.calls) == [(2, 3, 12, 8), (3, 3, 8, 12)]
    assert got == pytest.approx({i: 10 * i / 255 for i in range(5)}, abs=1e-7)


def test_budget_scores_the_largest_group_early_and_caps_each_pass() -> None:
    fwd, got = _Recorder(), {}
    queue = LPIPSQueue(fwd, budget_pixels=3 * 100)  # three 10x10 pairs
    for i in range(2):
        queue.add(_const(i, 10, 10), _const(0, 10, 10), lambda v, i=i: got.__setitem__(i, v))
    queue.add(_const(9, 5, 5), _const(0, 5, 5), lambda v: got.__setitem__("small", v))
    assert fwd.calls == []  # 225 px held, under the budget
    queue.add(_const(2, 10, 10), _const(0, 10, 10), lambda v: got.__setitem__(2, v))
    assert fwd.calls == [(3, 3, 10, 10)]  # 325 px: the 10x10 group went, the small one waits
    assert set(got) == {0, 1, 2}
    queue.flush()
    assert fwd.calls[-1] == (1, 3, 5, 5) and got["small"] == pytest.approx(9 / 255)


def test_discard_forgets_the_queue() -> None:
    fwd = _Recorder()
    queue = LPIPSQueue(fwd)
    queue.add(_const(1, 8, 8), _const(0, 8, 8), lambda v: None)
    queue.discard()
    queue.flush()
    assert fwd.calls == []


def test_batched_equals_one_at_a_time(torch_home: Path) -> None:
    scorer = LPIPSScorer(check_hash=False)
    pairs = [_pair(s, size) for s, size in enumerate([(72, 64), (64, 72), (72, 64), (72, 64)])]
    single = [scorer.score(sr, hr, scale=4) for sr, hr in pairs]
    got: dict[int, float] = {}
    queue = scorer.queue()
    for i, (sr, hr) in enumerate(pairs):
        queue.add(*scored_region(sr, hr, 4), lambda v, i=i: got.__setitem__(i, v))
    queue.flush()
    assert [got[i] for i in range(len(pairs))] == pytest.approx(single, abs=1e-6)


def test_evaluator_fills_lpips_after_the_set(torch_home: Path, tmp_path: Path) -> None:
    from PIL import Image

    hr_dir, sr_dir = tmp_path / "HR", tmp_path / "SR"
    hr_dir.mkdir()
    for s, size in enumerate([(72, 64), (64, 72), (72, 64)]):
        Image.fromarray(_pair(s, size)[1]).save(hr_dir / f"img{s}.png")
    suite = MetricSuite(("psnr", "ssim", "lpips"), scale=4, check_hash=False)

    def blocky(lr: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)

    rows = evaluate_folder(blocky, hr_dir, dataset="Set5", scale=4, protocol="matlab", extra=suite,
                           save_sr=sr_dir)
    assert len({(r["height"], r["width"]) for r in rows}) == 2
    scorer = LPIPSScorer(check_hash=False)
    for row in rows:
        hr = np.asarray(Image.open(hr_dir / f"{row['image']}.png"))
        sr = np.asarray(Image.open(sr_dir / f"{row['image']}.png"))
        assert row["lpips"] == pytest.approx(scorer.score(sr, hr, scale=4), abs=1e-6)
