"""Training (issue 5): data, schedules, checkpoints, the trainer and the experiment catalog.

``pcl train --experiment NAME --tier smoke|finetune|scratch --run-dir DIR`` runs one catalog
experiment (``config/experiments.yaml``) and writes the run layout of spec architecture.md:
``config.yaml``, ``provenance.json``, ``checkpoints/`` (resumable, atomic), ``model.safetensors`` +
``model.json``, ``embedding.safetensors`` (PCL runs), ``log.csv``, ``tb/`` and ``result.json``.
"""

from __future__ import annotations

from pcl.train.catalog import Catalog, Cell, Experiment, load_catalog
from pcl.train.schedules import Schedule

__all__ = ["Catalog", "Cell", "Experiment", "Schedule", "load_catalog"]
# The trainer (``pcl.train.trainer``: Trainer, TrainOptions, run_experiment) is imported on use:
# loading the catalog (the workflow does it at parse time) should not pay for torch.optim.
