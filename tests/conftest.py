"""Shared test fixtures: paths of the shipped data and of the optional ../shared folder, workflow
folders, and a TORCH_HOME with a stand-in AlexNet."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def _workflow_dir(path: Path) -> Path:
    """A fresh folder that runs the checkout's workflow, "from clean": links to the Snakefile,
    workflow/, resources/ and pcl/, and copies of config/ and of the committed study rows (tests
    edit them), so no pipeline output of the checkout is seen."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "resources", "pcl"):
        (path / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "config", path / "config")
    # The study's committed rows are part of a clean checkout (the embedded default reads them).
    study = REPO / "results" / "study"
    if study.is_dir():
        shutil.copytree(study, path / "results" / "study")
    return path


@pytest.fixture(scope="session")
def make_workdir():
    """``make_workdir(path)``: :func:`_workflow_dir` for folders of module-scoped fixtures too."""
    return _workflow_dir


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """A fresh workflow folder (:func:`_workflow_dir`) in the test's temporary folder."""
    return _workflow_dir(tmp_path)


@pytest.fixture(scope="session")
def set5_dir() -> Path:
    return REPO / "resources" / "benchmarks" / "Set5" / "HR"


@pytest.fixture(scope="session")
def set14_dir() -> Path:
    return REPO / "resources" / "benchmarks" / "Set14" / "HR"


# --- result rows: shared by the report tests -------------------------------------------------


def result_rows(
    tier: str,
    experiment: str,
    dataset: str,
    *,
    backbone: str = "rcan",
    method: str = "pcl",
    protocol: str = "matlab",
    psnr: float | list[float] = 30.0,
    ssim: float | list[float] = 0.9,
    n: int | None = None,
    **extra: object,
) -> list[dict]:
    """Synthetic per-image result rows of one set, images ``img000``, ``img001``...

    A scalar value is given to every image, a list one value per image (so a set mean is known
    by hand); ``n`` defaults to the length of the lists, else the benchmark's full size.  ``extra``
    holds optional columns (``lpips``, ``niqe``) the same way.
    """
    from pcl.names import DATASET_SIZES

    values = {"psnr": psnr, "ssim": ssim, **extra}
    lengths = {len(v) for v in values.values() if isinstance(v, (list, tuple))}
    if len(lengths) > 1:
        raise ValueError(f"value lists of different lengths: {sorted(lengths)}")
    if n is None:
        n = lengths.pop() if lengths else DATASET_SIZES[dataset]
    rows = []
    for i in range(n):
        row = dict(tier=tier, experiment=experiment, backbone=backbone, method=method, dataset=dataset,
                   image=f"img{i:03d}", scale=4, protocol=protocol, height=64, width=64, channels=3, seed=None,
                   run_id="test")
        row.update({k: v[i] if isinstance(v, (list, tuple)) else v for k, v in values.items()})
        rows.append(row)
    return rows


def write_results(root: Path, *groups: list[dict], source: bool = False):
    """Write each group of rows at its canonical path under ``root`` and read them all back."""
    from pcl.report.results import read_results, result_path, write_rows

    paths = []
    for rows in groups:
        r = rows[0]
        paths.append(write_rows(result_path(root, r["tier"], r["experiment"], r["protocol"], r["dataset"]), rows))
    return read_results(paths, source=source)


# --- a tiny training set: shared by the trainer tests ----------------------------------------


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory) -> Path:
    """Three 96x96 crops of shipped stand-in photos: enough for 12x12 LR patches, quick to prepare."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("train")
    for path in sorted((REPO / "resources" / "train_standin" / "SunHays80").glob("*.jpg"))[:3]:
        img = np.asarray(Image.open(path).convert("RGB"))
        Image.fromarray(img[100:196, 200:296]).save(folder / f"{path.stem}.png")
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """The prepared-data cache of one test module's trainings."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def _standin_alexnet(tmp_path_factory) -> Path:
    """One seeded random AlexNet under torchvision's real file name, written once per session: the
    state dict is 233 MB, and a copy per test filled the disk of a CI machine."""
    import torch
    import torchvision

    from pcl.weights import WEIGHTS

    path = tmp_path_factory.mktemp("alexnet") / WEIGHTS["alexnet"].file
    torch.manual_seed(3)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


@pytest.fixture()
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _standin_alexnet: Path) -> Iterator[Path]:
    """A TORCH_HOME holding the stand-in AlexNet (the genuine weights cannot be fetched offline, and
    LPIPS wiring does not depend on their values), as a hard link to the session's one file.

    A test may delete the file or replace it (unlink first); writing into it in place would change
    the shared file, so teardown fails the test that did."""
    from pcl.weights import WEIGHTS

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    path = WEIGHTS["alexnet"].path
    path.parent.mkdir(parents=True)
    before = _standin_alexnet.stat()
    try:
        path.hardlink_to(_standin_alexnet)
    except OSError:  # a temporary folder on another file system: copy instead
        shutil.copyfile(_standin_alexnet, path)
    yield tmp_path / "th"
    after = _standin_alexnet.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns), (
        "the test wrote into the shared stand-in AlexNet: unlink the file before replacing it")
