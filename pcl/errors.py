"""One exception type for every user-facing problem.

Why: the CLI turns a ``PCLError`` into a single line on stderr and exit code 2, so every bad
input (missing folder, corrupt image, unknown protocol, wrong checkpoint keys) reaches the user
as one actionable sentence instead of a traceback.  Messages must name the file, key or value
and say what to do.
"""

from __future__ import annotations

import errno
import os
import shutil


class PCLError(Exception):
    """A problem with the user's input or environment, reported as one line (exit code 2)."""

    exit_code: int = 2


#: errno values that describe the user's storage, not a bug: a full disk or quota, a read-only
#: mount, an output path the account may not write.  These become one line and exit code 2.
_FULL = {errno.ENOSPC, errno.EDQUOT}
ENVIRONMENT_ERRNOS = frozenset(_FULL | {errno.EACCES, errno.EPERM, errno.EROFS})


def mount_point(path: str | os.PathLike[str]) -> str:
    """The mount point holding ``path`` (its nearest existing ancestor), for "free space on ..."."""
    here = os.path.abspath(path)
    while not os.path.exists(here) and os.path.dirname(here) != here:
        here = os.path.dirname(here)
    while not os.path.ismount(here):
        here = os.path.dirname(here)
    return here


def _free_space(mount: str) -> str:
    try:
        free = shutil.disk_usage(mount).free
    except OSError:
        return "free space unknown"
    return f"{free / 2**20:.1f} MiB free" if free >= 2**20 else f"{free // 1024} KiB free"


class StorageError(PCLError):
    """An ``OSError`` of the user's storage (``ENVIRONMENT_ERRNOS``) on a named path.

    Why a subclass: the writer that hits a full disk knows the path, the CLI knows which option
    chose it; ``option`` is filled in by whoever knows it, and the message says what to do with both.
    """

    def __init__(self, path: str | os.PathLike[str] | None, cause: OSError, option: str | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.cause = cause
        self.option = option
        super().__init__(self.path, cause.errno)

    def __reduce__(self):  # keeps the cause when a worker process sends it back
        return (type(self), (self.path, self.cause, self.option))

    @property
    def errno(self) -> int | None:
        return self.cause.errno

    def __str__(self) -> str:
        where = self.path or "an output file"
        if self.errno in _FULL:
            elsewhere = f"point {self.option} elsewhere" if self.option else "write the output elsewhere"
            what = "no space left on device" if self.errno == errno.ENOSPC else "no space left (disk quota exceeded)"
            mount = mount_point(self.path) if self.path else "the output file system"
            extra = f" ({_free_space(mount)})" if self.path else ""
            return f"{what} while writing {where}: free space on {mount}{extra} or {elsewhere}"
        elsewhere = f"point {self.option} elsewhere" if self.option else "use another path"
        if self.errno == errno.EROFS:
            return f"read-only file system at {where}: remount it writable or {elsewhere}"
        what = "operation not permitted" if self.errno == errno.EPERM else "permission denied"
        return f"{what} on {where}: give this account access (chmod/chown the folder) or {elsewhere}"


def storage_error_in(exc: BaseException) -> StorageError | None:
    """The storage problem behind ``exc`` (itself, its cause or context chain), else None.

    Why follow the chain: libraries re-raise a failed write as their own type (torch's writer
    turns it into a RuntimeError), yet the user still needs the one-line "disk full" answer.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageError):
            return current
        if isinstance(current, OSError) and current.errno in ENVIRONMENT_ERRNOS:
            return StorageError(current.filename, current)
        current = current.__cause__ or current.__context__
    return None
