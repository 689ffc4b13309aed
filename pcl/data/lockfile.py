"""The trust-on-first-use lock file of checksums (``config/checksums.lock.yaml``).

Why a lock file: some archives (the benchmark mirrors, one DIV2K archive) and some checkpoints and
backbone weights have no published checksum.  The sha256 seen on their first download is pinned
here and enforced on every later one, so a silently changed mirror is noticed.  The dataset
downloader, the released-checkpoint registry and the backbone weights share this one file.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from pcl.atomic import atomic_write_text
from pcl.data.filelock import exclusive
from pcl.errors import PCLError
from pcl.resources import REPO_ROOT

if TYPE_CHECKING:
    from pcl.data.sources import Archive

LOCK_HEADER = (
    "# Trust-on-first-use checksums of archives that have no published checksum.\n"
    "# Written by pcl.data.download on the first successful download of such an archive and\n"
    "# enforced on every later download.  If an upstream archive changed legitimately, delete its\n"
    "# entry (after checking the new file) and fetch again.\n"
)


#: libyaml's C loader and dumper where PyYAML was built with them: the lock file is re-read and
#: rewritten on every pin, and the pure-Python parser made that ~50 ms per pin at 200 entries.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def default_lock_file() -> Path:
    """The repository's lock file of trust-on-first-use checksums."""
    return REPO_ROOT / "config" / "checksums.lock.yaml"


def read_lock(lock_file: Path) -> dict[str, dict]:
    """Entries of the lock file, ``{archive filename: {sha256, size, url, recorded}}``."""
    lock_file = Path(lock_file)
    if not lock_file.is_file():
        return {}
    try:
        data = yaml.load(lock_file.read_text(), Loader=_LOADER) or {}
    except yaml.YAMLError as exc:
        raise PCLError(f"lock file {lock_file} is not valid YAML ({exc}); fix it or delete it") from None
    entries = data.get("archives") if isinstance(data, dict) else None
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        raise PCLError(f"lock file {lock_file}: 'archives' must be a mapping; fix it or delete it")
    return entries


def pinned_sha256(lock_file: Path, filename: str) -> str | None:
    """The sha256 pinned for ``filename`` (lowercase hex), or None when the lock has none."""
    recorded = (read_lock(lock_file).get(filename) or {}).get("sha256")
    return str(recorded).lower() if recorded else None


def guard_path(lock_file: Path) -> Path:
    """The file whose flock serialises every read-modify-write of ``lock_file``."""
    lock_file = Path(lock_file)
    return lock_file.with_name(lock_file.name + ".lock")


def record_lock(lock_file: Path, archive: Archive, sha256: str, size: int, url: str | None) -> None:
    """Pin ``archive`` to ``sha256`` in the lock file (rewritten atomically).

    The read, the change and the rename happen under an exclusive flock on a separate
    ``.lock`` file: without it two processes pinning at once both read the old entries and the
    later rename drops the other's pin.
    """
    with exclusive(guard_path(lock_file)):
        entries = read_lock(lock_file)
        entries[archive.filename] = {
            "sha256": sha256,
            "size": int(size),
            "url": url,
            "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        body = yaml.dump({"version": 1, "archives": entries}, Dumper=_DUMPER, sort_keys=True,
                         default_flow_style=False)
        atomic_write_text(Path(lock_file), LOCK_HEADER + body)
