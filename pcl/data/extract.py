"""Safe unpacking of downloaded .zip and .tar archives.

Why not ``extractall``: archives come from mirrors nobody controls, and the standard library's
own defences depend on the Python patch level (the tar ``data`` filter and its ``realpath``
check were bypassed by CVE-2025-4517; zip has no link check at all).  :func:`extract` therefore
walks the members itself and writes every file itself:

* only regular files and folders are unpacked; a symbolic or hard link, a device, a FIFO, an
  absolute or ``..`` name, a member below a member that is a file, or a name that appears twice
  is refused with a one-line :class:`PCLError` naming the archive and the member;
* each file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to folder descriptors
  opened with ``O_NOFOLLOW``, inside a fresh temporary folder, so nothing can be written through
  a link even if one appeared;
* the bytes actually written and the number of members are counted while streaming and capped
  (:class:`Caps`), so a decompression bomb stops long before the disk is full;
* the finished folder is renamed into place, so a target is either complete or absent; folders
  end up ``0777 & ~umask`` and files ``0666 & ~umask``, as ``mkdir``/``open`` would make them.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tarfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Literal

from pcl.atomic import make_temp_dir
from pcl.data.members import ENV_MAX_BYTES, ENV_MAX_MEMBERS, Caps, MemberWriter, tar_kind, zip_kind
from pcl.errors import PCLError

__all__ = ["ENV_MAX_BYTES", "ENV_MAX_MEMBERS", "Caps", "default_caps", "extract", "replace_dir"]

#: Default caps.  The archives unpacked here hold PNG images, which do not compress further, so
#: a genuine archive unpacks to about its own size; three times that plus 32 MiB leaves room for
#: other layouts while stopping a zip of zeros (1000:1) at a few dozen MB.
SIZE_FACTOR = 3
SIZE_MARGIN = 32 << 20
DEFAULT_MAX_MEMBERS = 50_000


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"[0-9]+", raw) or int(raw) <= 0:
        raise PCLError(f"environment variable {name}={raw!r} must be a positive whole number; fix or unset it")
    return int(raw)


def default_caps(archive_path: Path, *, max_bytes: int | None = None, max_members: int | None = None) -> Caps:
    """Caps for one archive: the environment's, else the source's own (``Archive.max_unpacked``,
    ``Archive.max_members``), else derived from the size of the (verified) archive file."""
    derived = SIZE_FACTOR * Path(archive_path).stat().st_size + SIZE_MARGIN
    return Caps(
        max_bytes=_env_int(ENV_MAX_BYTES) or max_bytes or derived,
        max_members=_env_int(ENV_MAX_MEMBERS) or max_members or DEFAULT_MAX_MEMBERS,
    )


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


def _unpack_tar(archive: Path, writer: MemberWriter) -> None:
    with tarfile.open(archive) as tf:
        for info in tf:  # streamed: a huge member list is stopped by the member cap
            kind = tar_kind(archive, info)
            writer.add(info.name, kind, info.size if kind == "file" else 0,
                       lambda info=info: tf.extractfile(info))


def _unpack_zip(archive: Path, writer: MemberWriter) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        writer.check_count(len(infos), infos[-1].filename if infos else "")
        for info in infos:
            kind = zip_kind(archive, info)
            writer.add(info.filename, kind, info.file_size if kind == "file" else 0,
                       lambda info=info: zf.open(info))


def replace_dir(new: Path, target: Path) -> None:
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


def _unpack(archive: Path, kind: str, into: Path, caps: Caps) -> None:
    """Unpack into the empty folder ``into``; archive-library errors become one-line PCLErrors."""
    try:
        with MemberWriter(archive, into, caps) as writer:
            (_unpack_zip if kind == "zip" else _unpack_tar)(archive, writer)
    # What the archive libraries raise on bad input: a truncated or corrupt stream (TarError, BadZipFile,
    # EOFError, zlib.error), a zip compression method zipfile lacks (NotImplementedError) and an
    # encrypted zip member (RuntimeError).
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise PCLError(
            f"cannot extract {archive} ({type(exc).__name__}: {exc}); the archive is damaged or unsafe: "
            "delete it and fetch it again"
        ) from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise PCLError(f"cannot extract {archive} into {into.parent} ({exc.strerror}); "
                           "free space or choose another data folder") from None
        raise


def extract(archive_path: Path, target_dir: Path, *, caps: Caps | None = None) -> list[Path]:
    """Safely unpack a .zip or .tar(.gz/.tgz/...) into ``target_dir``; return the files, sorted.

    The archive is unpacked into a temporary folder beside ``target_dir`` which is then renamed
    into place (an existing ``target_dir`` is replaced), so the target is either complete or
    absent.  Unsafe members and exceeded caps raise :class:`PCLError` naming the member; the
    temporary folder is removed and nothing outside it was written.  ``caps`` defaults to
    :func:`default_caps` of the archive.
    """
    archive_path, target_dir = Path(archive_path), Path(target_dir)
    if not archive_path.is_file():
        raise PCLError(f"archive {archive_path} does not exist; download it first")
    kind = _archive_kind(archive_path)
    caps = caps if caps is not None else default_caps(archive_path)
    tmp = make_temp_dir(target_dir.parent, f".{target_dir.name}.extract-")  # mode as mkdir, not 0700
    try:
        _unpack(archive_path, kind, tmp, caps)
        replace_dir(tmp, target_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(p for p in target_dir.rglob("*") if p.is_file())

