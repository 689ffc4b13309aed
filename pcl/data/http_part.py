"""One HTTP request into a ``.part`` file, and the checksums hashed while it streams.

Why a module of its own: resuming is where downloads go wrong.  A ``Range`` request is only
safe when the server proves that the bytes already on disk belong to the same file, which is
what the stored ``ETag``/``Last-Modified`` and ``If-Range`` do here; everything else (retries,
mirrors, checksums, pins) lives in :mod:`pcl.data.fetch`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from pcl.atomic import atomic_write_text

#: The downloader's log: one name for fetching, extraction and installation alike, which is the
#: name its log lines carry and the logger callers attach filters to (re-exported by fetch).
log = logging.getLogger("pcl.data.download")

CHUNK = 1 << 16
USER_AGENT = "pcl-sr-harness/0.1 (python urllib)"


# --------------------------------------------------------------------------------------------
# checksums


class Hashes:
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


def hash_file(path: Path) -> Hashes:
    hashes = Hashes()
    hashes.update_from_file(path)
    return hashes


# --------------------------------------------------------------------------------------------
# HTTP


class Transient(Exception):
    """Worth retrying the same URL (5xx, cut connection, bad Content-Range)."""


class Permanent(Exception):
    """Retrying this URL is pointless (404, 403, name resolution failed): try the next mirror."""


NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout)


def describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, (Transient, Permanent)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def content_range(header: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` of a ``Content-Range`` header (``bytes 100-199/200`` or ``bytes */200``)."""
    match = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", header or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def validator_file(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def discard_part(part: Path) -> None:
    """Remove a partial download and its stored validator (the next request starts at byte 0)."""
    part.unlink(missing_ok=True)
    validator_file(part).unlink(missing_ok=True)


def _save_validator(part: Path, url: str, headers) -> None:
    """Store the answer's strong ETag / Last-Modified beside ``part`` (or none, so no resume)."""
    etag = headers.get("ETag")
    if etag and etag.strip().startswith("W/"):
        etag = None  # a weak ETag may not be used in If-Range (RFC 9110, 13.1.5)
    modified = headers.get("Last-Modified")
    meta = validator_file(part)
    if not etag and not modified:
        meta.unlink(missing_ok=True)
        return
    atomic_write_text(meta, json.dumps({"url": url, "etag": etag, "last_modified": modified}) + "\n")


def _stored_validator(part: Path, url: str) -> tuple[str, str | None] | None:
    """``(If-Range value, ETag)`` stored for ``part`` from ``url``, or None when resuming is unsafe."""
    try:
        meta = json.loads(validator_file(part).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("url") != url:
        return None
    etag, modified = meta.get("etag"), meta.get("last_modified")
    if isinstance(etag, str) and etag:
        return etag, etag
    if isinstance(modified, str) and modified:
        return modified, None
    return None


def _resume_offset(url: str, part: Path, label: str) -> tuple[int, dict[str, str], str | None]:
    """Bytes already in ``part`` that may be kept, the headers to ask for the rest, the stored ETag."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    offset = part.stat().st_size if part.exists() else 0
    if not offset:
        return 0, headers, None
    validator = _stored_validator(part, url)
    if validator is None:
        log.info("%s: the partial download has no stored ETag/Last-Modified; starting over from byte 0", label)
        discard_part(part)
        return 0, headers, None
    headers["Range"] = f"bytes={offset}-"
    headers["If-Range"] = validator[0]
    return offset, headers, validator[1]


def _open(url: str, part: Path, offset: int, headers: dict[str, str], timeout: float):
    """The response, or ``None`` when a 416 says the part is already complete."""
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            _, total = content_range(exc.headers.get("Content-Range"))
            if total == offset:  # the part is already complete (e.g. killed before the rename)
                return None
            discard_part(part)
            raise Transient(f"HTTP 416 for a resume at byte {offset}; starting over") from None
        if exc.code in (408, 425, 429) or exc.code >= 500:
            raise Transient(describe(exc)) from None
        raise Permanent(describe(exc)) from None


def _accepted_offset(response, part: Path, offset: int, etag: str | None, label: str) -> int:
    """Where the body starts in ``part``: ``offset`` for a matching 206, 0 for a full answer."""
    status = response.status
    if status == 200:
        if offset:
            log.info("%s: the server sent the whole file (200, not 206): the file changed or the server "
                     "ignores ranges; restarting from byte 0", label)
        return 0
    if status != 206:
        raise Permanent(f"unexpected HTTP status {status}")
    start, _ = content_range(response.headers.get("Content-Range"))
    answered = response.headers.get("ETag")
    if not offset or start != offset or (etag and answered and answered != etag):
        discard_part(part)
        raise Transient(f"server resumed at byte {start} ({answered or 'no ETag'}) instead of {offset} "
                         f"({etag or 'no ETag'}); starting over")
    return offset


def fetch_once(url: str, part: Path, label: str, timeout: float, progress: bool) -> Hashes:
    """One HTTP request that appends to (or restarts) ``part``; returns the hashes of the whole part."""
    offset, headers, etag = _resume_offset(url, part, label)
    response = _open(url, part, offset, headers, timeout)
    if response is None:
        return hash_file(part)
    with response:
        offset = _accepted_offset(response, part, offset, etag, label)
        hashes = Hashes()
        if offset:
            hashes.update_from_file(part)
        else:
            _save_validator(part, url, response.headers)  # before the first byte, so a cut can resume
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
        raise Transient(f"connection closed after {offset + received} of {total} bytes")
    return hashes
