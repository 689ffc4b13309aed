"""Download, check and unpack the datasets of :mod:`pcl.data.sources`, with the standard library only.

Why not ``requests``/``wget``: the harness must run on clusters with nothing but Python, and the
behaviour that matters for multi-GB archives (resume, retry, checksum, atomic placement) is
small enough to own and test against a local server.

Guarantees of :func:`download`:

* a file at its final name has passed its checksum: bytes go to ``<file>.part`` and are renamed
  (``os.replace``) only after the md5/sha256, hashed while streaming, matches;
* an interrupted download resumes with an HTTP ``Range`` request (a server that answers 200
  instead of 206 is handled by starting over); connection errors, time-outs, 5xx answers and a
  connection cut mid-body are retried with exponential back-off, then the next mirror is tried;
* a checksum mismatch deletes the file and fetches it once more, then stops with an error that
  names the file, the expected and the actual checksum;
* archives without a published checksum are pinned *trust on first use*: their sha256 is
  written to a lock file (``config/checksums.lock.yaml``) on the first download and enforced on
  every later one, so a silently changed mirror is noticed;
* when no mirror can be reached the error is one line that says where to put the file by hand.

:func:`extract` refuses archive members that would land outside the target (absolute paths,
``..``, links pointing outside, device files) and makes the target appear atomically.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Literal

import yaml
from tqdm import tqdm

from pcl.data.images import ImageReadError, is_image_file, pixel_sha256
from pcl.data.sources import Archive, Dataset, Install, get_dataset
from pcl.atomic import atomic_write_text
from pcl.errors import PCLError
from pcl.resources import REPO_ROOT

log = logging.getLogger(__name__)

CHUNK = 1 << 16
USER_AGENT = "pcl-sr-harness/0.1 (python urllib)"
LOCK_HEADER = (
    "# Trust-on-first-use checksums of archives that have no published checksum.\n"
    "# Written by pcl.data.download on the first successful download of such an archive and\n"
    "# enforced on every later download.  If an upstream archive changed legitimately, delete its\n"
    "# entry (after checking the new file) and fetch again.\n"
)


class DownloadUnavailable(PCLError):
    """No mirror of an archive could be reached (offline, DNS, refused, 404, ...)."""


def default_lock_file() -> Path:
    """The repository's lock file of trust-on-first-use checksums."""
    return REPO_ROOT / "config" / "checksums.lock.yaml"


# --------------------------------------------------------------------------------------------
# lock file


def read_lock(lock_file: Path) -> dict[str, dict]:
    """Entries of the lock file, ``{archive filename: {sha256, size, url, recorded}}``."""
    lock_file = Path(lock_file)
    if not lock_file.is_file():
        return {}
    try:
        data = yaml.safe_load(lock_file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PCLError(f"lock file {lock_file} is not valid YAML ({exc}); fix it or delete it") from None
    entries = data.get("archives") if isinstance(data, dict) else None
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        raise PCLError(f"lock file {lock_file}: 'archives' must be a mapping; fix it or delete it")
    return entries


def record_lock(lock_file: Path, archive: Archive, sha256: str, size: int, url: str | None) -> None:
    """Pin ``archive`` to ``sha256`` in the lock file (rewritten atomically)."""
    entries = read_lock(lock_file)
    entries[archive.filename] = {
        "sha256": sha256,
        "size": int(size),
        "url": url,
        "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    body = yaml.safe_dump({"version": 1, "archives": entries}, sort_keys=True, default_flow_style=False)
    atomic_write_text(Path(lock_file), LOCK_HEADER + body)


# --------------------------------------------------------------------------------------------
# checksums


class _Hashes:
    """md5 and sha256 updated together: md5 for the published DIV2K sums, sha256 for the lock."""

    def __init__(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.md5.update(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)

    def update_from_file(self, path: Path) -> None:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                self.update(chunk)

    def digests(self) -> dict[str, str]:
        return {"md5": self.md5.hexdigest(), "sha256": self.sha256.hexdigest()}


def _hash_file(path: Path) -> _Hashes:
    hashes = _Hashes()
    hashes.update_from_file(path)
    return hashes


@dataclass(frozen=True)
class _Expected:
    algo: str
    digest: str
    source: str


def _expected_checksum(archive: Archive, lock_file: Path | None) -> _Expected | None:
    """The checksum a download must have: the registry's, else the lock file's, else none."""
    if archive.sha256:
        return _Expected("sha256", archive.sha256.lower(), "registry")
    if archive.md5:
        return _Expected("md5", archive.md5.lower(), "registry")
    if lock_file is not None:
        entry = read_lock(lock_file).get(archive.filename) or {}
        if entry.get("sha256"):
            return _Expected("sha256", str(entry["sha256"]).lower(), f"lock file {lock_file}")
    return None


def _check(archive: Archive, expected: _Expected | None, hashes: _Hashes) -> str | None:
    """``None`` when the bytes are right, else what is wrong ("expected ..., got ...")."""
    if archive.size is not None and hashes.size != archive.size:
        return f"expected {archive.size} bytes, got {hashes.size}"
    if expected is not None:
        actual = hashes.digests()[expected.algo]
        if actual != expected.digest:
            return f"expected {expected.algo} {expected.digest} ({expected.source}), got {actual}"
    return None


# --------------------------------------------------------------------------------------------
# HTTP


class _Transient(Exception):
    """Worth retrying the same URL (5xx, cut connection, bad Content-Range)."""


class _Permanent(Exception):
    """Retrying this URL is pointless (404, 403, name resolution failed): try the next mirror."""


_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, (_Transient, _Permanent)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` of a ``Content-Range`` header (``bytes 100-199/200`` or ``bytes */200``)."""
    match = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", header or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _fetch_once(url: str, part: Path, label: str, timeout: float, progress: bool) -> _Hashes:
    """One HTTP request that appends to (or restarts) ``part``; returns the hashes of the whole part."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == offset:  # the part is already complete (e.g. killed before the rename)
                return _hash_file(part)
            part.unlink(missing_ok=True)
            raise _Transient(f"HTTP 416 for a resume at byte {offset}; starting over") from None
        if exc.code in (408, 425, 429) or exc.code >= 500:
            raise _Transient(_describe(exc)) from None
        raise _Permanent(_describe(exc)) from None
    with response:
        status = response.status
        if offset and status == 200:
            log.info("%s: server ignored the Range request (200, not 206); restarting from byte 0", label)
            offset = 0
        elif status == 206:
            start, _ = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at byte {start} instead of {offset}; starting over")
        elif status != 200:
            raise _Permanent(f"unexpected HTTP status {status}")
        hashes = _Hashes()
        if offset:
            hashes.update_from_file(part)
        length = response.headers.get("Content-Length")
        remaining = int(length) if length and length.isdigit() else None
        total = offset + remaining if remaining is not None else None
        received = 0
        with open(part, "ab" if offset else "wb") as handle, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=label, disable=not progress, leave=False,
        ) as bar:
            while chunk := response.read(CHUNK):
                handle.write(chunk)
                hashes.update(chunk)
                bar.update(len(chunk))
                received += len(chunk)
    if remaining is not None and received < remaining:
        raise _Transient(f"connection closed after {offset + received} of {total} bytes")
    return hashes


def _fetch_url(url: str, part: Path, label: str, *, retries: int, backoff: float, timeout: float,
               progress: bool) -> _Hashes:
    """Fetch ``url`` into ``part`` with retries and exponential back-off; raise ``_Permanent`` at the end."""
    failures = 0
    while True:
        try:
            return _fetch_once(url, part, label, timeout, progress)
        except _Permanent:
            raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT) and not isinstance(exc, _NETWORK_ERRORS):
                raise PCLError(f"cannot write {part} ({exc.strerror}); free space or choose another data folder") from None
            if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, socket.gaierror):
                raise _Permanent(_describe(exc)) from None  # no DNS: offline, retrying will not help
            reason = _describe(exc)
        except (_Transient, http.client.HTTPException) as exc:
            reason = _describe(exc)
        failures += 1
        if failures > retries:
            raise _Permanent(f"{reason}; gave up after {failures} attempts")
        delay = backoff * 2 ** (failures - 1)
        log.warning("%s: %s; retry %d/%d in %.1f s", label, reason, failures, retries, delay)
        time.sleep(delay)


def _fetch_mirrors(archive: Archive, part: Path, dest: Path, **kwargs) -> tuple[str, _Hashes]:
    """Try every mirror in turn; raise :class:`DownloadUnavailable` when none works."""
    if not archive.urls:
        raise DownloadUnavailable(
            f"no download URL known for {archive.filename}; download it by hand and place it at {dest}"
        )
    failures: list[tuple[str, str]] = []
    for index, url in enumerate(archive.urls):
        if index:
            part.unlink(missing_ok=True)  # never splice bytes from two mirrors into one file
        try:
            return url, _fetch_url(url, part, archive.filename, **kwargs)
        except _Permanent as exc:
            failures.append((url, str(exc)))
            log.warning("%s: cannot download from %s (%s)", archive.filename, url, exc)
    url, reason = failures[0]
    others = f" and {len(failures) - 1} other mirror(s)" if len(failures) > 1 else ""
    raise DownloadUnavailable(
        f"cannot download {archive.filename} from {url}{others} ({reason}); "
        f"download it by hand and place it at {dest}"
    )


def download(
    archive: Archive,
    dest_dir: Path,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 30,
    progress: bool = True,
    lock_file: Path | None = None,
) -> Path:
    """Download ``archive`` into ``dest_dir`` and return the path of the verified file.

    An existing file with the right checksum is not fetched again.  ``lock_file`` enables trust
    on first use for archives without a known checksum (``None``: such archives are not checked).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / archive.filename
    part = dest_dir / f"{archive.filename}.part"
    expected = _expected_checksum(archive, lock_file)
    if expected is None and lock_file is None:
        log.warning("%s: no checksum known and no lock file given; the download is not verified", archive.filename)

    if dest.exists():
        hashes = _hash_file(dest)
        problem = _check(archive, expected, hashes)
        if problem is None:
            if expected is None and lock_file is not None:
                _pin(lock_file, archive, hashes, url=None)
            log.info("%s: already present and verified", dest)
            return dest
        log.warning("%s exists but %s; fetching it again", dest, problem)
        dest.unlink()

    kwargs = dict(retries=retries, backoff=backoff, timeout=timeout, progress=progress)
    problem = ""
    url = ""
    for attempt in (1, 2):
        url, hashes = _fetch_mirrors(archive, part, dest, **kwargs)
        problem = _check(archive, expected, hashes)
        if problem is None:
            os.replace(part, dest)
            if expected is None and lock_file is not None:
                _pin(lock_file, archive, hashes, url=url)
            log.info("%s: downloaded from %s (%d bytes, sha256 %s)", archive.filename, url, hashes.size,
                     hashes.digests()["sha256"])
            return dest
        part.unlink(missing_ok=True)
        log.warning("%s from %s: checksum mismatch (%s); %s", archive.filename, url, problem,
                    "deleted, fetching it again" if attempt == 1 else "deleted")
    hint = (f"if the upstream file changed legitimately, delete its entry in {lock_file} and fetch again"
            if expected is not None and expected.source.startswith("lock file") else
            f"the mirror serves a different file; download it by hand from a trusted source to {dest}")
    raise PCLError(f"checksum mismatch for {archive.filename} downloaded twice from {url}: {problem}; {hint}")


def _pin(lock_file: Path, archive: Archive, hashes: _Hashes, url: str | None) -> None:
    """Record a first-seen checksum in the lock file and say so in the log."""
    sha = hashes.digests()["sha256"]
    record_lock(lock_file, archive, sha, hashes.size, url)
    log.warning(
        "%s has no published checksum: recorded sha256 %s (%d bytes) in %s (trust on first use); "
        "later downloads must match it", archive.filename, sha, hashes.size, lock_file,
    )


# --------------------------------------------------------------------------------------------
# extraction


def _archive_kind(path: Path) -> Literal["zip", "tar"]:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise PCLError(f"{path} is neither a zip nor a tar archive; delete it and fetch it again")


def _member_path(archive: Path, name: str) -> PurePosixPath:
    """Relative, normalised path of a member; refuses absolute paths and ``..``."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise PCLError(f"refusing to extract {archive}: member {name!r} has an absolute path")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PCLError(f"refusing to extract {archive}: member {name!r} contains '..' and would land outside the target")
    if not parts:
        raise PCLError(f"refusing to extract {archive}: member {name!r} has an empty path")
    return PurePosixPath(*parts)


def _inside(relative: str) -> bool:
    """True when a normalised relative path stays inside the extraction folder."""
    norm = os.path.normpath(relative)
    return not (os.path.isabs(norm) or norm == ".." or norm.startswith("../"))


def _check_symlink(archive: Path, name: str, member: PurePosixPath, target: str) -> None:
    if target.startswith("/") or not _inside(str(member.parent / target)):
        raise PCLError(f"refusing to extract {archive}: member {name!r} is a symlink to {target!r}, outside the target")


def _check_tar_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    for m in members:
        rel = _member_path(archive, m.name)
        if m.issym():
            _check_symlink(archive, m.name, rel, m.linkname)
        elif m.islnk():
            if m.linkname.startswith("/") or not _inside(m.linkname):
                raise PCLError(f"refusing to extract {archive}: member {m.name!r} is a hard link to {m.linkname!r}, outside the target")
        elif m.ischr() or m.isblk() or m.isfifo():
            raise PCLError(f"refusing to extract {archive}: member {m.name!r} is a device or FIFO")
        elif not (m.isfile() or m.isdir()):
            raise PCLError(f"refusing to extract {archive}: member {m.name!r} has unsupported type {m.type!r}")


def _extract_tar(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        _check_tar_members(archive, members)
        # The 'data' filter repeats the checks above inside tarfile (defence in depth) and drops
        # ownership / special permission bits.
        tf.extractall(into, members=members, filter="data")


def _extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        links: list[tuple[PurePosixPath, str]] = []
        plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in infos:
            rel = _member_path(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", "replace")
                _check_symlink(archive, info.filename, rel, target)
                links.append((rel, target))
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                raise PCLError(f"refusing to extract {archive}: member {info.filename!r} is a device or FIFO")
            else:
                plan.append((info, rel))
        for info, rel in plan:
            out = into.joinpath(*rel.parts)
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        for rel, target in links:
            out = into.joinpath(*rel.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, out)


def _replace_dir(new: Path, target: Path) -> None:
    """Put the finished folder ``new`` at ``target`` by renames (same file system)."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is None:
        return
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def extract(archive_path: Path, target_dir: Path) -> list[Path]:
    """Safely unpack a .zip or .tar(.gz/.tgz/...) into ``target_dir``; return the files, sorted.

    The archive is unpacked into a temporary folder beside ``target_dir`` which is then renamed
    into place (an existing ``target_dir`` is replaced), so the target is either complete or
    absent.  Unsafe members raise :class:`PCLError` naming the member; nothing is written
    outside the temporary folder, which is removed.
    """
    archive_path, target_dir = Path(archive_path), Path(target_dir)
    if not archive_path.is_file():
        raise PCLError(f"archive {archive_path} does not exist; download it first")
    kind = _archive_kind(archive_path)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.extract-", dir=target_dir.parent))
    try:
        try:
            (_extract_zip if kind == "zip" else _extract_tar)(archive_path, tmp)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise PCLError(
                f"cannot extract {archive_path} ({type(exc).__name__}: {exc}); the archive is damaged or unsafe: "
                "delete it and fetch it again"
            ) from None
        _replace_dir(tmp, target_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(p for p in target_dir.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# datasets


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
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.install-", dir=dest.parent))
    try:
        for path, name in chosen:
            shutil.move(str(path), str(tmp / name))
        _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if len(chosen) != inst.count:
        log.warning("%s: installed %d images into %s, expected %d", ds.name, len(chosen), dest, inst.count)
    return dest


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
    todo = [inst for inst in ds.installs if _image_count(root / inst.dest) != inst.count]
    paths = [root / inst.dest for inst in ds.installs]
    if not todo:
        line, ok = _verify_line(ds, root)
        return FetchResult(ds.name, "present", "all install folders hold their image count", paths, line, ok)

    downloads = root / "downloads"
    archives: dict[str, Path] = {}
    for filename in dict.fromkeys(inst.archive for inst in todo):
        try:
            archives[filename] = download(
                ds.archive(filename), downloads, retries=retries, backoff=backoff, timeout=timeout,
                progress=progress, lock_file=lock_file,
            )
        except DownloadUnavailable as exc:
            manual = ds.manual.replace("<root>", str(root))
            message = f"{exc}; or {manual}" if manual else str(exc)
            if offline_ok:
                log.warning("%s unavailable: %s", ds.name, message)
                return FetchResult(ds.name, "unavailable", message, paths)
            raise DownloadUnavailable(message) from None

    staging_root = downloads / ".extracted"
    staged: dict[str, Path] = {}
    try:
        for inst in todo:
            if inst.archive not in staged:
                staging = staging_root / inst.archive
                extract(archives[inst.archive], staging)
                staged[inst.archive] = staging
            _install(ds, inst, staged[inst.archive], root)
    finally:
        for staging in staged.values():
            shutil.rmtree(staging, ignore_errors=True)
        if staging_root.is_dir() and not any(staging_root.iterdir()):
            staging_root.rmdir()
    line, ok = _verify_line(ds, root)
    if line:
        (log.info if ok else log.warning)("%s", line)
    installed = ", ".join(inst.dest for inst in todo)
    return FetchResult(ds.name, "installed", f"installed {installed} under {root}", paths, line, ok)
