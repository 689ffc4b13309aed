"""Fetching one file over HTTP(S) into place, verified, with the standard library only.

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
  written to the lock file (:mod:`pcl.data.lockfile`) on the first download and enforced on
  every later one, so a silently changed mirror is noticed;
* when no mirror can be reached the error is one line that says where to put the file by hand.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from pcl.data.lockfile import pinned_sha256, record_lock
from pcl.data.sources import Archive
from pcl.errors import PCLError

#: The downloader's log: one name for fetching, extraction and installation alike, which is the
#: name its log lines carry and the logger callers attach filters to.
log = logging.getLogger("pcl.data.download")

CHUNK = 1 << 16
USER_AGENT = "pcl-sr-harness/0.1 (python urllib)"


class DownloadUnavailable(PCLError):
    """No mirror of an archive could be reached (offline, DNS, refused, 404, ...)."""


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
        pinned = pinned_sha256(lock_file, archive.filename)
        if pinned:
            return _Expected("sha256", pinned, f"lock file {lock_file}")
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
