"""What a run is: the resolved experiment settings, their identity, and how to run them.

Why one module: the trainer (which refuses to resume a checkpoint of other settings) and the
workflow (which re-runs a training job when its settings change) must agree on what "the same
run" means, so both resolve a catalog entry and hash it here.  Only the standard library is
imported: the workflow calls these functions while Snakemake parses the DAG.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from pcl.errors import PCLError

if TYPE_CHECKING:
    from pcl.train.catalog import Experiment

#: Budget keys that change nothing in the trained weights, so a run may be resumed or extended
#: after they change (they still change what a run writes: log rows, validations, its length).
CADENCE_KEYS: frozenset[str] = frozenset({"iterations", "workers", "log_every", "checkpoint_every", "validate_every",
                                          "validation_images", "validation_dataset"})


@dataclass
class TrainOptions:
    """How to run (not what): device, determinism, caches, where other runs live, overrides."""

    device: str = "auto"
    deterministic: bool = False
    progress: bool = True
    data_cache: Path = Path("data/prepared/train")
    checkpoints_config: Path = Path("config/checkpoints.yaml")
    runs_root: Path | None = None
    init: str | None = None
    embedding_from: str | None = None
    threads: int | None = None
    tensorboard: bool = True
    command: list[str] = field(default_factory=lambda: list(sys.argv))


def resolve_config(experiment: Experiment, tier: str, *, budget: Mapping[str, Any] | None = None,
                   seed: int | None = None, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The experiment's settings at ``tier`` with command-line overrides applied."""
    config = experiment.resolve(tier)
    if budget:
        unknown = sorted(set(budget) - set(config["budget"]))
        if unknown:
            raise PCLError(f"unknown budget override {unknown[0]!r}; valid: {', '.join(config['budget'])}")
        config["budget"].update({k: v for k, v in budget.items() if v is not None})
    if seed is not None:
        config["seed"] = int(seed)
    if data:
        config["data"].update(data)  # verbatim: None is meaningful (no range, no LR folder)
    return config


def run_identity(config: Mapping[str, Any], *, with_cadence: bool = False) -> str:
    """sha256 of a resolved configuration, without the table cells it feeds (they only place results).

    ``with_cadence=False`` (the trainer's resume check, stored in checkpoints and result.json):
    only what determines the trained weights, so a run can be extended with more iterations and
    resumed.  ``with_cadence=True`` (the workflow's job parameter): every setting, because the
    cadence keys change the run's files (its length, log rows and validations), so editing them in
    the catalog must re-run the job, which then resumes or finds the run complete.
    """
    core = json.loads(json.dumps(config, sort_keys=True, default=str))
    core.pop("cells", None)
    if not with_cadence:
        core["budget"] = {k: v for k, v in core["budget"].items() if k not in CADENCE_KEYS}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any tuple of values (BLAKE2b), for independent, reproducible streams."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8, person=b"pcl-seeds").digest()
    return struct.unpack("<Q", digest)[0] & ((1 << 63) - 1)
