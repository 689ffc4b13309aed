"""Storage faults: a full disk, a read-only mount, writers killed mid-write, and output modes.

What the user must see: exit code 2 and one line naming the path, the mount and the option to
move; what must hold on disk: the previous output bit-identical, no temp file left behind, and
files/folders readable by the group like ``open()``/``mkdir`` would make them.  The full-disk and
read-only tests mount a small tmpfs and therefore need root; elsewhere they are skipped.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import pcl.atomic as atomic
from pcl.atomic import HOST_TOKEN, atomic_write, atomic_write_text, clean_stale_temps, make_temp_dir
from pcl.cli import main
from pcl.errors import StorageError, storage_error_in

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
PCL = [sys.executable, "-m", "pcl"]


def _tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, keyed by relative path (what "unchanged" means here)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.tmp")]


@contextmanager
def _tmpfs(where: Path, *options: str):
    """Mount a tmpfs at ``where`` for the block; always unmounted, skipped where mount is not allowed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (run the fault tests as root or in a container)")
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs at {where}: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(mount: Path, leave_kib: int) -> None:
    """Leave about ``leave_kib`` KiB free on ``mount`` (one filler file)."""
    free_kib = shutil.disk_usage(mount).free // 1024
    with open(mount / "filler", "wb") as handle:
        handle.write(b"\0" * max(0, free_kib - leave_kib) * 1024)


def _pcl(*args: str, umask: int | None = None) -> subprocess.CompletedProcess:
    def set_umask() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run([*PCL, "--log-level", "WARNING", *args], cwd=REPO, capture_output=True, text=True,
                          preexec_fn=set_umask, timeout=300)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("pcl: error:")]


# ------------------------------------------------------------------------------------------ full disk


def test_prepare_on_full_disk_is_one_line_and_keeps_previous_lr(tmp_path: Path, set5_dir: Path) -> None:
    """A 1 MiB tmpfs holds a x4 preparation of Set5 (~75 KiB); with ~24 KiB left, the x2 LR of
    baby.png (~110 KiB PNG) cannot fit, so the rerun must stop on the first image with exit 2."""
    with _tmpfs(tmp_path / "mnt", "size=1m") as mount:
        out = mount / "prepared"
        first = _pcl("prepare", "--dataset", "Set5", "--hr-dir", str(set5_dir), "--out-dir", str(out), "--scale", "4")
        assert first.returncode == 0, first.stderr
        before = _tree_digest(out)
        _fill(mount, leave_kib=24)
        run = _pcl("prepare", "--dataset", "Set5", "--hr-dir", str(set5_dir), "--out-dir", str(out), "--scale", "2")
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr
        lines = _error_lines(run.stderr)
        assert len(lines) == 1, run.stderr
        assert "no space left on device while writing" in lines[0]
        assert str(out / "LR" / "baby.png") in lines[0] and str(mount) in lines[0] and "--out-dir" in lines[0]
        assert _tree_digest(out) == before  # baby.png x4 is bit-identical, nothing else was touched
        assert _temps(mount) == []


def test_atomic_write_on_full_disk_raises_storage_error_and_keeps_target(tmp_path: Path) -> None:
    """3 MiB into a 1 MiB tmpfs: the writer must fail, name the target and leave it as it was."""
    with _tmpfs(tmp_path / "mnt", "size=1m") as mount:
        target = atomic_write_text(mount / "table.csv", "previous,content\n")
        with pytest.raises(StorageError, match=r"no space left on device while writing .*table\.csv: free space on "):
            atomic_write(target, lambda handle: handle.write(b"x" * (3 << 20)))
        assert target.read_text() == "previous,content\n"
        assert sorted(p.name for p in mount.iterdir()) == ["table.csv"]


def test_checkpoint_on_full_disk_through_torch_save(tmp_path: Path) -> None:
    """torch.save reports a failed write as RuntimeError; the writer still answers "no space"."""
    torch = pytest.importorskip("torch")
    with _tmpfs(tmp_path / "mnt", "size=1m") as mount:
        target = atomic_write_text(mount / "last.pt", "old checkpoint")
        with pytest.raises(StorageError, match="no space left"):
            atomic_write(target, lambda handle: torch.save({"w": torch.zeros(1 << 20)}, handle))
        assert target.read_text() == "old checkpoint"
        assert _temps(mount) == []


def test_read_only_mount_is_one_line_naming_option(tmp_path: Path, set5_dir: Path) -> None:
    """EROFS (a read-only tmpfs, mounted ro) is the user's environment: exit 2, one line, no output."""
    with _tmpfs(tmp_path / "ro", "size=1m", "ro") as mount:
        run = _pcl("prepare", "--dataset", "Set5", "--hr-dir", str(set5_dir), "--out-dir", str(mount / "p"),
                   "--scale", "4")
        assert run.returncode == 2, run.stderr
        lines = _error_lines(run.stderr)
        assert len(lines) == 1 and "read-only file system" in lines[0] and "--out-dir" in lines[0], run.stderr
        assert "Traceback" not in run.stderr
        assert list(mount.iterdir()) == []


#: Run a command as uid/gid 65534 with no capabilities (setpriv from util-linux).
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_permission_denied_output_is_one_line(set5_dir: Path) -> None:
    """An account that may not write the output folder (uid 65534 under a root-owned 0755 folder)
    gets exit 2 and one line naming the folder it could not create and the option that chose it."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("switching to an unprivileged account needs root and setpriv (root ignores permissions)")
    probe = subprocess.run([*NOBODY, sys.executable, "-c", "import pcl.cli"], cwd=REPO, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"uid 65534 cannot import pcl from {REPO}: {probe.stderr.strip()[-200:]}")
    base = Path(tempfile.mkdtemp(prefix="pcl-locked-"))  # /tmp itself: pytest's folders are 0700
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o755)
        run = subprocess.run([*NOBODY, *PCL, "--log-level", "WARNING", "prepare", "--dataset", "Set5",
                              "--hr-dir", str(set5_dir), "--out-dir", str(locked / "p"), "--scale", "4"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, run.stderr
        assert _error_lines(run.stderr) == [
            f"pcl: error: permission denied on {locked / 'p'}: give this account access "
            "(chmod/chown the folder) or point --out-dir elsewhere"], run.stderr
        assert list(locked.iterdir()) == []
    finally:
        shutil.rmtree(base)


def test_raw_enospc_without_file_name_names_the_output_option(tmp_path: Path, monkeypatch, capsys) -> None:
    """A library write that hits ENOSPC on an open handle carries no file name; the CLI then names
    the command's output option and its path (the ``--out-dir`` given below)."""
    import pcl.data.prepare

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pcl.data.prepare, "prepare_benchmark", full)
    code = main(["prepare", "--dataset", "Set5", "--hr-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert err.startswith(f"pcl: error: no space left on device while writing {tmp_path / 'out'}")
    assert "point --out-dir elsewhere" in err


def test_wrapped_quota_error_and_other_errors(tmp_path: Path, monkeypatch, capsys) -> None:
    """EDQUOT hidden behind a library's RuntimeError still becomes one line; an unexpected OSError
    (EIO: a failing device, not a user setting) keeps its traceback for a bug report."""
    import pcl.data.prepare

    def quota(*_args, **_kwargs):
        try:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(tmp_path / "out" / "LR" / "a.png"))
        except OSError as exc:
            raise RuntimeError("file write failed") from exc

    monkeypatch.setattr(pcl.data.prepare, "prepare_benchmark", quota)
    assert main(["prepare", "--dataset", "Set5", "--hr-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "disk quota exceeded" in err and "a.png" in err and "--out-dir" in err

    def eio(*_args, **_kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(pcl.data.prepare, "prepare_benchmark", eio)
    with pytest.raises(OSError):
        main(["prepare", "--dataset", "Set5", "--hr-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])


def test_storage_error_survives_a_worker_process_boundary(tmp_path: Path) -> None:
    """Errors raised in a ProcessPoolExecutor worker are pickled; the cause must come back intact."""
    problem = StorageError(tmp_path / "x.png", OSError(errno.ENOSPC, "No space left on device"))
    again = pickle.loads(pickle.dumps(problem))
    assert str(again) == str(problem) and again.errno == errno.ENOSPC
    assert storage_error_in(RuntimeError("x")) is None


# ------------------------------------------------------------------------------- stale temp files


def _dead_pid() -> int:
    """A PID that existed and is gone: a finished, reaped child."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_stale_temps_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    """Rules of pcl.atomic._is_stale: same host + dead PID -> removed at once; own live PID, another
    host (fresh), an unrelated hidden file -> kept; anything of ours older than STALE_AGE_S -> removed."""
    dead = tmp_path / f".a.csv.pcl-{HOST_TOKEN}-{_dead_pid()}-0123abcd.tmp"
    live = tmp_path / f".b.csv.pcl-{HOST_TOKEN}-{os.getpid()}-0123abcd.tmp"
    other_host = "0" * 8 if HOST_TOKEN != "0" * 8 else "1" * 8
    remote_fresh = tmp_path / f".c.csv.pcl-{other_host}-{_dead_pid()}-0123abcd.tmp"
    remote_old = tmp_path / f".d.csv.pcl-{other_host}-{_dead_pid()}-0123abcd.tmp"
    legacy_old = tmp_path / ".e.csv.k3j_9zqa.tmp"  # mkstemp name of earlier versions
    legacy_fresh = tmp_path / ".f.csv.k3j_9zqb.tmp"
    unrelated_old = tmp_path / ".notes.tmp"
    for p in (dead, live, remote_fresh, remote_old, legacy_old, legacy_fresh, unrelated_old):
        p.write_bytes(b"partial")
    for p in (remote_old, legacy_old, unrelated_old):
        _age(p, atomic.STALE_AGE_S + 60)
    atomic_write_text(tmp_path / "g.csv", "new\n")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, remote_fresh.name, legacy_fresh.name, unrelated_old.name, "g.csv"])


def test_clean_stale_temps_reports_what_it_removed(tmp_path: Path, monkeypatch) -> None:
    """The function behind the writer's sweep is usable alone; within one process the writer sweeps
    a folder again once RESCAN_S has passed (0 here), so a long-lived trainer cleans up too."""
    dead = tmp_path / f".m.pt.pcl-{HOST_TOKEN}-{_dead_pid()}-feedbeef.tmp"
    dead.write_bytes(b"x")
    assert clean_stale_temps(tmp_path) == [dead]
    assert clean_stale_temps(tmp_path / "missing") == []
    atomic_write_text(tmp_path / "m.pt", "1")
    dead.write_bytes(b"x")
    monkeypatch.setattr(atomic, "RESCAN_S", 0.0)
    atomic_write_text(tmp_path / "m.pt", "2")
    assert not dead.exists()


_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pcl.atomic import atomic_write

    def write(handle):
        handle.write(b"half of the new content")
        handle.flush()
        Path(sys.argv[2]).write_text("ready")
        time.sleep(600)

    atomic_write(Path(sys.argv[1]), write)
""")


def test_kill_9_mid_write_keeps_target_and_next_write_cleans(tmp_path: Path) -> None:
    """SIGKILL runs no cleanup: the temp stays, the target keeps its old bytes, and the next write
    to the folder (the rerun: another process, same host) removes the temp as its writer PID is gone."""
    out = tmp_path / "out"
    target = atomic_write_text(out / "results.csv", "old,rows\n")
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target), str(ready)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, "writer exited before it was killed"
            assert time.monotonic() < deadline, "writer never reached the middle of its write"
            time.sleep(0.05)
        left = _temps(out)
        assert len(left) == 1 and f"-{child.pid}-" in left[0].name
    finally:
        child.kill()
        child.wait()
    assert target.read_text() == "old,rows\n"
    assert left[0].exists()
    rerun = "import sys; from pathlib import Path; from pcl.atomic import atomic_write_text as w; w(Path(sys.argv[1]), 'x')"
    subprocess.run([sys.executable, "-c", rerun, str(out / "other.csv")], cwd=REPO, check=True)
    assert not left[0].exists()
    assert _temps(out) == []
    assert target.read_text() == "old,rows\n"


# ------------------------------------------------------------------------------------------- modes


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_modes_follow_the_umask(tmp_path: Path, umask: int, file_mode: int, dir_mode: int) -> None:
    """open() gives 0o666 & ~umask and mkdir 0o777 & ~umask; the writers must match, never 0600/0700."""
    old = os.umask(umask)
    try:
        written = atomic_write_text(tmp_path / "new" / "a.txt", "a")
        folder = make_temp_dir(tmp_path, ".cache-")
    finally:
        os.umask(old)
    assert written.stat().st_mode & 0o777 == file_mode
    assert written.parent.stat().st_mode & 0o777 == dir_mode
    assert folder.stat().st_mode & 0o777 == dir_mode


def test_prepared_outputs_are_0644_and_0755(tmp_path: Path, set5_dir: Path) -> None:
    """`pcl prepare` under umask 022, and a prepared training cache: every file 0644, folder 0755."""
    from pcl.train.data import DataSpec, prepare_training_data

    run = _pcl("prepare", "--dataset", "Set5", "--hr-dir", str(set5_dir), "--out-dir", str(tmp_path / "p"),
               "--scale", "4", umask=0o022)
    assert run.returncode == 0, run.stderr
    old = os.umask(0o022)
    try:
        data = prepare_training_data(DataSpec(hr_dir=str(set5_dir)), tmp_path / "cache")
    finally:
        os.umask(old)
    for root in (tmp_path / "p", tmp_path / "cache"):
        for p in [root, *root.rglob("*")]:
            want = 0o755 if p.is_dir() else 0o644
            assert p.stat().st_mode & 0o777 == want, p
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [data.root.name]  # no temp folder left


def test_temp_folders_of_killed_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    """A prepare or extraction killed half-way leaves its hidden temp folder; the next temp folder
    made beside it removes that one (its pid, from a finished child of this host, is dead), keeps
    a live writer's (this process) and an unrelated hidden folder, and comes out with mkdir's mode."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    crashed = tmp_path / f".Set5.extract-pcl-{HOST_TOKEN}-{dead.pid}-0badf00d.tmpdir"
    (crashed / "HR").mkdir(parents=True)
    (crashed / "HR" / "baby.png").write_bytes(b"partial")
    live = make_temp_dir(tmp_path, ".other.install-")
    unrelated = tmp_path / ".cache"
    unrelated.mkdir()
    old_mask = os.umask(0o022)
    try:
        fresh = make_temp_dir(tmp_path, ".Set5.extract-")
    finally:
        os.umask(old_mask)
    assert not crashed.exists()
    assert live.is_dir() and unrelated.is_dir() and fresh.is_dir()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o755
