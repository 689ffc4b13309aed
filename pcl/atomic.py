"""Atomic file writes: temporary file beside the target, fsync, rename, fsync the folder.

Why one module: results, tables, checkpoints, lock files and prepared images must never be seen
half-written by a parallel Snakemake job or left truncated by a crash, and every writer in the
package goes through the same four steps.

Temporary files are named ``.<name>.pcl-<host>-<pid>-<random>.tmp``: ``<host>`` is a short hash of
the host name and PID namespace, so a later write to the same folder can tell a temp file of a
writer that died (SIGKILL, power loss) from one still being written, and remove only the former
(see :func:`clean_stale_temps`).  Files get ``0o666`` and folders ``0o777`` minus the umask, as
``open()`` and ``mkdir`` give, never mkstemp's/mkdtemp's private 0600/0700: on a shared cluster
account group other users read the results.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pcl.errors import ENVIRONMENT_ERRNOS, PCLError, StorageError, storage_error_in

#: A temp file untouched for this long belongs to no live writer: every writer in the package
#: streams its bytes within seconds to minutes, and mtime advances with each write.
STALE_AGE_S = 3600.0
#: A folder is searched for stale temp files at most once per this many seconds per process, so
#: that writing thousands of images into one large folder does not list it thousands of times;
#: a rerun after a crash is a new process and sweeps on its first write.
RESCAN_S = 10.0

_TEMP_RE = re.compile(r"^\..+\.pcl-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmp$")
#: mkstemp names written by earlier versions (``.<name>.<8 random>.tmp``): age is the only test.
_OLD_TEMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_last_scan: dict[str, float] = {}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The mode ``open()`` gives under the umask at import, for callers that create files with
#: ``os.open`` themselves (lock files); the writers here let the kernel apply the umask.
FILE_MODE = 0o666 & ~_umask()


def _host_token() -> str:
    """Hash of host name + PID namespace: PIDs are comparable only where both match."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


HOST_TOKEN = _host_token()


def temp_name(target: Path) -> Path:
    """A fresh temp path beside ``target`` carrying this host and process id."""
    return target.with_name(f".{target.name}.pcl-{HOST_TOKEN}-{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: exists, owned by another user
        return True
    return True


def _is_stale(name: str, mtime: float, now: float) -> bool:
    """Stale = untouched for STALE_AGE_S, or written on this host by a process that no longer exists.

    Why both: a dead PID is certain only on the host (and PID namespace) that wrote the file; a
    writer on another node sharing the folder is judged by age alone.  A reused PID only delays
    removal until the age test, it never removes a live writer's file.
    """
    if now - mtime > STALE_AGE_S:
        return bool(_TEMP_RE.match(name) or _OLD_TEMP_RE.match(name))
    match = _TEMP_RE.match(name)
    if not match or match["host"] != HOST_TOKEN:
        return False
    pid = int(match["pid"])
    return pid != os.getpid() and not _pid_alive(pid)


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove the temp files that crashed writers left in ``folder``; return what was removed."""
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if _is_stale(entry.name, entry.stat(follow_symlinks=False).st_mtime, now):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # raced with its writer's rename or another cleaner: nothing to do
            continue
    return removed


def _maybe_clean(folder: Path) -> None:
    key = os.path.abspath(folder)
    now = time.monotonic()
    if now - _last_scan.get(key, -RESCAN_S - 1.0) > RESCAN_S:
        _last_scan[key] = now
        clean_stale_temps(folder)


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_temp(path: Path) -> tuple[int, Path]:
    """Create the temp file with O_EXCL and mode 0o666: the kernel applies the umask as open() does."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = temp_name(path)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def _mkdir_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS:
            raise StorageError(exc.filename or path.parent, exc) from exc
        raise


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``.

    A full disk, a read-only mount or a forbidden folder raises :class:`StorageError` naming
    ``path``; the temp file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    _mkdir_parent(path)
    _maybe_clean(path.parent)
    tmp: Path | None = None
    try:
        fd, tmp = _open_temp(path)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        problem = None if isinstance(exc, PCLError) or not isinstance(exc, Exception) else storage_error_in(exc)
        if problem is not None:
            raise StorageError(path, problem.cause) from exc
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically (no newline translation) and return the path."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


_TEMP_DIR_RE = re.compile(r"^\..*pcl-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmpdir$")
#: A temp folder of another host is removed only after a day untouched: its writer cannot be asked
#: whether it lives, and a folder's mtime moves only when entries are added or removed.
STALE_DIR_AGE_S = 86400.0


def clean_stale_temp_dirs(parent: Path) -> list[Path]:
    """Remove the temp folders (:func:`make_temp_dir`) that killed writers left in ``parent``.

    Why: a prepare, extraction or evaluation killed half-way leaves a hidden folder of partial data
    that nothing would ever remove; a folder of this host whose writer no longer exists, or of any
    host untouched for ``STALE_DIR_AGE_S``, is removed on the next temp folder made beside it.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_DIR_RE.match(entry.name)
        if not match:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            pid = int(match["pid"])
            mine = match["host"] == HOST_TOKEN
            dead = mine and pid != os.getpid() and not _pid_alive(pid)
            if dead or now - entry.stat(follow_symlinks=False).st_mtime > STALE_DIR_AGE_S:
                shutil.rmtree(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # raced with its writer's rename or another cleaner
            continue
    return removed


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new empty folder in ``parent`` to fill and then rename into place (mkdtemp's job).

    Why not mkdtemp: its 0700 would survive the rename and hide prepared data from the other users
    of a shared account group; ``os.mkdir(..., 0o777)`` gets the umask applied as ``mkdir`` does.
    The name carries this host and process (``<prefix>pcl-<host>-<pid>-<random>.tmpdir``) so that
    the folders of killed writers are found and removed (:func:`clean_stale_temp_dirs`).
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temp_dirs(parent)
    while True:
        folder = parent / f"{prefix}pcl-{HOST_TOKEN}-{os.getpid()}-{secrets.token_hex(4)}.tmpdir"
        try:
            os.mkdir(folder, 0o777)
            return folder
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in ENVIRONMENT_ERRNOS:
                raise StorageError(folder, exc) from exc
            raise


__all__ = ["FILE_MODE", "STALE_AGE_S", "STALE_DIR_AGE_S", "atomic_write", "atomic_write_text", "clean_stale_temp_dirs",
           "clean_stale_temps", "fsync_dir", "make_temp_dir"]
