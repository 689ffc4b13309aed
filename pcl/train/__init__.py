"""Training: the experiment catalog, data, schedules and the trainer.

``pcl train --experiment NAME --tier smoke|finetune|scratch --run-dir DIR`` runs one catalog
experiment (``config/experiments.yaml``) and writes the run layout of docs/architecture.md:
``config.yaml``, ``provenance.json``, ``checkpoints/`` (resumable, atomic), ``model.safetensors`` +
``model.json``, ``embedding.safetensors`` (PCL runs), ``log.csv``, ``tb/`` and ``result.json``.

Modules, one concern each: ``catalog`` (the experiments), ``config`` (resolved settings and run
identity), ``data`` (prepared arrays and patch batches), ``schedules``, ``runtime`` (device,
precision, DDP, failures), ``init`` (network, initial weights, PCL objective), ``state``
(checkpoints, RNG streams, weights files), ``step`` (one iteration), ``grad_share`` (the contrastive
term's measured share of the SR gradient), ``validation``, ``runlog``
(log.csv, TensorBoard), ``record`` (config.yaml, provenance.json, result.json), ``lock`` (one
trainer per run directory, ``.trainer.lock``), ``failures`` (what a failed run keeps and says) and
``loop`` (``Trainer``).
"""

from __future__ import annotations

from pcl.train.catalog import Catalog, Cell, Experiment, load_catalog
from pcl.train.schedules import Schedule

__all__ = ["Catalog", "Cell", "Experiment", "Schedule", "load_catalog"]
# The trainer (``pcl.train.loop.Trainer``) is imported on use: loading the catalog (the workflow
# does it at parse time) should not pay for torch.
