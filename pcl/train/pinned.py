"""A committed run (weights and records) installed as a run directory, after a hash check.

Why: the study's grid was fine-tuned from one EDSR-S baseline. Re-training that baseline on
another CPU gives other weights (the mini tier differs by up to 0.08 dB between machines), and
changing the mini tier's recipe would change it everywhere. So the study's starting weights are
committed (resources/study_baseline, 0.9 MB) with their sha256 and the run identity they were
trained under; a study tier whose baseline has that identity starts from them, on any machine.

The run identity is :func:`pcl.train.config.run_identity` of the resolved baseline config with
the tier's name blanked, so a change to the recipe, data, budget or seed of the study's baseline
makes the workflow train it instead of installing weights that no longer fit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pcl.errors import PCLError
from pcl.hashing import sha256_file

#: The files of a run directory that are installed (weights first checked).
RUN_FILES = ("model.safetensors", "model.json", "result.json")
PIN_FILE = "PINNED.json"


def read_pin(src: Path) -> dict:
    """{'sha256': ..., 'identity': ...} of a committed run (``<src>/PINNED.json``)."""
    path = Path(src) / PIN_FILE
    try:
        pin = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PCLError(f"{path}: missing; restore it with `git checkout -- {src}`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise PCLError(f"{path}: unreadable ({exc.__class__.__name__}); restore it with `git checkout -- {src}`") from None
    if not isinstance(pin, dict) or not {"sha256", "identity"} <= set(pin):
        raise PCLError(f"{path}: needs keys sha256 and identity; restore it with `git checkout -- {src}`")
    return pin


def install_run(src: Path, dst: Path, sha256: str) -> Path:
    """Copy the committed run ``src`` into the run directory ``dst`` once its weights match ``sha256``.

    The weights are checked before anything is written, and the files are copied under temporary
    names and renamed, the weights last, so an interrupted install leaves no complete-looking run.
    """
    src, dst = Path(src), Path(dst)
    weights = src / RUN_FILES[0]
    if not weights.is_file():
        raise PCLError(f"{weights}: missing; restore it with `git checkout -- {src}` (or set study.baseline to null to train it)")
    digest = sha256_file(weights)
    if digest != sha256:
        raise PCLError(f"{weights}: sha256 {digest[:12]}... is not the pinned {sha256[:12]}...; "
                       f"restore it with `git checkout -- {weights}`")
    try:
        recorded = json.loads((src / "model.json").read_text(encoding="utf-8")).get("sha256")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise PCLError(f"{src / 'model.json'}: unreadable ({exc.__class__.__name__}); restore it with `git checkout -- {src}`") from None
    if recorded != sha256:
        raise PCLError(f"{src / 'model.json'}: records sha256 {str(recorded)[:12]}..., not the pinned {sha256[:12]}...")
    dst.mkdir(parents=True, exist_ok=True)
    for name in (*RUN_FILES[1:], RUN_FILES[0]):
        if (src / name).is_file():
            tmp = dst / f".{name}.installing"
            shutil.copyfile(src / name, tmp)
            tmp.replace(dst / name)
    if sha256_file(dst / RUN_FILES[0]) != sha256:
        (dst / RUN_FILES[0]).unlink()
        raise PCLError(f"{dst / RUN_FILES[0]}: the copy does not match sha256 {sha256[:12]}... (disk full or failing?)")
    return dst
