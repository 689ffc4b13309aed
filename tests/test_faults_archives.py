"""Hostile archives and hostile or racing downloads: what the user sees, and that nothing escapes.

Every archive is built here, member by member, the way published exploits build them; the
network is the local 127.0.0.1 server of ``test_download`` (reused: ``server`` fixture), which
can cut a connection, drop its ETag, ignore ``Range``, change the file between requests or
answer slowly.  Each test checks the one-line :class:`PCLError` (or the exit code 2 of the CLI)
naming the archive and the member, and that a snapshot of the folders around the target is
unchanged afterwards.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from pcl.data.download import fetch_dataset
from pcl.data.extract import ENV_MAX_BYTES, Caps, extract
from pcl.data.fetch import download
from pcl.data.images import list_images
from pcl.data.lockfile import read_lock, record_lock
from pcl.data.members import MemberWriter
from pcl.data.sources import Archive, Dataset, Install
from pcl.errors import PCLError
from pcl.resources import resource_path
from test_download import FAST, _symlink_zipinfo, _tar, md5, payload, server  # noqa: F401 (fixture)

pytestmark = pytest.mark.faults


# ---------------------------------------------------------------------------------------------
# building archives and snapshots


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry below ``folder`` (links not followed): type, mode and content hash or target."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = path.relative_to(folder).as_posix()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def assert_refused(archive: Path, member: str, tmp_path: Path, *, caps: Caps | None = None, phrase: str = "") -> str:
    """Extract ``archive`` into ``tmp_path/work/target``; the refusal must name ``member`` and leave
    ``tmp_path`` exactly as it was (no target, no temporary folder, nothing written elsewhere)."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    before = snapshot(tmp_path)
    with pytest.raises(PCLError) as info:
        extract(archive, work / "target", caps=caps)
    message = str(info.value)
    assert message.startswith(f"refusing to extract {archive}: member {member!r} "), message
    assert phrase in message and "\n" not in message
    assert snapshot(tmp_path) == before
    return message


def tar_entries(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> Path:
    """An uncompressed (``w``) or gzip (``w:gz``) tar of the given members, in order."""
    with tarfile.open(path, mode) as tf:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tf.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tf.addfile(info, io.BytesIO(entry[1]))
    return path


def typed(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def zip_entries(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


# ---------------------------------------------------------------------------------------------
# extraction: links and unsafe names


def test_tar_symlink_then_long_path_chain_refused(tmp_path):
    """The CVE-2025-4517 archive: a folder with a 247-character name, a one-letter symlink to it,
    repeated 16 levels deep until the path is too long for ``realpath`` to resolve, then a link
    that climbs two folders above the extraction folder (to ``tmp_path/outside``) and a file
    written through it.  With ``extractall(filter="data")`` on Python 3.11.7 this archive writes
    ``outside/pwned``; the member walk stops at the first link, the symlink ``a``."""
    (tmp_path / "outside").mkdir()
    comp = "d" * 247
    entries: list = []
    path = ""
    for step in "abcdefghijklmnop":
        entries.append(typed(os.path.join(path, comp), tarfile.DIRTYPE))
        entries.append(typed(os.path.join(path, step), tarfile.SYMTYPE, comp))
        path = os.path.join(path, comp)
    linkpath = os.path.join(*"abcdefghijklmnop", "l" * 254)
    entries.append(typed(linkpath, tarfile.SYMTYPE, os.path.join(*[".."] * 16)))
    entries.append(typed("escape", tarfile.SYMTYPE, linkpath + "/../../outside"))
    entries.append(("escape/pwned", b"written outside"))
    src = tmp_path / "src"
    src.mkdir()
    archive = tar_entries(src / "cve_2025_4517.tar", entries)
    assert_refused(archive, "a", tmp_path, phrase=f"is a symbolic link (to {comp!r})")
    assert os.listdir(tmp_path / "outside") == []


UNSAFE_TAR = {
    # member name -> (members, phrase the message must contain)
    "sym": ([("ok.png", b"1"), typed("sym", tarfile.SYMTYPE, "ok.png")], "is a symbolic link (to 'ok.png')"),
    "hard": ([("ok.png", b"1"), typed("hard", tarfile.LNKTYPE, "ok.png")], "is a hard link (to 'ok.png')"),
    "chr": ([typed("chr", tarfile.CHRTYPE)], "is a device file"),
    "blk": ([typed("blk", tarfile.BLKTYPE)], "is a device file"),
    "fifo": ([typed("fifo", tarfile.FIFOTYPE)], "is a FIFO"),
    "/abs/evil.png": ([("ok.png", b"1"), ("/abs/evil.png", b"x")], "has an absolute path"),
    "a/../../evil.png": ([("ok.png", b"1"), ("a/../../evil.png", b"x")], "contains '..'"),
    "a/b.png": ([("a", b"file"), ("a/b.png", b"x")], "lies below 'a', which is a file"),
    "a": ([("a/b.png", b"x"), ("a", b"file")], "clashes with the earlier member 'a'"),
    "n" * 300: ([("n" * 300, b"x")], "cannot be created (File name too long)"),  # NAME_MAX is 255
}


@pytest.mark.parametrize("member", list(UNSAFE_TAR), ids=lambda m: m if len(m) < 40 else "name_too_long")
def test_unsafe_tar_member_refused(tmp_path, member):
    """Only folders and regular files with relative names, each path once (rule of the walk)."""
    entries, phrase = UNSAFE_TAR[member]
    src = tmp_path / "src"
    src.mkdir()
    assert_refused(tar_entries(src / "bad.tar.gz", entries, "w:gz"), member, tmp_path, phrase=phrase)


def test_zip_symlink_chain_refused(tmp_path):
    """``sub -> .``, ``sub/up -> ..``, ``up/x -> ..``: each link looks harmless on its own and the
    chain plants links two folders above the target; refused at the first link, ``sub``."""
    entries = [(_symlink_zipinfo("sub"), b"."), (_symlink_zipinfo("sub/up"), b".."),
               (_symlink_zipinfo("up/x"), b".."), ("up/x/up/x/planted.png", b"x")]
    src = tmp_path / "src"
    src.mkdir()
    assert_refused(zip_entries(src / "chain.zip", entries), "sub", tmp_path, phrase="is a symbolic link")


def _device_zipinfo(name: str, kind: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (kind | 0o644) << 16
    return info


UNSAFE_ZIP = {
    "fifo": ([(_device_zipinfo("fifo", stat.S_IFIFO), b"")], "is a device, FIFO or socket"),
    "chr": ([(_device_zipinfo("chr", stat.S_IFCHR), b"")], "is a device, FIFO or socket"),
    "a/b.png": ([("a", b"file"), ("a/b.png", b"x")], "lies below 'a', which is a file"),
    "x/../../evil": ([("x/../../evil", b"x")], "contains '..'"),
}


@pytest.mark.parametrize("member", list(UNSAFE_ZIP))
def test_unsafe_zip_member_refused(tmp_path, member):
    """The zip rules are the tar rules; the type comes from the Unix mode in ``external_attr``."""
    entries, phrase = UNSAFE_ZIP[member]
    src = tmp_path / "src"
    src.mkdir()
    assert_refused(zip_entries(src / "bad.zip", entries), member, tmp_path, phrase=phrase)


# ---------------------------------------------------------------------------------------------
# extraction: bombs

ZEROS = bytes(20 << 20)  # 20 MiB of zeros: deflates/gzips to about 20 KB
SMALL = Caps(max_bytes=1 << 20, max_members=100)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_bomb_stopped_by_byte_cap(tmp_path, kind):
    """A 1 MiB cap against a 20 MiB member: refused before the member is written."""
    src = tmp_path / "src"
    src.mkdir()
    entries = [("ok.png", b"1"), ("zeros.bin", ZEROS)]
    archive = (zip_entries(src / "bomb.zip", entries) if kind == "zip"
               else tar_entries(src / "bomb.tar.gz", entries, "w:gz"))
    assert archive.stat().st_size < 100_000
    message = assert_refused(archive, "zeros.bin", tmp_path, caps=SMALL, phrase="over the cap of 1048576 bytes")
    assert "to raise it" in message


def test_default_cap_stops_zip_bomb_and_env_raises_it(tmp_path, monkeypatch):
    """The default cap is 3x the archive size + 32 MiB (pcl.data.extract): 40 MiB of zeros in a
    40 KB zip is over it; the environment variable named in the message raises the cap."""
    src = tmp_path / "src"
    src.mkdir()
    archive = zip_entries(src / "bomb.zip", [("zeros.bin", bytes(40 << 20))])
    message = assert_refused(archive, "zeros.bin", tmp_path, phrase="over the cap of")
    assert f"set {ENV_MAX_BYTES}=<bytes> to raise it" in message
    monkeypatch.setenv(ENV_MAX_BYTES, str(41 << 20))
    files = extract(archive, tmp_path / "work" / "target")
    assert [p.stat().st_size for p in files] == [40 << 20]


def test_byte_cap_counts_written_bytes_not_headers(tmp_path):
    """A member whose header claims 0 bytes but whose stream yields 2 MiB (a lying header) is
    stopped by the count of bytes actually written, with at most the 1 MiB cap on disk."""
    root = tmp_path / "root"
    root.mkdir()
    with MemberWriter(tmp_path / "lying.tar", root, SMALL) as writer:
        with pytest.raises(PCLError, match=r"member 'liar.bin' takes the unpacked size to \d+ bytes, over the cap"):
            writer.add("liar.bin", "file", 0, lambda: io.BytesIO(bytes(2 << 20)))
    assert (root / "liar.bin").stat().st_size <= SMALL.max_bytes


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_member_count_cap(tmp_path, kind):
    """12 empty members against a cap of 10: the zip is refused from its directory (naming the
    last member), the streamed tar at the 11th member."""
    src = tmp_path / "src"
    src.mkdir()
    entries = [(f"f{i:02d}.png", b"") for i in range(12)]
    archive = (zip_entries(src / "many.zip", entries) if kind == "zip" else tar_entries(src / "many.tar", entries))
    member = "f11.png" if kind == "zip" else "f10.png"
    assert_refused(archive, member, tmp_path, caps=Caps(1 << 20, 10), phrase="over the cap of 10")


# ---------------------------------------------------------------------------------------------
# nothing pinned from a refused archive


def _set5(url: str, filename: str = "Set5_HR.tar.gz") -> Dataset:
    return Dataset(name="Set5", kind="benchmark", archives=(Archive(filename, (url,)),), hr_glob="**/*",
                   manifest_key="Set5", notes="test copy",
                   installs=(Install(filename, "**/*", "benchmarks/Set5/HR", 5),),
                   manual="put the 5 Set5 HR images (PNG) into <root>/benchmarks/Set5/HR/")


def test_refused_archive_is_not_pinned(server, tmp_path):
    """A hostile archive without a published checksum: downloaded, refused, never trusted, also
    not on the second run that finds it already downloaded."""
    base, state = server
    archive = tar_entries(tmp_path / "Set5_HR.tar.gz", [("Set5_HR/a.png", b"1"), typed("Set5_HR/l", tarfile.SYMTYPE, "/etc")],
                          "w:gz")
    state.files["/Set5_HR.tar.gz"] = archive.read_bytes()
    lock, root = tmp_path / "lock.yaml", tmp_path / "data"
    for _ in range(2):
        with pytest.raises(PCLError, match=r"member 'Set5_HR/l' is a symbolic link") as info:
            fetch_dataset(_set5(f"{base}/Set5_HR.tar.gz"), root, progress=False, lock_file=lock, backoff=0.01)
        assert "\n" not in str(info.value)
        assert read_lock(lock) == {} and not lock.exists()
        assert sorted(os.listdir(root)) == ["downloads"]
        assert os.listdir(root / "downloads") == ["Set5_HR.tar.gz"]  # no staging, no part, no lock left
    assert len(state.requests) == 1


# ---------------------------------------------------------------------------------------------
# resume


def _tofu(base: str, name: str) -> Archive:
    return Archive(name, (f"{base}/{name}",))  # no published checksum: pinned on first use


def test_resume_without_validator_starts_over(server, tmp_path):
    """No ETag/Last-Modified: the cut partial file is dropped, and the file (changed meanwhile)
    is fetched whole; the old code spliced 50,000 old bytes onto the new tail and pinned that."""
    base, state = server
    old, new = payload(seed=10), payload(seed=11)
    state.etag = False
    state.files["/v.zip"], state.later["/v.zip"], state.cut_first["/v.zip"] = old, new, 50_000
    lock = tmp_path / "lock.yaml"
    path = download(_tofu(base, "v.zip"), tmp_path / "dl", lock_file=lock, **FAST)
    assert path.read_bytes() == new
    assert "Range" not in state.requests[1][1]
    assert read_lock(lock)["v.zip"]["sha256"] == hashlib.sha256(new).hexdigest()
    assert os.listdir(tmp_path / "dl") == ["v.zip"]


def test_if_range_resume_with_etag(server, tmp_path):
    """With a strong ETag the resume asks ``Range`` + ``If-Range``; same file: 206, bytes kept."""
    base, state = server
    data = payload(seed=12)
    state.files["/r.zip"], state.cut_first["/r.zip"] = data, 50_000
    lock = tmp_path / "lock.yaml"
    path = download(_tofu(base, "r.zip"), tmp_path / "dl", lock_file=lock, **FAST)
    assert path.read_bytes() == data
    headers = state.requests[1][1]
    assert headers["Range"] == "bytes=50000-" and headers["If-Range"] == f'"{md5(data)}"'
    assert read_lock(lock)["r.zip"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert os.listdir(tmp_path / "dl") == ["r.zip"]


def test_if_range_with_changed_file_restarts(server, tmp_path):
    """The file changed between the cut and the resume: the server's 200 (stale If-Range) restarts."""
    base, state = server
    old, new = payload(seed=13), payload(seed=14)
    state.files["/c.zip"], state.later["/c.zip"], state.cut_first["/c.zip"] = old, new, 50_000
    lock = tmp_path / "lock.yaml"
    path = download(_tofu(base, "c.zip"), tmp_path / "dl", lock_file=lock, **FAST)
    assert path.read_bytes() == new
    assert state.requests[1][1]["If-Range"] == f'"{md5(old)}"'
    assert read_lock(lock)["c.zip"]["sha256"] == hashlib.sha256(new).hexdigest()


def test_200_instead_of_206_restarts(server, tmp_path):
    """A server that ignores ``Range`` answers 200: the body is written from byte 0, not appended."""
    base, state = server
    data = payload(seed=15)
    state.files["/i.zip"], state.cut_first["/i.zip"], state.ignore_range = data, 50_000, True
    lock = tmp_path / "lock.yaml"
    path = download(_tofu(base, "i.zip"), tmp_path / "dl", lock_file=lock, **FAST)
    assert path.read_bytes() == data and state.requests[1][1]["Range"] == "bytes=50000-"
    assert read_lock(lock)["i.zip"]["sha256"] == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# concurrency


def _pin_many(lock: str, worker: int, count: int) -> None:
    for i in range(count):
        name = f"w{worker}_{i:02d}.zip"
        record_lock(Path(lock), Archive(name, ()), hashlib.sha256(name.encode()).hexdigest(), i, None)


@pytest.mark.slow  # 200 atomic rewrites, each with two fsyncs: 5-9 s on 2 loaded cores
def test_concurrent_pins_all_land(tmp_path):
    """4 processes x 50 pins into one lock file: all 200 entries survive (without the flock
    around the read-modify-write, 98 of 200 were lost)."""
    lock = tmp_path / "config" / "checksums.lock.yaml"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_pin_many, args=(str(lock), w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    entries = read_lock(lock)
    assert len(entries) == 200
    assert entries["w3_49.zip"]["sha256"] == hashlib.sha256(b"w3_49.zip").hexdigest()
    assert os.listdir(lock.parent) == ["checksums.lock.yaml"]  # no guard file or temp file left


def _download_in_child(base: str, dest: str, lock: str, out: str) -> None:
    path = download(_tofu(base, "same.zip"), Path(dest), lock_file=Path(lock), **FAST)
    Path(out).write_text(hashlib.sha256(path.read_bytes()).hexdigest())


def test_concurrent_downloads_of_one_archive(server, tmp_path):
    """Two processes fetch one archive at once (the server answers slowly so they overlap): the
    second waits for the first, finds the finished file, verifies it against the fresh pin."""
    base, state = server
    data = payload(seed=16)
    state.files["/same.zip"], state.delay = data, 0.5
    dest, lock = tmp_path / "dl", tmp_path / "lock.yaml"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_download_in_child, args=(base, str(dest), str(lock), str(tmp_path / f"out{i}")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    want = hashlib.sha256(data).hexdigest()
    assert [(tmp_path / f"out{i}").read_text() for i in range(2)] == [want, want]
    assert state.counts["/same.zip"] == 1  # fetched once, verified by the other
    assert read_lock(lock)["same.zip"]["sha256"] == want
    assert os.listdir(dest) == ["same.zip"]


def _fetch_in_child(url: str, root: str, lock: str) -> None:
    result = fetch_dataset(_set5(url), Path(root), progress=False, lock_file=Path(lock), backoff=0.01)
    assert result.status in ("installed", "present") and result.verified


def test_concurrent_dataset_fetches(server, tmp_path):
    """Two ``fetch_dataset`` of one benchmark at once both succeed; the install is complete."""
    base, state = server
    shipped = list_images(resource_path("benchmarks", "Set5", "HR"))
    archive = _tar(tmp_path / "Set5_HR.tar.gz", [(f"Set5_HR/{p.name}", p.read_bytes()) for p in shipped])
    state.files["/Set5_HR.tar.gz"], state.delay = archive.read_bytes(), 0.3
    root, lock = tmp_path / "data", tmp_path / "lock.yaml"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_fetch_in_child, args=(f"{base}/Set5_HR.tar.gz", str(root), str(lock)))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert [p.name for p in list_images(root / "benchmarks/Set5/HR")] == [p.name for p in shipped]
    assert sorted(os.listdir(root / "benchmarks" / "Set5")) == ["HR"]
    assert os.listdir(root / "downloads") == ["Set5_HR.tar.gz"]


# ---------------------------------------------------------------------------------------------
# end to end through the CLI


def test_cli_download_refuses_hostile_archive(tmp_path, monkeypatch, capsys):
    """``pcl download`` with a hostile Set5 archive placed in the downloads folder (no network
    needed): exit code 2, one line naming the archive and the member, nothing pinned or installed."""
    import pcl.data.download as download_module
    from pcl.cli import main

    lock = tmp_path / "lock.yaml"
    monkeypatch.setattr(download_module, "default_lock_file", lambda: lock)
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    archive = tar_entries(root / "downloads" / "Set5_HR.tar.gz",
                          [typed("d", tarfile.DIRTYPE), typed("l", tarfile.SYMTYPE, "d"),
                           typed("l/up", tarfile.SYMTYPE, "../../.."), ("l/up/pwned", b"x")], "w:gz")
    before = snapshot(tmp_path)
    code = main(["download", "--dataset", "Set5", "--root", str(root)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("pcl: error:")]
    assert lines == [f"pcl: error: refusing to extract {archive}: member 'l' is a symbolic link (to 'd'); "
                     "data archives hold only files and folders: delete it and get it from a trusted source"]
    assert snapshot(tmp_path) == before and not lock.exists()
