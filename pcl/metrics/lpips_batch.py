"""LPIPS for many images: pairs of equal size go through AlexNet together.

Why: a benchmark is scored image by image (each SR image is made, scored and dropped), but
AlexNet on one image leaves a GPU mostly idle and repeats per-call work on a CPU. Sets such as
B100 (481x321 or 321x481) or a folder of crops are a handful of sizes, so the evaluator queues
each pair here and the queue runs one forward pass per group of equal-size pairs.

Memory stays bounded: the queue holds the uint8 regions only (the float tensors exist for one
group at a time), and once it holds ``budget_pixels`` pixels it scores its largest group, so a
set of all-different sizes (Urban100, Manga109) costs one image's work at a time, as before.

Values: a batched convolution may take another algorithm than a single image's, so a value can
move in the last float32 bits (measured by ``pcl bench lpips`` on its five 1024x768 photos, one
pass of five: 9.3e-10 at most; tests assert 1e-6 against the one-at-a-time path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

#: Pixels (per image, summed over the queue) held before the largest group is scored. 8 Mpx of
#: uint8 SR+GT regions is 48 MB; as float32 inputs of one forward pass 192 MB, plus AlexNet's
#: first activations (64 channels at 1/4 resolution, about 16 bytes per input pixel).
DEFAULT_BUDGET_PIXELS = 8_000_000

Done = Callable[[float], None]


@dataclass
class LPIPSQueue:
    """Pairs waiting for LPIPS, grouped by size; each value is handed to its ``done`` callback.

    ``forward`` maps two (N, 3, h, w) float tensors in [0, 1] to N distances (the scorer's model).
    """

    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    budget_pixels: int = DEFAULT_BUDGET_PIXELS
    _groups: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray, Done]]] = field(default_factory=dict)
    _pixels: int = 0

    def add(self, sr_region: np.ndarray, hr_region: np.ndarray, done: Done) -> None:
        """Queue one pair of (h, w, 3) uint8 regions; score the largest group when over budget."""
        key = sr_region.shape[:2]
        self._groups.setdefault(key, []).append((sr_region, hr_region, done))
        self._pixels += key[0] * key[1]
        while self._pixels >= self.budget_pixels and self._groups:
            self._run(max(self._groups, key=lambda k: k[0] * k[1] * len(self._groups[k])))

    def flush(self) -> None:
        """Score every queued pair (call once the last image of a set has been added)."""
        for key in list(self._groups):
            self._run(key)

    def discard(self) -> None:
        """Forget the queue (the set failed half-way; its rows are never written)."""
        self._groups.clear()
        self._pixels = 0

    def _run(self, key: tuple[int, int]) -> None:
        items = self._groups.pop(key)
        self._pixels -= key[0] * key[1] * len(items)
        per_pass = max(1, self.budget_pixels // (key[0] * key[1]))
        for start in range(0, len(items), per_pass):
            chunk = items[start:start + per_pass]
            sr = _stack([s for s, _, _ in chunk])
            hr = _stack([h for _, h, _ in chunk])
            values = self.forward(sr, hr).reshape(-1).tolist()
            for (_, _, done), value in zip(chunk, values):
                done(float(value))


def _stack(regions: list[np.ndarray]) -> torch.Tensor:
    """(N, 3, h, w) float32 in [0, 1] from N (h, w, 3) uint8 arrays."""
    batch = torch.from_numpy(np.stack(regions))
    return batch.permute(0, 3, 1, 2).float().div_(255.0)
