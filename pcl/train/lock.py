"""One trainer per run directory: ``<run_dir>/.trainer.lock``.

Why: a killed workflow manager leaves its trainer running (on SLURM the job keeps running), and
the usual recovery (``snakemake --unlock``, ``--rerun-incomplete``) starts a second trainer in the
same folder.  Two trainers interleave their log rows, overwrite each other's checkpoints and
both report success.  The second one must stop before it touches anything.

How.  The lock file is held with ``fcntl.flock`` for the whole run; the kernel drops that lock
when its process ends, however it ends (kill -9 included), so a lock that can be taken has no
living holder on this host.  The file also holds a JSON record (host, pid, start time, SLURM job
id) that names the holder in messages and covers filesystems where flock does not reach across
hosts (some cluster filesystems lock per node).  On taking the flock:

* no record: the directory is free;
* a record of this host: its process is gone (else the flock would have been refused), so the
  lock is taken over and the takeover is logged;
* a record of another host with our SLURM job id: the batch system requeued this job onto
  another node; taken over and logged;
* a record of another host and another SLURM job that ``squeue`` reports ended: taken over and
  logged (a retry of a hard-killed job lands on another node as a new job);
* any other record of another host: that trainer may still be running where this host cannot
  see it; refused, saying how to check and how to remove the lock.

Why the record is written into the held file and not through ``pcl.atomic``: the lock is the
file's inode, and a rename would put the record into a file nobody holds.  Why the file is
removed on release (while still held) and every acquire checks that the path still names the
inode it locked: a trainer that opened the old file just before its removal must not believe it
holds the new one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pcl.atomic import FILE_MODE
from pcl.errors import PCLError

log = logging.getLogger(__name__)

LOCK_NAME = ".trainer.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a run directory: what a person needs to find and stop that trainer."""

    host: str
    pid: int
    started: str
    slurm_job: str | None

    @classmethod
    def me(cls) -> "Holder":
        return cls(host=socket.gethostname(), pid=os.getpid(),
                   started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   slurm_job=os.environ.get("SLURM_JOB_ID") or None)

    @classmethod
    def from_record(cls, data: Any) -> "Holder | None":
        """The holder of a parsed record; None when it lacks the fields."""
        if not isinstance(data, dict) or not isinstance(data.get("host"), str) or not isinstance(data.get("pid"), int):
            return None
        job = data.get("slurm_job")
        return cls(host=data["host"], pid=data["pid"], started=str(data.get("started", "?")),
                   slurm_job=str(job) if job not in (None, "") else None)

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, SLURM job {self.slurm_job or 'none'}, started {self.started}"

    def how_to_stop(self) -> str:
        job = f" or `scancel {self.slurm_job}`" if self.slurm_job else ""
        return f"`kill {self.pid}` on {self.host}{job}"


def _read_record(fd: int) -> tuple[bool, Holder | None]:
    """(whether the file holds anything, its holder or None when empty or unreadable)."""
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    if not raw.strip():
        return False, None
    try:
        return True, Holder.from_record(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return True, None


def _write_record(fd: int, holder: Holder) -> None:
    data = (json.dumps(asdict(holder)) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    os.fsync(fd)


def _names_inode(fd: int, path: Path) -> bool:
    """True when ``path`` still names the file open as ``fd`` (not removed or replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


class RunLock:
    """The lock of one run directory; ``acquire()`` before the first write, ``release()`` at the end."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        """Hold the run directory or raise PCLError (exit 2) naming the trainer that holds it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                _, holder = _read_record(fd)
                os.close(fd)
                raise PCLError(self._busy(holder)) from None
            if not _names_inode(fd, self.path):
                os.close(fd)  # its holder finished and removed it: lock the file that is there now
                continue
            try:
                self._judge(*_read_record(fd))
                _write_record(fd, Holder.me())
            except BaseException:
                os.close(fd)
                raise
            self.fd = fd
            return
        raise PCLError(f"could not lock {self.path}: other trainers keep replacing it; stop them and rerun this command")

    def release(self) -> None:
        """Remove the lock file and let it go (a no-op when not held)."""
        if self.fd is None:
            return
        try:
            if _names_inode(self.fd, self.path):
                self.path.unlink()
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _busy(self, holder: Holder | None) -> str:
        who = holder.describe() if holder else "holder unknown: its record is empty or unreadable"
        stop = holder.how_to_stop() if holder else f"find it with `fuser {self.path}`"
        return (f"run directory {self.run_dir} is in use by another trainer ({who}; lock {self.path}); let it "
                f"finish, or stop it first ({stop}), then rerun this command")

    def _judge(self, present: bool, holder: Holder | None) -> None:
        """Decide about the record left by a trainer that no longer holds the flock (see the module)."""
        if not present:
            return
        me = Holder.me()
        if holder is None:
            log.warning("taking over %s: no trainer holds it and its record is unreadable", self.path)
        elif holder.host == me.host:
            log.warning("taking over %s: its holder (%s) is no longer running", self.path, holder.describe())
        elif holder.slurm_job is not None and holder.slurm_job == me.slurm_job:
            log.warning("taking over %s from %s: the same SLURM job, requeued on %s", self.path, holder.describe(),
                        me.host)
        elif holder.slurm_job is not None and slurm_job_ended(holder.slurm_job):
            log.warning("taking over %s from %s: SLURM says that job has ended", self.path, holder.describe())
        else:
            raise PCLError(
                f"run directory {self.run_dir} is locked by a trainer on another host ({holder.describe()}; lock "
                f"{self.path}) and this host cannot tell whether it still runs; check that it has stopped "
                f"(`ps -p {holder.pid}` on {holder.host}"
                + (f", `squeue -j {holder.slurm_job}`" if holder.slurm_job else "")
                + f"), then delete {self.path} and rerun this command"
            )



def slurm_job_ended(job: str, timeout_s: float = 15.0) -> bool:
    """True only when SLURM positively says ``job`` is no longer pending or running.

    Why ask: a job killed hard on another node (out of memory, past its KillWait) leaves its record,
    and the retry that Snakemake submits runs as a new job on another node; without asking the
    batch system that retry could never tell a dead holder from a live one.  Any doubt (no
    ``squeue``, a timeout, an unexpected answer) counts as "still running".
    """
    squeue = shutil.which("squeue")
    if squeue is None or not job.replace("_", "").isdigit():
        return False
    try:
        done = subprocess.run([squeue, "-h", "-j", job, "-o", "%T"], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if done.returncode == 0:
        states = done.stdout.split()
        return not states or all(state in _ENDED_STATES for state in states)
    return "invalid job id" in (done.stderr + done.stdout).lower()


#: squeue states of a job whose processes are gone.
_ENDED_STATES = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                           "BOOT_FAIL", "DEADLINE", "PREEMPTED"})


def clear_staging(*folders: Path) -> list[Path]:
    """Remove the temporary files (``.<name>.*.tmp``, ``pcl.atomic``) that writes of a killed trainer
    left in ``folders``; call it only while holding the run's lock, when no other write can be under way."""
    removed = []
    for folder in folders:
        for path in sorted(Path(folder).glob(".*.tmp")) if Path(folder).is_dir() else []:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
