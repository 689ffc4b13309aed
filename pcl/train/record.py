"""The files that say what a run is and where it came from: ``config.yaml`` and ``provenance.json``.

Why written before the first iteration: a run that is killed or fails still documents its
resolved settings (with the model and method configs the catalog left implicit), the machine and
the code it ran on, and the data it read (the prepared set's content hash), so that any number it
produced leads back to its inputs.  The same facts, abridged, go into every weights sidecar.

Reading them back (``read_result``, ``check_run_record``) happens before a session writes
anything: a damaged file is refused with one line naming it and what to do, and left as it is
(it may be the only copy of what a person needs to diagnose the damage).  ``config.yaml`` and
``provenance.json`` are rewritten by every session, but a file that no longer parses says that
something other than the trainer wrote into the run directory, which a person should look at.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Mapping

from pcl.atomic import atomic_write_text
from pcl.errors import PCLError
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



def result_record(config: Mapping[str, Any], *, semantics: str | None, done: int, wall: float, sessions: int,
                  final: Mapping[str, Any] | None, best: Mapping[str, Any], model: str, model_sha256: str,
                  embedding: str | None, data_sha256: str | None, identity: str,
                  provenance: Mapping[str, Any]) -> dict[str, Any]:
    """``result.json`` of a finished run: what it trained, how long, how well, and its files."""
    return {
        "experiment": config["experiment"],
        "tier": config["tier"],
        "backbone": config["backbone"],
        "method": config["method"],
        "semantics": semantics,
        "cells": config.get("cells", []),
        "iterations": done,
        "complete": True,
        "wall_seconds": round(wall, 3),
        # over every session, validation and checkpointing included: what a user waits for
        "it_per_s": round(done / wall, 3) if wall > 0 else None,
        "sessions": sessions,
        "seed": config["seed"],
        "validation": final,
        "best": best,
        "model": model,
        "model_sha256": model_sha256,
        "embedding": embedding,
        "data_manifest_sha256": data_sha256,
        "config_identity": identity,
        "provenance": provenance,
    }

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _damaged(path: Path, why: str, todo: str) -> PCLError:
    return PCLError(f"{path} is damaged ({why}); {todo}")


def read_result(path: Path, last: Path) -> dict[str, Any] | None:
    """``result.json`` of a finished run (None when absent); PCLError when it is not the trainer's.

    It is refused rather than rewritten: a finished run is left alone, and only a person can tell
    whether the run behind a damaged result should be finished again."""
    if not path.is_file():
        return None
    todo = (f"delete it to resume from {last} (the run is finished again from that checkpoint and the file rewritten)"
            if last.is_file() else "delete it, or move the run directory aside, and rerun (there is no checkpoint "
            "to finish from, so the run trains again)")
    data = _json_object(path, todo)
    if not isinstance(data.get("config_identity"), str) or not isinstance(data.get("iterations"), int):
        raise _damaged(path, "no config_identity text or no integer iterations", todo)
    return data


def _json_object(path: Path, todo: str) -> dict:
    """``path`` parsed as a JSON object, or the one-line damaged-file error saying ``todo``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, f"not JSON: {_first_line(exc)}", todo) from None
    if not isinstance(data, dict):
        raise _damaged(path, f"a JSON {type(data).__name__}, not an object", todo)
    return data


def check_run_record(run_dir: Path, last: Path) -> None:
    """Refuse a run directory whose ``config.yaml`` or ``provenance.json`` no longer parses."""
    import yaml

    todo = (f"the trainer rewrites it at every start: delete it (or move the run directory aside) to resume from {last}"
            if last.is_file() else "delete it (or move the run directory aside) and rerun")
    config = run_dir / "config.yaml"
    if config.is_file():
        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise _damaged(config, f"not YAML{where}: {_first_line(exc)}", todo) from None
        if not isinstance(data, dict) or not isinstance(data.get("config_identity"), str):
            raise _damaged(config, "not a mapping with the run's config_identity", todo)
    provenance = run_dir / "provenance.json"
    if provenance.is_file():
        _json_object(provenance, todo)
