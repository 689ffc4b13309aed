"""Download, check and install the datasets of :mod:`pcl.data.sources` (``pcl data fetch``).

Why a module of its own: a dataset is more than its archives.  :func:`fetch_dataset` decides
which install folders are incomplete, fetches their archives (:mod:`pcl.data.fetch`: resume,
retries, mirrors, checksums, trust-on-first-use pins in :mod:`pcl.data.lockfile`), unpacks them
safely (:mod:`pcl.data.extract`, within caps), moves the images to their final folders under their
manifest names, and verifies benchmarks by pixel content (:mod:`pcl.data.verify`).  Unpacking and
installing run under the archive's download lock and before a first-seen checksum is pinned, so
a refused archive is never trusted and two processes never install the same folder at once.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pcl.atomic import make_temp_dir
from pcl.data.extract import default_caps, extract, replace_dir
from pcl.data.fetch import DownloadUnavailable, download, log
from pcl.data.images import ImageReadError, is_image_file, pixel_sha256
from pcl.data.lockfile import default_lock_file
from pcl.data.sources import Archive, Dataset, Install, get_dataset
from pcl.errors import PCLError


FetchStatus = Literal["installed", "present", "unavailable"]


@dataclass
class FetchResult:
    """Outcome of :func:`fetch_dataset`.  ``verification`` is the one-line content check (benchmarks)."""

    name: str
    status: FetchStatus
    reason: str
    paths: list[Path] = field(default_factory=list)
    verification: str | None = None
    verified: bool | None = None


def _image_count(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if is_image_file(p))


def _candidates(staging: Path, pattern: str) -> list[Path]:
    """Image files matched by ``pattern``, without macOS metadata (``__MACOSX/``, ``._*``)."""
    found = (p for p in staging.glob(pattern) if "__MACOSX" not in p.relative_to(staging).parts)
    return sorted((p for p in found if is_image_file(p)), key=lambda p: p.relative_to(staging).as_posix())


def _install_names(ds: Dataset, inst: Install, files: list[Path]) -> list[tuple[Path, str]]:
    """Choose the installed file name of each candidate.

    Benchmark images whose pixels are in the manifest are installed under their manifest name
    (mirrors name them differently); others keep their names.  With ``by_manifest`` only matching
    images are installed.
    """
    if ds.manifest_key is None:
        return [(p, p.name) for p in files]
    from pcl.data.verify import load_manifest  # verify imports sources only; kept local for clarity

    by_hash = {e.pixel_sha256: e.image for e in load_manifest(ds.manifest_key)}
    chosen: list[tuple[Path, str]] = []
    for path in files:
        try:
            name = by_hash.get(pixel_sha256(path))
        except ImageReadError:
            name = None
        if name is not None:
            chosen.append((path, name + path.suffix.lower()))
        elif not inst.by_manifest:
            chosen.append((path, path.name))
    return chosen


def _install(ds: Dataset, inst: Install, staging: Path, root: Path) -> Path:
    """Move the files of one install entry from the extraction folder to their final folder."""
    dest = root / inst.dest
    files = _candidates(staging, inst.glob)
    chosen = _install_names(ds, inst, files)
    if not chosen:
        raise PCLError(
            f"{inst.archive} holds no {'manifest ' if inst.by_manifest else ''}images matching {inst.glob!r}; "
            f"the mirror changed its layout: {ds.manual.replace('<root>', str(root))}"
        )
    seen: dict[str, Path] = {}
    for path, name in chosen:
        if name in seen:
            raise PCLError(f"{inst.archive}: {seen[name]} and {path} would both be installed as {name}; fix the glob in pcl/data/sources.py")
        seen[name] = path
    tmp = make_temp_dir(dest.parent, f".{dest.name}.install-")  # mode as mkdir (0755), not mkdtemp's 0700
    try:
        for path, name in chosen:
            shutil.move(str(path), str(tmp / name))
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if len(chosen) != inst.count:
        log.warning("%s: installed %d images into %s, expected %d", ds.name, len(chosen), dest, inst.count)
    return dest


def _unpack_install(ds: Dataset, archive: Archive, insts: list[Install], path: Path, root: Path) -> None:
    """Unpack a verified archive into a staging folder of this process and install its folders."""
    staging_root = path.parent / ".extracted"
    staging = staging_root / f"{archive.filename}.{os.getpid()}-{time.monotonic_ns()}"
    caps = default_caps(path, max_bytes=archive.max_unpacked, max_members=archive.max_members)
    try:
        extract(path, staging, caps=caps)
        for inst in insts:
            _install(ds, inst, staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging_root.rmdir()  # only when empty
        except OSError:
            pass


def _verify_line(ds: Dataset, root: Path) -> tuple[str | None, bool | None]:
    if ds.kind != "benchmark" or ds.manifest_key is None:
        return None, None
    from pcl.data.verify import verify_benchmark

    dest = root / ds.installs[0].dest
    try:
        report = verify_benchmark(dest, ds.name)
    except PCLError as exc:
        return str(exc), False
    return report.summary(), report.ok


def fetch_dataset(
    name: str | Dataset,
    root: Path,
    *,
    offline_ok: bool = False,
    progress: bool = True,
    lock_file: Path | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 30,
) -> FetchResult:
    """Download, extract and install a dataset under ``root``; see the layout in :mod:`pcl.data.sources`.

    ``status`` is ``present`` when every install folder already holds its image count,
    ``installed`` after a download/extraction, ``unavailable`` (only with ``offline_ok``) when a
    source cannot be reached: ``reason`` then says where to place the files by hand.  Benchmarks
    are verified by content afterwards; the one-line result is in ``verification``.
    ``lock_file`` defaults to the repository's ``config/checksums.lock.yaml``.
    """
    ds = name if isinstance(name, Dataset) else get_dataset(name)
    root = Path(root)
    lock_file = default_lock_file() if lock_file is None else Path(lock_file)
    if not ds.archives:  # placed by hand only (RealSRSet): present or the instruction
        folder = root / ds.name
        if _image_count(folder):
            return FetchResult(ds.name, "present", f"{_image_count(folder)} images in {folder}", [folder], None, None)
        manual = ds.manual.replace("<root>", str(root))
        if offline_ok:
            return FetchResult(ds.name, "unavailable", f"no download source; {manual}", [folder], None, None)
        raise PCLError(f"{ds.name} has no download source; {manual}")
    todo = [inst for inst in ds.installs if _image_count(root / inst.dest) != inst.count]
    paths = [root / inst.dest for inst in ds.installs]
    if not todo:
        line, ok = _verify_line(ds, root)
        return FetchResult(ds.name, "present", "all install folders hold their image count", paths, line, ok)

    downloads = root / "downloads"
    for filename in dict.fromkeys(inst.archive for inst in todo):
        archive = ds.archive(filename)
        insts = [inst for inst in todo if inst.archive == filename]
        try:
            # unpacked and installed under the archive's download lock, before its checksum is
            # pinned: a refused archive is never trusted, and two processes never install at once
            download(archive, downloads, retries=retries, backoff=backoff, timeout=timeout, progress=progress,
                     lock_file=lock_file, accept=lambda path, a=archive, i=insts: _unpack_install(ds, a, i, path, root))
        except DownloadUnavailable as exc:
            manual = ds.manual.replace("<root>", str(root))
            message = f"{exc}; or {manual}" if manual else str(exc)
            if offline_ok:
                log.warning("%s unavailable: %s", ds.name, message)
                return FetchResult(ds.name, "unavailable", message, paths)
            raise DownloadUnavailable(message) from None
    line, ok = _verify_line(ds, root)
    if line:
        (log.info if ok else log.warning)("%s", line)
    installed = ", ".join(inst.dest for inst in todo)
    return FetchResult(ds.name, "installed", f"installed {installed} under {root}", paths, line, ok)
