"""Downloader, safe extraction, TOFU lock and dataset install, against a local HTTP server.

Every archive is generated here and served from 127.0.0.1 on an ephemeral port by a handler that
can cut the connection, serve corrupted bytes, ignore Range, leave out its validators (ETag) or
fail with 503, so the network paths are exercised without the internet.  Sockets time out after
a few seconds.  The handler answers ``If-Range`` as RFC 9110 says: a range only for the current
ETag, else the whole file with 200.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from pcl.data.download import fetch_dataset
from pcl.data.extract import extract
from pcl.data.fetch import DownloadUnavailable, download
from pcl.data.images import list_images, read_image, write_png
from pcl.data.lockfile import read_lock
from pcl.data.sources import Archive, Dataset, Install, benchmark_names, dataset_names, get_dataset
from pcl.errors import PCLError
from pcl.resources import resource_path

FAST = dict(retries=3, backoff=0.01, timeout=5, progress=False)


# ---------------------------------------------------------------------------------------------
# local server


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    later: dict[str, bytes] = field(default_factory=dict)  # path -> body from the 2nd request on (file changed)
    delay: float = 0.0  # seconds to wait before sending a body (lets concurrent clients overlap)
    cut_first: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before closing (1st request)
    corrupt_first: dict[str, int] = field(default_factory=dict)  # path -> number of corrupted answers
    fail_first: dict[str, int] = field(default_factory=dict)  # path -> number of 503 answers
    ignore_range: bool = False
    etag: bool = True  # send a strong ETag (the md5 of the body) and honour If-Range
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            state.requests.append((self.path, dict(self.headers)))
            n = state.counts[self.path] = state.counts.get(self.path, 0) + 1
        body = state.files.get(self.path)
        if n > 1 and self.path in state.later:
            body = state.later[self.path]
        if body is None:
            self._send(404, b"not found")
            return
        if n <= state.fail_first.get(self.path, 0):
            self._send(503, b"busy")
            return
        if n <= state.corrupt_first.get(self.path, 0):
            body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]  # same length, wrong bytes
        start = 0
        rng = self.headers.get("Range")
        tag = f'"{md5(body)}"'
        if_range = self.headers.get("If-Range")
        if if_range is not None and (not state.etag or if_range != tag):
            rng = None  # a stale validator: the whole (changed) file, 200
        if rng and not state.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        if state.etag:
            self.send_header("ETag", tag)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        time.sleep(state.delay)
        cut = state.cut_first.get(self.path) if n == 1 else None
        if cut is not None:
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.timeout = 5
    httpd.state = ServerState()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, httpd.state  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def closed_port_url(name: str) -> str:
    """A URL on a port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def payload(n: int = 200_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# download


def test_resume_after_cut_connection(server, tmp_path):
    base, state = server
    data = payload()
    state.files["/big.zip"] = data
    state.cut_first["/big.zip"] = 50_000
    archive = Archive("big.zip", (f"{base}/big.zip",), size=len(data), md5=md5(data))
    path = download(archive, tmp_path, **FAST)
    assert path == tmp_path / "big.zip"
    assert path.read_bytes() == data
    assert not (tmp_path / "big.zip.part").exists()
    assert len(state.requests) == 2
    assert "Range" not in state.requests[0][1]
    # the server wrote 50,000 bytes before closing, so the resume asks for the rest from there,
    # on condition that the file is still the one whose ETag came with the first answer
    assert state.requests[1][1]["Range"] == "bytes=50000-"
    assert state.requests[1][1]["If-Range"] == f'"{md5(data)}"'
    assert not (tmp_path / "big.zip.part.json").exists()  # the stored validator goes with the part


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    base, state = server
    data = payload(seed=1)
    state.files["/a.tar.gz"] = data
    state.cut_first["/a.tar.gz"] = 700
    state.ignore_range = True
    archive = Archive("a.tar.gz", (f"{base}/a.tar.gz",), md5=md5(data))
    download(archive, tmp_path, **FAST)
    assert state.requests[1][1]["Range"] == "bytes=700-"  # it tried to resume after the cut ...
    assert (tmp_path / "a.tar.gz").read_bytes() == data  # ... and restarted on the 200 answer


def test_part_file_without_validator_is_not_resumed(server, tmp_path):
    # a partial download with no stored ETag/Last-Modified cannot be proven to match the file
    base, state = server
    data = payload(seed=8)
    state.files["/s.zip"] = data
    (tmp_path / "s.zip.part").write_bytes(b"garbage" * 100)
    download(Archive("s.zip", (f"{base}/s.zip",), md5=md5(data)), tmp_path, **FAST)
    assert "Range" not in state.requests[0][1] and len(state.requests) == 1
    assert (tmp_path / "s.zip").read_bytes() == data


def test_complete_part_file_is_finished_without_refetch(server, tmp_path):
    base, state = server
    data = payload(4000, seed=6)
    state.files["/p.zip"] = data
    (tmp_path / "p.zip.part").write_bytes(data)  # killed between the last byte and the rename
    # ... with the validator its first answer stored (the documented <file>.part.json)
    (tmp_path / "p.zip.part.json").write_text(
        f'{{"url": "{base}/p.zip", "etag": "\\"{md5(data)}\\"", "last_modified": null}}')
    download(Archive("p.zip", (f"{base}/p.zip",), md5=md5(data)), tmp_path, **FAST)
    assert (tmp_path / "p.zip").read_bytes() == data and not (tmp_path / "p.zip.part").exists()
    assert len(state.requests) == 1 and state.requests[0][1]["Range"] == "bytes=4000-"  # answered 416


def test_5xx_is_retried(server, tmp_path):
    base, state = server
    data = payload(1000)
    state.files["/x.zip"] = data
    state.fail_first["/x.zip"] = 2
    download(Archive("x.zip", (f"{base}/x.zip",), md5=md5(data)), tmp_path, **FAST)
    assert (tmp_path / "x.zip").read_bytes() == data
    assert len(state.requests) == 3


def test_second_mirror_used_when_first_is_404(server, tmp_path):
    base, state = server
    data = payload(1000)
    state.files["/good/x.zip"] = data
    archive = Archive("x.zip", (f"{base}/missing/x.zip", f"{base}/good/x.zip"), md5=md5(data))
    download(archive, tmp_path, **FAST)
    assert [r[0] for r in state.requests] == ["/missing/x.zip", "/good/x.zip"]


def test_corrupt_download_detected_and_fetched_again(server, tmp_path):
    base, state = server
    data = payload(seed=2)
    state.files["/c.zip"] = data
    state.corrupt_first["/c.zip"] = 1
    download(Archive("c.zip", (f"{base}/c.zip",), md5=md5(data)), tmp_path, **FAST)
    assert (tmp_path / "c.zip").read_bytes() == data
    assert len(state.requests) == 2


def test_checksum_mismatch_every_time_raises(server, tmp_path):
    base, state = server
    data = payload(seed=3)
    state.files["/m.zip"] = data
    wrong = "0" * 32
    with pytest.raises(PCLError) as info:
        download(Archive("m.zip", (f"{base}/m.zip",), md5=wrong), tmp_path, **FAST)
    message = str(info.value)
    assert "m.zip" in message and wrong in message and md5(data) in message
    assert "\n" not in message
    assert len(state.requests) == 2  # fetched once more after the first mismatch, then gave up
    assert not (tmp_path / "m.zip").exists() and not (tmp_path / "m.zip.part").exists()


def test_existing_verified_file_is_not_fetched_again(server, tmp_path):
    base, state = server
    data = payload(5000)
    state.files["/e.zip"] = data
    archive = Archive("e.zip", (f"{base}/e.zip",), md5=md5(data))
    download(archive, tmp_path, **FAST)
    download(archive, tmp_path, **FAST)
    assert len(state.requests) == 1
    (tmp_path / "e.zip").write_bytes(b"damaged")  # a damaged copy is replaced
    download(archive, tmp_path, **FAST)
    assert len(state.requests) == 2 and (tmp_path / "e.zip").read_bytes() == data


def test_unreachable_url_gives_one_line_manual_placement_error(tmp_path):
    archive = Archive("DIV2K_valid_HR.zip", (closed_port_url("DIV2K_valid_HR.zip"),))
    with pytest.raises(DownloadUnavailable) as info:
        download(archive, tmp_path / "downloads", retries=1, backoff=0.01, timeout=2, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cannot download DIV2K_valid_HR.zip from http://127.0.0.1:")
    assert f"place it at {tmp_path / 'downloads' / 'DIV2K_valid_HR.zip'}" in message


def test_tofu_lock_written_then_enforced(server, tmp_path):
    base, state = server
    data = payload(3000, seed=4)
    state.files["/t.zip"] = data
    lock = tmp_path / "config" / "checksums.lock.yaml"
    archive = Archive("t.zip", (f"{base}/t.zip",))  # no published checksum
    download(archive, tmp_path / "dl", lock_file=lock, **FAST)
    entry = read_lock(lock)["t.zip"]
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    assert lock.read_text().startswith("# Trust-on-first-use")
    assert yaml.safe_load(lock.read_text())["version"] == 1

    # a tampered local copy no longer matches the pinned sum: it is fetched again
    (tmp_path / "dl" / "t.zip").write_bytes(b"x" * len(data))
    download(archive, tmp_path / "dl", lock_file=lock, **FAST)
    assert (tmp_path / "dl" / "t.zip").read_bytes() == data

    # the mirror now serves different bytes: refused, naming the lock file
    state.files["/t.zip"] = payload(3000, seed=5)
    (tmp_path / "dl" / "t.zip").unlink()
    with pytest.raises(PCLError, match="checksum mismatch for t.zip") as info:
        download(archive, tmp_path / "dl", lock_file=lock, **FAST)
    assert str(lock) in str(info.value)
    assert read_lock(lock)["t.zip"]["sha256"] == hashlib.sha256(data).hexdigest()  # pin unchanged


# ---------------------------------------------------------------------------------------------
# extraction


def _tar(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tf.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _zip(path: Path, entries: list[tuple[str, bytes] | zipfile.ZipInfo | tuple[zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for entry in entries:
            name, data = entry
            zf.writestr(name, data)
    return path


def _symlink_zipinfo(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def test_extract_tar_and_zip(tmp_path):
    folder = tarfile.TarInfo("Set_HR/sub")
    folder.type = tarfile.DIRTYPE
    top = tarfile.TarInfo("./")  # what `tar -C dir -czf x.tgz .` writes first: the folder itself
    top.type = tarfile.DIRTYPE
    tar = _tar(tmp_path / "ok.tar.gz", [top, ("Set_HR/a.png", b"1"), folder, ("Set_HR/sub/b.png", b"22")])
    files = extract(tar, tmp_path / "out_tar")
    assert [p.relative_to(tmp_path / "out_tar").as_posix() for p in files] == ["Set_HR/a.png", "Set_HR/sub/b.png"]
    assert (tmp_path / "out_tar" / "Set_HR" / "sub" / "b.png").read_bytes() == b"22"
    # modes as mkdir/open give them under the current umask, not mkdtemp's 0700
    mask = os.umask(0)
    os.umask(mask)
    for path in [tmp_path / "out_tar", *(tmp_path / "out_tar").rglob("*")]:
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(path.stat().st_mode) == want, path
    z = _zip(tmp_path / "ok.zip", [("d/x.png", b"x"), ("y.png", b"yy")])
    (tmp_path / "out_zip").mkdir()
    (tmp_path / "out_zip" / "stale.png").write_bytes(b"old")  # an existing target is replaced
    files = extract(z, tmp_path / "out_zip")
    assert sorted(p.name for p in files) == ["x.png", "y.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.tar.gz", "ok.zip", "out_tar", "out_zip"]


def _evil_tars(tmp_path: Path) -> dict[str, Path]:
    """Unsafe archives, keyed by the member name the error must quote."""
    dev = tarfile.TarInfo("dev/null")
    dev.type = tarfile.CHRTYPE
    absolute = str(tmp_path / "abs_evil")
    return {
        "../evil": _tar(tmp_path / "dotdot.tar.gz", [("ok.png", b"1"), ("../evil", b"pwned")]),
        absolute: _tar(tmp_path / "abs.tar.gz", [("ok.png", b"1"), (absolute, b"pwned")]),
        "etc_link": _tar(tmp_path / "symlink.tar", [("ok.png", b"1"), _link("etc_link", "/etc")]),
        "inner": _tar(tmp_path / "inner_symlink.tar", [("ok.png", b"1"), _link("inner", "ok.png")]),
        "d/l": _tar(tmp_path / "rel_symlink.tgz", [_link("d/l", "../../outside")]),
        "h": _tar(tmp_path / "hardlink.tar.gz", [_link("h", "../outside", tarfile.LNKTYPE)]),
        "dev/null": _tar(tmp_path / "device.tar.gz", [dev]),
    }


def test_unsafe_tar_members_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for member, archive in _evil_tars(src).items():
        work = tmp_path / f"work_{archive.name}"
        work.mkdir()
        with pytest.raises(PCLError) as info:
            extract(archive, work / "target")
        message = str(info.value)
        assert message.startswith(f"refusing to extract {archive}: member '{member}'"), message
        assert list(work.iterdir()) == []  # no target, no leftover temp folder
    assert not (tmp_path / "evil").exists() and not (src / "abs_evil").exists()


def test_unsafe_zip_members_refused(tmp_path):
    cases = {
        "../evil": _zip(tmp_path / "dotdot.zip", [("ok.png", b"1"), ("../evil", b"pwned")]),
        "/abs_evil": _zip(tmp_path / "abs.zip", [("ok.png", b"1"), ("/abs_evil", b"pwned")]),
        "etc_link": _zip(tmp_path / "link.zip", [("ok.png", b"1"), (_symlink_zipinfo("etc_link"), b"/etc")]),
    }
    for member, archive in cases.items():
        work = tmp_path / f"work_{archive.stem}"
        work.mkdir()
        with pytest.raises(PCLError) as info:
            extract(archive, work / "target")
        assert str(info.value).startswith(f"refusing to extract {archive}: member '{member}'"), info.value
        assert list(work.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not Path("/abs_evil").exists()


def test_damaged_archive_is_a_pcl_error(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + b"not gzip at all" * 10)
    with pytest.raises(PCLError, match="bad.tar.gz"):
        extract(bad, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]


# ---------------------------------------------------------------------------------------------
# registry


def test_registry_names_and_aliases():
    assert benchmark_names() == ["Set5", "Set14", "B100", "Urban100", "Manga109"]  # table order of the paper
    assert "DIV2K" in dataset_names()
    assert get_dataset("bsd100").name == "B100" and get_dataset("URBAN100").name == "Urban100"
    with pytest.raises(PCLError) as info:
        get_dataset("Set15")
    assert "Set15" in str(info.value) and "Manga109" in str(info.value) and "DIV2K" in str(info.value)


def test_registry_div2k_facts():
    # md5s and size published with DIV2K (data.vision.ee.ethz.ch/cvl/DIV2K)
    div2k = {a.filename: a for a in get_dataset("DIV2K").archives}
    assert div2k["DIV2K_train_HR.zip"].md5 == "bdc2d9338d4e574fe81bf7d158758658"
    assert div2k["DIV2K_train_HR.zip"].size == 3_530_603_713
    assert div2k["DIV2K_valid_HR.zip"].md5 == "9fcdda83005c5e5997799b69f955ff88"
    assert div2k["DIV2K_train_LR_bicubic_X4.zip"].md5 == "76c43ec4155851901ebbe8339846d93d"
    tofu = div2k["DIV2K_valid_LR_bicubic_X4.zip"]
    assert tofu.md5 is None and tofu.sha256 is None  # pinned by the lock file instead
    assert all(u.startswith("http://data.vision.ee.ethz.ch/cvl/DIV2K/") for a in div2k.values() for u in a.urls)
    for name in benchmark_names():
        ds = get_dataset(name)
        assert ds.installs[0].dest == f"benchmarks/{name}/HR" and ds.manifest_key
    assert get_dataset("B100").archives[0].urls == (
        "https://huggingface.co/datasets/eugenesiow/BSD100/resolve/main/data/BSD100_HR.tar.gz",)


# ---------------------------------------------------------------------------------------------
# fetch_dataset


def _set5_dataset(url: str, *, by_manifest: bool = False, filename: str = "Set5_HR.tar.gz") -> Dataset:
    return Dataset(
        name="Set5", kind="benchmark", archives=(Archive(filename, (url,)),), hr_glob="**/*",
        manifest_key="Set5", notes="test copy",
        installs=(Install(filename, "**/*", "benchmarks/Set5/HR", 5, by_manifest=by_manifest),),
        manual="put the 5 Set5 HR images (PNG) into <root>/benchmarks/Set5/HR/",
    )


def test_fetch_dataset_installs_generated_benchmark(server, tmp_path):
    base, state = server
    shipped = list_images(resource_path("benchmarks", "Set5", "HR"))
    entries = [(f"Set5_HR/img_{i:03d}.png", p.read_bytes()) for i, p in enumerate(shipped)]
    entries.append(("Set5_HR/._img_000.png", b"AppleDouble metadata"))  # macOS junk is skipped
    entries.append(("Set5_HR/readme.txt", b"not an image"))
    archive = _tar(tmp_path / "Set5_HR.tar.gz", entries)
    state.files["/Set5_HR.tar.gz"] = archive.read_bytes()
    lock = tmp_path / "lock.yaml"
    root = tmp_path / "data"
    ds = _set5_dataset(f"{base}/Set5_HR.tar.gz")

    result = fetch_dataset(ds, root, progress=False, lock_file=lock, backoff=0.01)
    assert result.status == "installed", result
    hr = root / "benchmarks" / "Set5" / "HR"
    # installed under the manifest names, whatever the mirror called them
    assert [p.name for p in list_images(hr)] == [p.name for p in shipped]
    assert result.verified is True and result.verification.startswith("Set5: ok, 5/5")
    assert "Set5_HR.tar.gz" in read_lock(lock)  # benchmark archives are pinned on first use
    assert not (root / "downloads" / ".extracted").exists()
    assert sorted(p.name for p in hr.parent.iterdir()) == ["HR"]  # no temp folders left
    mask = os.umask(0)
    os.umask(mask)  # the installed folder and images have the modes mkdir/open give, not 0700/0600
    assert stat.S_IMODE(hr.stat().st_mode) == 0o777 & ~mask
    assert {stat.S_IMODE(p.stat().st_mode) for p in hr.iterdir()} == {0o666 & ~mask}

    again = fetch_dataset(ds, root, progress=False, lock_file=lock)
    assert again.status == "present" and again.verified is True
    assert len(state.requests) == 1


def test_fetch_dataset_by_manifest_selects_hr_only(server, tmp_path):
    base, state = server
    shipped = list_images(resource_path("benchmarks", "Set5", "HR"))
    entries = []
    for p in shipped:
        entries.append((f"Manga/HR/{p.stem}_page.png", p.read_bytes()))
        lr = read_image(p)[::4, ::4].copy()  # an LR copy that must not be installed
        write_png(tmp_path / "lr.png", lr)
        entries.append((f"Manga/LR/{p.stem}_page.png", (tmp_path / "lr.png").read_bytes()))
    archive = _zip(tmp_path / "M.zip", entries)
    state.files["/M.zip"] = archive.read_bytes()
    ds = _set5_dataset(f"{base}/M.zip", by_manifest=True, filename="M.zip")
    result = fetch_dataset(ds, tmp_path / "data", progress=False, lock_file=tmp_path / "lock.yaml")
    assert result.status == "installed" and result.verified is True
    assert [p.name for p in list_images(tmp_path / "data/benchmarks/Set5/HR")] == [p.name for p in shipped]


def test_fetch_dataset_offline(tmp_path):
    ds = _set5_dataset(closed_port_url("Set5_HR.tar.gz"))
    root = tmp_path / "data"
    result = fetch_dataset(ds, root, offline_ok=True, progress=False, lock_file=tmp_path / "l.yaml",
                           retries=0, timeout=2)
    assert result.status == "unavailable"
    assert str(root / "downloads" / "Set5_HR.tar.gz") in result.reason
    assert str(root / "benchmarks" / "Set5" / "HR") in result.reason and "\n" not in result.reason
    with pytest.raises(DownloadUnavailable, match="download it by hand"):
        fetch_dataset(ds, root, progress=False, lock_file=tmp_path / "l.yaml", retries=0, timeout=2)


def test_fetch_dataset_uses_archive_placed_by_hand(tmp_path):
    # offline, but the archive was put where the error message says: installs without network
    shipped = resource_path("benchmarks", "Set5", "HR")
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    _tar(root / "downloads" / "Set5_HR.tar.gz", [(f"x/{p.name}", p.read_bytes()) for p in list_images(shipped)])
    ds = _set5_dataset(closed_port_url("Set5_HR.tar.gz"))
    result = fetch_dataset(ds, root, progress=False, lock_file=tmp_path / "l.yaml", retries=0)
    assert result.status == "installed" and result.verified is True
    assert os.listdir(root / "downloads") == ["Set5_HR.tar.gz"]


def test_fetch_training_dataset_layout(server, tmp_path):
    # A two-image stand-in for DIV2K: HR and LR archives installed as in the official layout.
    base, state = server
    rng = np.random.default_rng(7)
    for name, inner, shape in (("T_train_HR.zip", "T_train_HR", (8, 8, 3)),
                               ("T_train_LR_bicubic_X4.zip", "T_train_LR_bicubic/X4", (2, 2, 3))):
        entries = []
        for i in (1, 2):
            write_png(tmp_path / "img.png", rng.integers(0, 256, shape, dtype=np.uint8))
            suffix = "x4" if "LR" in name else ""
            entries.append((f"{inner}/{i:04d}{suffix}.png", (tmp_path / "img.png").read_bytes()))
        data = _zip(tmp_path / name, entries).read_bytes()
        state.files[f"/{name}"] = data
    ds = Dataset(
        name="T", kind="train",
        archives=(Archive("T_train_HR.zip", (f"{base}/T_train_HR.zip",), md5=md5(state.files["/T_train_HR.zip"])),
                  Archive("T_train_LR_bicubic_X4.zip", (f"{base}/T_train_LR_bicubic_X4.zip",))),
        hr_glob="T_*_HR/*.png", manifest_key=None, notes="test",
        installs=(Install("T_train_HR.zip", "T_train_HR/*.png", "T/T_train_HR", 2),
                  Install("T_train_LR_bicubic_X4.zip", "T_train_LR_bicubic/X4/*.png", "T/T_train_LR_bicubic/X4", 2)),
    )
    root = tmp_path / "data"
    result = fetch_dataset(ds, root, progress=False, lock_file=tmp_path / "lock.yaml")
    assert result.status == "installed" and result.verification is None
    assert [p.name for p in list_images(root / "T" / "T_train_HR")] == ["0001.png", "0002.png"]
    assert [p.name for p in list_images(root / "T" / "T_train_LR_bicubic" / "X4")] == ["0001x4.png", "0002x4.png"]
    assert list(read_lock(tmp_path / "lock.yaml")) == ["T_train_LR_bicubic_X4.zip"]  # only the one without md5
    assert fetch_dataset(ds, root, progress=False, lock_file=tmp_path / "lock.yaml").status == "present"
    assert len(state.requests) == 2
