"""Registry of every dataset the paper uses: where to download it, how to check it, where it goes.

Why a registry: URLs, file names, checksums and folder layouts are facts that several commands
(fetch, verify, prepare, the Snakefile) need; keeping them in one frozen table means a moved
mirror or a new checksum is a one-line change and nothing downstream guesses paths.

Checksums: DIV2K archives carry the md5s published with the dataset (and the one size known to
us).  ``DIV2K_valid_LR_bicubic_X4.zip`` has no published checksum, and the benchmark mirrors are
rebuilt archives without one; for those the downloader records a sha256 on first download in a
lock file (trust on first use, see :mod:`pcl.data.lockfile`), and the benchmark *images* are in
any case verified by pixel content against ``resources/reference/benchmark_manifest.csv``
(:mod:`pcl.data.verify`), which is what matters for the numbers.

Layout after :func:`pcl.data.download.fetch_dataset` (``root`` is the data folder, ``data/`` by
default)::

    root/downloads/<archive>                  verified archives (kept, so re-installs are offline)
    root/benchmarks/<Dataset>/HR/*.png        Set5, Set14, B100, Urban100, Manga109
    root/DIV2K/DIV2K_train_HR/0001.png ...    DIV2K, as in the official archives
    root/DIV2K/DIV2K_train_LR_bicubic/X4/0001x4.png ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pcl.errors import PCLError

DIV2K_BASE = "http://data.vision.ee.ethz.ch/cvl/DIV2K/"
HF_BASE = "https://huggingface.co/datasets/eugenesiow/{repo}/resolve/main/data/{file}"

DatasetKind = Literal["train", "benchmark", "real"]


@dataclass(frozen=True)
class Archive:
    """One downloadable file.  ``urls`` are mirrors tried in order; checksums are optional.

    ``size`` is in bytes.  When neither ``md5`` nor ``sha256`` is known the downloader uses the
    trust-on-first-use lock file instead.  ``max_unpacked`` (bytes) and ``max_members`` cap its
    extraction; ``None`` derives them from the archive's size (:func:`pcl.data.extract.default_caps`).
    """

    filename: str
    urls: tuple[str, ...]
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    max_unpacked: int | None = None
    max_members: int | None = None


@dataclass(frozen=True)
class Install:
    """Which extracted files of one archive go where.

    ``glob`` is matched (``Path.glob``) inside the folder the archive was extracted into;
    ``dest`` is relative to the data root.  ``count`` is the number of images expected there
    (used to tell a complete install from a partial one).  With ``by_manifest`` only files whose
    pixel hash is in the dataset's manifest are installed, under their manifest names: needed for
    mirrors that pack HR and LR images together in an unknown layout (Manga109).
    """

    archive: str
    glob: str
    dest: str
    count: int
    by_manifest: bool = False


@dataclass(frozen=True)
class Dataset:
    """A dataset of the paper.

    ``hr_glob`` says where, after extraction, the HR images are (relative to the extraction
    folder); ``manifest_key`` is the ``dataset`` value of its rows in the benchmark manifest
    (``None`` for training data).  ``manual`` is the one-line instruction for placing the data by
    hand when no mirror can be reached.
    """

    name: str
    kind: DatasetKind
    archives: tuple[Archive, ...]
    hr_glob: str
    manifest_key: str | None
    notes: str
    installs: tuple[Install, ...] = field(default=())
    manual: str = ""

    def archive(self, filename: str) -> Archive:
        """The archive called ``filename`` (an install entry refers to archives by name)."""
        for archive in self.archives:
            if archive.filename == filename:
                return archive
        raise PCLError(f"dataset {self.name} has no archive {filename!r}; fix the registry in pcl/data/sources.py")


def benchmark_dest(name: str) -> str:
    """Canonical install folder of a benchmark, relative to the data root."""
    return f"benchmarks/{name}/HR"


def _hf_benchmark(name: str, repo: str, count: int, manifest_key: str, notes: str) -> Dataset:
    """A benchmark mirrored by eugenesiow on the Hugging Face hub as ``data/<repo>_HR.tar.gz``.

    The archive unpacks to ``<repo>_HR/*.png``; the recursive glob also accepts a flat archive.
    """
    filename = f"{repo}_HR.tar.gz"
    archive = Archive(filename, (HF_BASE.format(repo=repo, file=filename),))
    dest = benchmark_dest(name)
    return Dataset(
        name=name,
        kind="benchmark",
        archives=(archive,),
        hr_glob="**/*",
        manifest_key=manifest_key,
        notes=notes,
        installs=(Install(filename, "**/*", dest, count),),
        manual=f"put the {count} {name} HR images (PNG) into <root>/{dest}/",
    )


def _div2k() -> Dataset:
    """DIV2K (Agustsson & Timofte, NTIRE 2017): 800 train + 100 valid, HR and bicubic x4 LR."""
    archives = (
        Archive("DIV2K_train_HR.zip", (DIV2K_BASE + "DIV2K_train_HR.zip",), 3_530_603_713,
                md5="bdc2d9338d4e574fe81bf7d158758658"),
        Archive("DIV2K_valid_HR.zip", (DIV2K_BASE + "DIV2K_valid_HR.zip",),
                md5="9fcdda83005c5e5997799b69f955ff88"),
        Archive("DIV2K_train_LR_bicubic_X4.zip", (DIV2K_BASE + "DIV2K_train_LR_bicubic_X4.zip",),
                md5="76c43ec4155851901ebbe8339846d93d"),
        # No published checksum: recorded trust-on-first-use in config/checksums.lock.yaml.
        Archive("DIV2K_valid_LR_bicubic_X4.zip", (DIV2K_BASE + "DIV2K_valid_LR_bicubic_X4.zip",)),
    )
    installs = (
        Install("DIV2K_train_HR.zip", "DIV2K_train_HR/*.png", "DIV2K/DIV2K_train_HR", 800),
        Install("DIV2K_valid_HR.zip", "DIV2K_valid_HR/*.png", "DIV2K/DIV2K_valid_HR", 100),
        Install("DIV2K_train_LR_bicubic_X4.zip", "DIV2K_train_LR_bicubic/X4/*.png",
                "DIV2K/DIV2K_train_LR_bicubic/X4", 800),
        Install("DIV2K_valid_LR_bicubic_X4.zip", "DIV2K_valid_LR_bicubic/X4/*.png",
                "DIV2K/DIV2K_valid_LR_bicubic/X4", 100),
    )
    return Dataset(
        name="DIV2K",
        kind="train",
        archives=archives,
        hr_glob="DIV2K_*_HR/*.png",
        manifest_key=None,
        notes=("training set: images 0001-0800 train, 0801-0900 validation (--data_range 1-800/801-900); "
               "LR = the provided MATLAB bicubic x4"),
        installs=installs,
        manual=(f"download the four archives from {DIV2K_BASE} into <root>/downloads/ "
                "and run the fetch again"),
    )


def _manga109() -> Dataset:
    """Manga109 (Matsui et al.): the 109 SR test pages.

    The official distribution (http://www.manga109.org, and the gated hal-utokyo/Manga109 on the
    Hugging Face hub) requires an application and is for academic research only.  The mirror
    below is an unofficial upload (goodfellowliu/Manga109, ``Manga109.zip``, ~907 MB, 981 images:
    HR plus LR versions in a layout we do not rely on); only images whose pixels match the
    manifest are installed, so a wrong or altered mirror installs nothing wrong.
    """
    filename = "Manga109.zip"
    dest = benchmark_dest("Manga109")
    archive = Archive(filename, ("https://huggingface.co/datasets/goodfellowliu/Manga109/resolve/main/Manga109.zip",))
    return Dataset(
        name="Manga109",
        kind="benchmark",
        archives=(archive,),
        hr_glob="**/*",
        manifest_key="Manga109",
        notes=("unofficial mirror; Manga109 is licensed for academic research only (manga109.org). "
               "HR images selected from the archive by pixel hash against the manifest"),
        installs=(Install(filename, "**/*", dest, 109, by_manifest=True),),
        manual=(f"obtain Manga109 from http://www.manga109.org (academic use) and put the 109 HR "
                f"pages as PNG into <root>/{dest}/"),
    )


def _realsrset() -> Dataset:
    """RealSRSet (Zhang et al., BSRGAN, ICCV 2021): 20 real low-quality photos without ground truth,
    the usual set for Fig. 4-style no-reference comparisons.  It is distributed only as a folder of
    the BSRGAN repository (cszn/BSRGAN, ``testsets/RealSRSet``), not as an archive with a checksum,
    so it is placed by hand; ``pcl figures`` records the sha256 of every image it uses."""
    return Dataset(
        name="RealSRSet",
        kind="real",
        archives=(),
        hr_glob="*",
        manifest_key=None,
        notes="20 real LR photos, no ground truth (source: github.com/cszn/BSRGAN, testsets/RealSRSet)",
        manual="copy the 20 images of the BSRGAN repository's testsets/RealSRSet folder into <root>/RealSRSet/",
    )


_REGISTRY: dict[str, Dataset] = {
    ds.name: ds
    for ds in (
        _div2k(),
        _hf_benchmark("Set5", "Set5", 5, "Set5",
                      "5 images; also shipped in resources/benchmarks/Set5/HR"),
        _hf_benchmark("Set14", "Set14", 14, "Set14",
                      "14 images (bridge is single-channel); also shipped in resources/benchmarks/Set14/HR"),
        _hf_benchmark("B100", "BSD100", 100, "B100_subset68",
                      "BSD100 test split; the manifest pins only 68 of the 100 images"),
        _hf_benchmark("Urban100", "Urban100", 100, "Urban100", "100 urban scenes"),
        _manga109(),
        _realsrset(),
    )
}

_ALIASES = {"bsd100": "B100", "b100_subset68": "B100"}


def dataset_names() -> list[str]:
    """Names accepted by :func:`get_dataset` (without aliases), in registry order."""
    return list(_REGISTRY)


def benchmark_names() -> list[str]:
    """The five test sets, in the order of the paper's tables."""
    return [name for name, ds in _REGISTRY.items() if ds.kind == "benchmark"]


def get_dataset(name: str) -> Dataset:
    """Look a dataset up by name: case-insensitive, ``BSD100`` is an alias of ``B100``."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    for dataset_name, dataset in _REGISTRY.items():
        if dataset_name.lower() == key.lower():
            return dataset
    raise PCLError(f"unknown dataset {name!r}; known datasets: {', '.join(_REGISTRY)} (alias: BSD100 = B100)")
