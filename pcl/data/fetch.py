"""Fetching one file over HTTP(S) into place, verified, with the standard library only.

Why not ``requests``/``wget``: the harness must run on clusters with nothing but Python, and the
behaviour that matters for multi-GB archives (resume, retry, checksum, atomic placement) is
small enough to own and test against a local server.

Guarantees of :func:`download`:

* a file at its final name has passed its checksum: bytes go to ``<file>.part`` and are renamed
  (``os.replace``) only after the md5/sha256, hashed while streaming, matches;
* an interrupted download resumes only when the server can prove the file did not change: the
  ``ETag`` (strong) or ``Last-Modified`` of the first answer is stored beside the part file in
  ``<file>.part.json`` (``{"url", "etag", "last_modified"}``) and sent back as ``If-Range`` with
  the ``Range`` request.  Without a stored validator, or when the server answers 200 instead of
  206, the download starts over from byte 0, so old and new bytes are never spliced together;
  connection errors, time-outs, 5xx answers and a connection cut mid-body are retried with
  exponential back-off, then the next mirror is tried;
* one archive is fetched by one process at a time (an flock per archive in its folder); a second
  process waits, then finds the finished file and verifies it;
* a checksum mismatch deletes the file and fetches it once more, then stops with an error that
  names the file, the expected and the actual checksum;
* archives without a published checksum are pinned *trust on first use*: their sha256 is
  written to the lock file (:mod:`pcl.data.lockfile`) on the first download and enforced on
  every later one, so a silently changed mirror is noticed.  The pin is written only after the
  caller's ``accept`` check (the safe extraction) passed, so a refused archive is never trusted;
* when no mirror can be reached the error is one line that says where to put the file by hand.
"""

from __future__ import annotations

import errno
import http.client
import os
import socket
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pcl.data.filelock import exclusive
from pcl.data.http_part import (
    NETWORK_ERRORS, Hashes, Permanent, Transient, describe, discard_part, fetch_once, hash_file, log,
    validator_file,
)
from pcl.data.lockfile import pinned_sha256, record_lock
from pcl.data.sources import Archive
from pcl.errors import PCLError

class DownloadUnavailable(PCLError):
    """No mirror of an archive could be reached (offline, DNS, refused, 404, ...)."""


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


def _check(archive: Archive, expected: _Expected | None, hashes: Hashes) -> str | None:
    """``None`` when the bytes are right, else what is wrong ("expected ..., got ...")."""
    if archive.size is not None and hashes.size != archive.size:
        return f"expected {archive.size} bytes, got {hashes.size}"
    if expected is not None:
        actual = hashes.digests()[expected.algo]
        if actual != expected.digest:
            return f"expected {expected.algo} {expected.digest} ({expected.source}), got {actual}"
    return None


def _fetch_url(url: str, part: Path, label: str, *, retries: int, backoff: float, timeout: float,
               progress: bool) -> Hashes:
    """Fetch ``url`` into ``part`` with retries and exponential back-off; raise ``Permanent`` at the end."""
    failures = 0
    while True:
        try:
            return fetch_once(url, part, label, timeout, progress)
        except Permanent:
            raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT) and not isinstance(exc, NETWORK_ERRORS):
                raise PCLError(f"cannot write {part} ({exc.strerror}); free space or choose another data folder") from None
            if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, socket.gaierror):
                raise Permanent(describe(exc)) from None  # no DNS: offline, retrying will not help
            reason = describe(exc)
        except (Transient, http.client.HTTPException) as exc:
            reason = describe(exc)
        failures += 1
        if failures > retries:
            raise Permanent(f"{reason}; gave up after {failures} attempts")
        delay = backoff * 2 ** (failures - 1)
        log.warning("%s: %s; retry %d/%d in %.1f s", label, reason, failures, retries, delay)
        time.sleep(delay)


def _fetch_mirrors(archive: Archive, part: Path, dest: Path, **kwargs) -> tuple[str, Hashes]:
    """Try every mirror in turn; raise :class:`DownloadUnavailable` when none works."""
    if not archive.urls:
        raise DownloadUnavailable(
            f"no download URL known for {archive.filename}; download it by hand and place it at {dest}"
        )
    failures: list[tuple[str, str]] = []
    for index, url in enumerate(archive.urls):
        if index:
            discard_part(part)  # never splice bytes from two mirrors into one file
        try:
            return url, _fetch_url(url, part, archive.filename, **kwargs)
        except Permanent as exc:
            failures.append((url, str(exc)))
            log.warning("%s: cannot download from %s (%s)", archive.filename, url, exc)
    url, reason = failures[0]
    others = f" and {len(failures) - 1} other mirror(s)" if len(failures) > 1 else ""
    raise DownloadUnavailable(
        f"cannot download {archive.filename} from {url}{others} ({reason}); "
        f"download it by hand and place it at {dest}"
    )


#: Checks the caller runs on a verified file before it is trusted (pinned), e.g. safe extraction.
Accept = Callable[[Path], None]


def download(
    archive: Archive,
    dest_dir: Path,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 30,
    progress: bool = True,
    lock_file: Path | None = None,
    accept: Accept | None = None,
) -> Path:
    """Download ``archive`` into ``dest_dir`` and return the path of the verified file.

    An existing file with the right checksum is not fetched again.  ``lock_file`` enables trust
    on first use for archives without a known checksum (``None``: such archives are not checked).
    ``accept(path)`` runs on the verified file before its checksum is pinned; when it raises,
    nothing is pinned.  The whole call holds an flock per archive, so concurrent calls for one
    archive run one after the other.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(dest_dir / f".{archive.filename}.lock"):
        return _download_locked(archive, dest_dir, lock_file, accept,
                                dict(retries=retries, backoff=backoff, timeout=timeout, progress=progress))


def _download_locked(archive: Archive, dest_dir: Path, lock_file: Path | None, accept: Accept | None,
                     kwargs: dict) -> Path:
    dest = dest_dir / archive.filename
    part = dest_dir / f"{archive.filename}.part"
    expected = _expected_checksum(archive, lock_file)  # read under the lock: a waiter sees the first's pin
    if expected is None and lock_file is None:
        log.warning("%s: no checksum known and no lock file given; the download is not verified", archive.filename)

    if dest.exists():
        hashes = hash_file(dest)
        problem = _check(archive, expected, hashes)
        if problem is None:
            _accept_and_pin(archive, dest, hashes, expected, lock_file, accept, url=None)
            log.info("%s: already present and verified", dest)
            return dest
        log.warning("%s exists but %s; fetching it again", dest, problem)
        dest.unlink()

    problem = ""
    url = ""
    for attempt in (1, 2):
        url, hashes = _fetch_mirrors(archive, part, dest, **kwargs)
        problem = _check(archive, expected, hashes)
        if problem is None:
            os.replace(part, dest)
            validator_file(part).unlink(missing_ok=True)
            _accept_and_pin(archive, dest, hashes, expected, lock_file, accept, url=url)
            log.info("%s: downloaded from %s (%d bytes, sha256 %s)", archive.filename, url, hashes.size,
                     hashes.digests()["sha256"])
            return dest
        discard_part(part)
        log.warning("%s from %s: checksum mismatch (%s); %s", archive.filename, url, problem,
                    "deleted, fetching it again" if attempt == 1 else "deleted")
    hint = (f"if the upstream file changed legitimately, delete its entry in {lock_file} and fetch again"
            if expected is not None and expected.source.startswith("lock file") else
            f"the mirror serves a different file; download it by hand from a trusted source to {dest}")
    raise PCLError(f"checksum mismatch for {archive.filename} downloaded twice from {url}: {problem}; {hint}")


def _accept_and_pin(archive: Archive, dest: Path, hashes: Hashes, expected: _Expected | None,
                    lock_file: Path | None, accept: Accept | None, url: str | None) -> None:
    """Run the caller's check, then pin a first-seen checksum (never for a refused file)."""
    if accept is not None:
        accept(dest)
    if expected is None and lock_file is not None:
        _pin(lock_file, archive, hashes, url=url)


def _pin(lock_file: Path, archive: Archive, hashes: Hashes, url: str | None) -> None:
    """Record a first-seen checksum in the lock file and say so in the log."""
    sha = hashes.digests()["sha256"]
    record_lock(lock_file, archive, sha, hashes.size, url)
    log.warning(
        "%s has no published checksum: recorded sha256 %s (%d bytes) in %s (trust on first use); "
        "later downloads must match it", archive.filename, sha, hashes.size, lock_file,
    )
