"""FLOPs per training iteration of a catalog experiment, counted, not estimated by hand.

Why counted: the GPU-hour plan is only as good as its FLOPs, and the paper-size networks differ
in ways a formula misses (RCAN's channel attention, NLSN's hashed attention, HAN's 3-d
convolution).  ``torch.utils.flop_counter.FlopCounterMode`` counts matrix products and
convolutions (forward and backward) of the real modules:

* the backbone on the ``meta`` device (shapes only, no memory, no arithmetic): forward on a
  (batch, 3, LR, LR) input, L1 against the HR batch, backward;
* the PCL extras (sample generation, embedding update, embedding passes and, in paper semantics,
  the backward of the term to the SR output) under ``FakeTensorMode`` (autocast and random
  generators need a real device type, which ``meta`` lacks); the objective's modules are built
  for real on the CPU first, as they are small.

Counting the paper configurations takes a few seconds per backbone and per PCL setting on a CPU,
too slow to repeat every time Snakemake parses the workflow, so counts are kept in a JSON cache
(``results/bench/plan_flops.json``) keyed by everything they depend on, torch version included;
a stale or damaged cache is simply recounted and rewritten atomically.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

import torch

from pcl.atomic import atomic_write_text

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path("results/bench/plan_flops.json")


def count_backbone_flops(backbone: str, model_kwargs: Mapping[str, Any], batch: int, lr_patch: int, scale: int = 4) -> int:
    """FLOPs of the SR network's forward + L1 + backward for one batch (meta tensors)."""
    from torch.utils.flop_counter import FlopCounterMode

    from pcl.models import build_model

    with torch.device("meta"):
        model = build_model(backbone, **dict(model_kwargs))
        lr = torch.empty(batch, 3, lr_patch, lr_patch)
        hr = torch.empty(batch, 3, lr_patch * scale, lr_patch * scale)
    with FlopCounterMode(display=False) as counter:
        sr = model(lr)
        (sr.float() - hr).abs().mean().backward()
    return int(counter.get_total_flops())


def count_pcl_flops(method: str, method_settings: Mapping[str, Any], batch: int, lr_patch: int, scale: int = 4) -> int:
    """FLOPs of the PCL extras of one step (``PCLObjective.step`` and the term's backward to the
    SR output); ``pcl-fixed`` has a frozen embedding and therefore no embedding update."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from pcl.method import MethodConfig, PCLObjective

    hr_patch = lr_patch * scale
    objective = PCLObjective(MethodConfig.from_dict(dict(method_settings)), device="cpu", sr_lr=1e-4,
                             generator=torch.Generator(), patch_size=hr_patch, vgg_pretrained=False)
    if method == "pcl-fixed":
        objective.optimizer = None
        objective.embedding.requires_grad_(False)
    with FakeTensorMode(allow_non_fake_inputs=True):
        hr = torch.empty(batch, 3, hr_patch, hr_patch).uniform_(0, float(objective.config.rgb_range))
        lr = torch.empty(batch, 3, lr_patch, lr_patch).uniform_(0, float(objective.config.rgb_range))
        sr = torch.empty(batch, 3, hr_patch, hr_patch).uniform_(0, float(objective.config.rgb_range)).requires_grad_(True)
        with FlopCounterMode(display=False) as counter:
            out = objective.step(sr, hr, lr)
            if out.weighted.requires_grad:
                out.weighted.backward()
    return int(counter.get_total_flops())


class FlopCache:
    """Counts by key, read from and written back to a JSON file (None: memory only)."""

    def __init__(self, path: Path | None = DEFAULT_CACHE) -> None:
        self.path = path
        self.counts: dict[str, int] = {}
        self.dirty = False
        if path is not None and Path(path).is_file():
            try:
                data = json.loads(Path(path).read_text(encoding="utf-8"))
                if data.get("torch") == torch.__version__ and isinstance(data.get("counts"), dict):
                    self.counts = {str(k): int(v) for k, v in data["counts"].items()}
            except (OSError, ValueError, TypeError):
                log.warning("%s is unreadable; the FLOPs are counted again", path)

    def get(self, key: Mapping[str, Any], count) -> int:
        text = json.dumps(key, sort_keys=True, default=str)
        if text not in self.counts:
            self.counts[text] = int(count())
            self.dirty = True
        return self.counts[text]

    def save(self) -> None:
        """Write the counts back (atomically) when some were added; an unwritable place is skipped
        with a warning: the cache only saves time."""
        if self.path is None or not self.dirty:
            return
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(Path(self.path), json.dumps({"torch": torch.__version__, "counts": self.counts},
                                                          indent=1, sort_keys=True) + "\n")
            self.dirty = False
        except Exception as exc:  # noqa: BLE001 - a cache that cannot be written costs only time
            log.warning("could not write the FLOP cache %s (%s); counts are kept in memory", self.path, exc)


def experiment_flops(config: Mapping[str, Any], cache: FlopCache) -> tuple[int, int]:
    """(backbone FLOPs, PCL-extra FLOPs) per iteration of a resolved experiment configuration."""
    budget, scale = config["budget"], int(config["data"].get("scale", 4))
    batch, lr_patch = int(budget["batch"]), int(budget["lr_patch"])
    key = {"what": "backbone", "backbone": config["backbone"], "model_kwargs": config["model_kwargs"], "batch": batch,
           "lr_patch": lr_patch, "scale": scale}
    backbone = cache.get(key, lambda: count_backbone_flops(config["backbone"], config["model_kwargs"], batch, lr_patch,
                                                           scale))
    if not config.get("method_settings") or config["method"] not in ("pcl", "pcl-released", "pcl-fixed"):
        return backbone, 0
    key = {"what": "pcl", "method": "pcl-fixed" if config["method"] == "pcl-fixed" else "trained",
           "settings": config["method_settings"], "batch": batch, "lr_patch": lr_patch, "scale": scale}
    extras = cache.get(key, lambda: count_pcl_flops(config["method"], config["method_settings"], batch, lr_patch, scale))
    return backbone, extras
