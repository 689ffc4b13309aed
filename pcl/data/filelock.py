"""An exclusive inter-process lock on a file (``fcntl.flock``) that leaves no file behind.

Why: several ``pcl`` processes (parallel Snakemake jobs, two shells) may download the same
archive or pin checksums into the one lock file at the same moment; a read-modify-write without
a lock loses entries and two writers of one ``.part`` file corrupt it.  The lock file is
removed by its holder before it unlocks, so the downloads folder and ``config/`` stay clean;
a waiter that wakes up on a removed file notices (the inode under the name changed) and locks
the new one instead, so two holders can never coexist.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pcl.errors import PCLError


def _open_locked(path: Path) -> int:
    """Open ``path`` and hold an exclusive flock on it; retry when the file was replaced meanwhile."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise PCLError(f"cannot create the lock file {path} ({exc.strerror}); make {path.parent} writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False  # the previous holder removed it after we opened it
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock named ``path`` for the ``with`` block (blocks until it is free)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_locked(path)
    try:
        yield
    finally:
        try:
            os.unlink(path)  # still ours: waiters re-check the inode and re-create it
        except FileNotFoundError:
            pass
        os.close(fd)  # closing releases the flock
