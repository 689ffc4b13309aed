"""Safe unpacking of downloaded .zip and .tar archives.

Why not ``extractall`` alone: archives come from mirrors nobody controls.  :func:`extract`
refuses archive members that would land outside the target (absolute paths, ``..``, links
pointing outside, device files) and makes the target appear atomically, so a folder is either
complete or absent.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Literal

from pcl.errors import PCLError


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
        replace_dir(tmp, target_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(p for p in target_dir.rglob("*") if p.is_file())
