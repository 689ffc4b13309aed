"""The files that say what a run is and where it came from: ``config.yaml`` and ``provenance.json``.

Why written before the first iteration: a run that is killed or fails still documents its
resolved settings (with the model and method configs the catalog left implicit), the machine and
the code it ran on, and the data it read (the prepared set's content hash), so that any number it
produced leads back to its inputs.  The same facts, abridged, go into every weights sidecar.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Mapping

from pcl.atomic import atomic_write_text
from pcl.device import device_description
from pcl.provenance import code_provenance
from pcl.train.config import TrainOptions
from pcl.train.data import PreparedData
from pcl.train.runtime import Runtime

#: Provenance keys repeated in the sidecar of every weights file a run writes.
_SIDECAR_KEYS = ("git", "device", "precision", "data_manifest_sha256", "config_identity", "init", "created")

PRECISION_POLICY = ("SR network and embedding passes under the run's precision (autocast when bf16/fp16); "
                    "PCL samples, similarities, L1 and contrastive losses always in float32")


def run_provenance(*, runtime: Runtime, options: TrainOptions, data: PreparedData | None, init: str, identity: str,
                   embedding_from: str | None = None) -> dict[str, Any]:
    """``provenance.json``: code, packages, machine, data, initial weights, command."""
    code = code_provenance()
    prov = {
        "git": code["git"],
        "packages": code["packages"],
        "device": device_description(runtime.device),
        "precision": runtime.precision,
        "precision_policy": PRECISION_POLICY,
        "channels_last": runtime.channels_last,
        "deterministic": runtime.deterministic,
        "world_size": runtime.dist.world_size,
        "host": socket.gethostname(),
        "data_manifest_sha256": data.content_sha256 if data is not None else None,
        "data_manifest": str(data.root / "manifest.json") if data is not None else None,
        "data_images": len(data.images) if data is not None else 0,
        "init": init,
        "config_identity": identity,
        "command": list(options.command),
        "created": code["created"],
    }
    if embedding_from:
        prov["embedding_from"] = embedding_from
    return prov


def sidecar_provenance(config: Mapping[str, Any], provenance: Mapping[str, Any],
                       extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The provenance block of a weights file's sidecar (model, best, embedding)."""
    return {"experiment": config["experiment"], "tier": config["tier"], "method": config["method"],
            **{k: provenance[k] for k in _SIDECAR_KEYS if k in provenance}, **(extra or {})}


def write_run_files(run_dir: Path, config: Mapping[str, Any], *, model_config: Mapping[str, Any],
                    method_config: Mapping[str, Any] | None, runtime: Mapping[str, Any], identity: str,
                    provenance: Mapping[str, Any]) -> None:
    """``config.yaml`` (the resolved settings with the model, method and runtime blocks) and
    ``provenance.json``."""
    import yaml

    resolved = dict(config)
    resolved["model_config"] = model_config
    if method_config is not None:
        resolved["method_config"] = method_config
    resolved["runtime"] = dict(runtime)
    resolved["config_identity"] = identity
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None))
    atomic_write_text(run_dir / "provenance.json", json.dumps(provenance, indent=2) + "\n")
