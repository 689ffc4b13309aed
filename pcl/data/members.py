"""The member walk behind :func:`pcl.data.extract.extract`: which members are allowed, and
writing them without following links, within caps.

Why our own walk: the safety of ``tarfile``'s filters and ``zipfile`` depends on the Python
patch level (CVE-2025-4517 escaped the ``data`` filter through a symlink and names too long for
``realpath``).  Data archives need nothing but folders and regular files, so everything else is
refused outright, and every path is opened component by component relative to the extraction
folder with ``O_NOFOLLOW``, so no link, wherever it came from, is ever followed.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from pcl.errors import PCLError

Kind = Literal["file", "dir"]
CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_UNSAFE = "the archive is unsafe or damaged: delete it and get it from a trusted source"
_ONLY_DATA = "data archives hold only files and folders: delete it and get it from a trusted source"


#: Environment variables that override the caps of every archive (the way to raise them).
ENV_MAX_BYTES = "PCL_MAX_UNPACKED_BYTES"
ENV_MAX_MEMBERS = "PCL_MAX_ARCHIVE_MEMBERS"


@dataclass(frozen=True)
class Caps:
    """Limits of one extraction; the hints say how to raise each (they end the error message)."""

    max_bytes: int
    max_members: int
    bytes_hint: str = f"set {ENV_MAX_BYTES}=<bytes> to raise it"
    members_hint: str = f"set {ENV_MAX_MEMBERS}=<count> to raise it"


def refuse(archive: Path, name: str, why: str, what_to_do: str = _UNSAFE) -> PCLError:
    """The one-line error for an unacceptable member (callers ``raise`` it)."""
    return PCLError(f"refusing to extract {archive}: member {name!r} {why}; {what_to_do}")


def member_parts(archive: Path, name: str, *, root_ok: bool = False) -> tuple[str, ...]:
    """Relative, normalised path components of a member; refuses absolute paths and ``..``.

    ``root_ok``: an empty path (``./``, which ``tar -C dir -c .`` writes) is the extraction
    folder itself and allowed for folder members.
    """
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise refuse(archive, name, "has an absolute path")
    parts = tuple(p for p in posix.split("/") if p not in ("", "."))
    if ".." in parts:
        raise refuse(archive, name, "contains '..' and would land outside the target")
    if not parts and not root_ok:
        raise refuse(archive, name, "has an empty path")
    if any("\0" in p for p in parts):
        raise refuse(archive, name, "contains a NUL byte")
    return parts


def tar_kind(archive: Path, info: tarfile.TarInfo) -> Kind:
    """``file`` or ``dir``; every other tar member type is refused."""
    if info.isdir():
        return "dir"
    if info.isreg():
        return "file"
    if info.issym():
        why = f"is a symbolic link (to {info.linkname!r})"
    elif info.islnk():
        why = f"is a hard link (to {info.linkname!r})"
    elif info.ischr() or info.isblk():
        why = "is a device file"
    elif info.isfifo():
        why = "is a FIFO"
    else:
        why = f"has the unsupported type {info.type!r}"
    raise refuse(archive, info.name, why, _ONLY_DATA)


def zip_kind(archive: Path, info: zipfile.ZipInfo) -> Kind:
    """``file`` or ``dir`` from the Unix mode in the high 16 bits of ``external_attr``."""
    fmt = stat.S_IFMT(info.external_attr >> 16)
    if fmt == stat.S_IFLNK:
        raise refuse(archive, info.filename, "is a symbolic link", _ONLY_DATA)
    if fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
        raise refuse(archive, info.filename, "is a device, FIFO or socket", _ONLY_DATA)
    if info.is_dir() or fmt == stat.S_IFDIR:
        return "dir"
    return "file"


class MemberWriter:
    """Writes accepted members below one fresh folder, never following a link, within :class:`Caps`.

    ``seen`` maps every path created so far (explicit or implied parent folders) to its kind and
    the member that made it, which is what lets a member below a file, a duplicate and a file
    replacing a folder be refused before anything is written.
    """

    def __init__(self, archive: Path, root: Path, caps: Caps) -> None:
        self.archive, self.caps = archive, caps
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.seen: dict[tuple[str, ...], tuple[Kind, str]] = {}
        self.members = 0
        self.written = 0

    def __enter__(self) -> MemberWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.root_fd)

    def check_count(self, count: int, name: str) -> None:
        """Refuse before writing anything when the archive lists more members than allowed."""
        if count > self.caps.max_members:
            raise refuse(self.archive, name, f"makes {count} members, over the cap of {self.caps.max_members}",
                         f"if the archive is genuine, {self.caps.members_hint}")

    def add(self, name: str, kind: Kind, declared: int, opener: Callable[[], IO[bytes] | None]) -> None:
        """Create one member (``opener`` gives the file's bytes; it is not called for folders)."""
        self.members += 1
        self.check_count(self.members, name)
        parts = member_parts(self.archive, name, root_ok=kind == "dir")
        if not parts or not self._place(name, parts, kind):
            return  # the extraction folder itself, or a folder that already exists
        if kind == "file" and self.written + declared > self.caps.max_bytes:
            raise self._over_bytes(name, self.written + declared)
        try:
            self._create(name, parts, kind, opener)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                raise PCLError(f"cannot extract {self.archive}: writing member {name!r} failed ({exc.strerror}); "
                               "free space or choose another data folder") from None
            raise refuse(self.archive, name, f"cannot be created ({exc.strerror})") from None

    def _create(self, name: str, parts: tuple[str, ...], kind: Kind, opener: Callable[[], IO[bytes] | None]) -> None:
        parent = self._open_parent(parts[:-1])
        try:
            if kind == "dir":
                os.mkdir(parts[-1], 0o777, dir_fd=parent)
            else:
                self._write_file(name, parent, parts[-1], opener)
        finally:
            if parent != self.root_fd:
                os.close(parent)

    def _place(self, name: str, parts: tuple[str, ...], kind: Kind) -> bool:
        """Record the member's path; False for a folder that exists already."""
        for depth in range(1, len(parts)):
            prefix = parts[:depth]
            found = self.seen.get(prefix)
            if found is not None and found[0] != "dir":
                raise refuse(self.archive, name, f"lies below {found[1]!r}, which is a file, not a folder")
        found = self.seen.get(parts)
        if found is not None:
            if kind == "dir" and found[0] == "dir":
                return False
            raise refuse(self.archive, name, f"clashes with the earlier member {found[1]!r} of the same path")
        self.seen[parts] = (kind, name)
        return True

    def _open_parent(self, parts: tuple[str, ...]) -> int:
        """Descriptor of the member's folder, created as needed, each step opened with O_NOFOLLOW."""
        fd = self.root_fd
        for depth, part in enumerate(parts, start=1):
            if self.seen.get(parts[:depth]) is None:
                self.seen[parts[:depth]] = ("dir", "/".join(parts[:depth]))
                os.mkdir(part, 0o777, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            finally:
                if fd != self.root_fd:
                    os.close(fd)
            fd = child
        return fd

    def _write_file(self, name: str, parent: int, leaf: str, opener: Callable[[], IO[bytes] | None]) -> None:
        """Stream the member's bytes into a new file, counting what is written against the cap."""
        fd = os.open(leaf, _FILE_FLAGS, 0o666, dir_fd=parent)
        with os.fdopen(fd, "wb") as dst:
            src = opener()
            if src is None:
                return
            with src:
                while chunk := src.read(CHUNK):
                    self.written += len(chunk)
                    if self.written > self.caps.max_bytes:
                        raise self._over_bytes(name, self.written)
                    dst.write(chunk)

    def _over_bytes(self, name: str, reached: int) -> PCLError:
        cap = self.caps.max_bytes
        return refuse(self.archive, name,
                      f"takes the unpacked size to {reached} bytes, over the cap of {cap} bytes ({cap / 2**20:.1f} MiB)",
                      f"if the archive is genuine, {self.caps.bytes_hint}")
