"""The registry of released checkpoints (``config/checkpoints.yaml``): status, fetching, paths.

Why a registry: the ``released`` tier evaluates the authors' weights with the harness, and those
weights come from very different places -- two files on the EDSR server with a checksum prefix in
their names, and Google Drive / Dropbox folders that cannot be fetched by a script.  One file says,
for every checkpoint, what it is (backbone, method, the experiment name of its released log), where
it comes from, where it must be placed, and how to check it.  Absent checkpoints are never an error:
the pipeline evaluates what is present and lists the rest (``render_status``).

Checksums: an entry may pin a full ``sha256``; otherwise the sha256 seen at the first download (or
the first ``fetch`` of a file placed by hand) is recorded in the lock file shared with the dataset
downloader (``config/checksums.lock.yaml``, trust on first use) and enforced afterwards.  A
``sha256_prefix`` (the torch.hub file-name convention ``name-<first 8+ hex of sha256>.pt``) is
checked on every download.

This module imports only the standard library and PyYAML at import time, because the Snakefile
reads the registry while it parses (decides which checkpoints are present).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pcl.errors import PCLError
from pcl.hashing import sha256_file
from pcl.yamlio import read_yaml

log = logging.getLogger(__name__)

#: Environment variable that overrides the registry's checkpoint folder.
ENV_DIR = "PCL_CHECKPOINT_DIR"
#: Methods a registry entry may name (Table II rows); backbones come from pcl.models.registry.
METHODS: tuple[str, ...] = ("official", "pcl")
_ENTRY_KEYS = {
    "name": str,
    "backbone": str,
    "method": str,
    "experiment": str,
    "file": str,
    "url": (str, type(None)),
    "sha256_prefix": (str, type(None)),
    "sha256": (str, type(None)),
    "source": str,
    "manual": (str, type(None)),
}
_OPTIONAL_KEYS = {"path": (str, type(None))}
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True)
class Checkpoint:
    """One registry entry with its resolved local path."""

    name: str
    backbone: str
    method: str
    experiment: str
    file: str
    url: str | None
    sha256_prefix: str | None
    sha256: str | None
    source: str
    manual: str | None
    path: Path

    @property
    def downloadable(self) -> bool:
        return self.url is not None

    def how_to_get(self) -> str:
        """One line: the command that fetches it, or where to place the file by hand."""
        if self.downloadable:
            return f"`pcl checkpoints fetch {self.name}` (downloads {self.url})"
        text = (self.manual or "download it by hand").strip().rstrip(".")
        return f"{text}; save it as `{self.path}`"


@dataclass(frozen=True)
class Registry:
    """The parsed registry: entries, the folder they live in and the lock file."""

    config: Path
    directory: Path
    directory_source: str
    lock_file: Path
    entries: tuple[Checkpoint, ...]

    def get(self, name: str) -> Checkpoint:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise PCLError(f"unknown checkpoint {name!r}; known: {', '.join(e.name for e in self.entries)} (or all)")


def _fail(where: str, message: str) -> PCLError:
    return PCLError(f"{where}: {message}")


def load_registry(config: Path, *, checkpoint_dir: str | Path | None = None) -> Registry:
    """Read and validate ``config/checkpoints.yaml``.

    The checkpoint folder is ``checkpoint_dir`` if given, else ``$PCL_CHECKPOINT_DIR``, else the
    file's ``dir``; an entry's ``path`` (if set) overrides ``<folder>/<file>``.
    """
    config = Path(config)
    data = read_yaml(config, what="checkpoint registry",
                     missing_hint="pass --config or restore config/checkpoints.yaml")
    if not isinstance(data, dict) or data.get("version") != 1:
        raise _fail(str(config), "expected a mapping with 'version: 1', 'dir', 'lock_file' and 'checkpoints'")
    extra = set(data) - {"version", "dir", "lock_file", "checkpoints"}
    if extra:
        raise _fail(str(config), f"unknown top-level key {sorted(extra)[0]!r}; allowed: version, dir, lock_file, checkpoints")
    if checkpoint_dir:
        directory, source = Path(checkpoint_dir), "--dir"
    elif os.environ.get(ENV_DIR):
        directory, source = Path(os.environ[ENV_DIR]), f"${ENV_DIR}"
    else:
        if not isinstance(data.get("dir"), str) or not data["dir"].strip():
            raise _fail(f"{config}: dir", "must name the checkpoint folder (e.g. data/checkpoints)")
        directory, source = Path(data["dir"]), f"{config} dir"
    lock = data.get("lock_file")
    if lock is None:
        from pcl.data.lockfile import default_lock_file

        lock_file = default_lock_file()
    elif isinstance(lock, str) and lock.strip():
        lock_file = Path(lock)
    else:
        raise _fail(f"{config}: lock_file", "must be a path (or omitted for config/checksums.lock.yaml)")
    items = data.get("checkpoints")
    if not isinstance(items, list):
        raise _fail(f"{config}: checkpoints", "must be a list of entries")
    entries = [_entry(config, i, item, directory) for i, item in enumerate(items)]
    for key in ("name", "experiment", "path"):
        seen: set = set()
        for entry in entries:
            value = getattr(entry, key)
            if value in seen:
                raise _fail(str(config), f"two entries share {key} {str(value)!r}; each must be unique")
            seen.add(value)
    return Registry(config, directory, source, lock_file, tuple(entries))


def _entry(config: Path, index: int, item: object, directory: Path) -> Checkpoint:
    where = f"{config}: checkpoints[{index}]"
    if not isinstance(item, dict):
        raise _fail(where, f"must be a mapping with keys {', '.join(_ENTRY_KEYS)}")
    where = f"{config}: checkpoint {item.get('name', index)!r}"
    for key in item:
        if key not in _ENTRY_KEYS and key not in _OPTIONAL_KEYS:
            raise _fail(where, f"unknown key {key!r}; allowed: {', '.join([*_ENTRY_KEYS, *_OPTIONAL_KEYS])}")
    for key, kind in _ENTRY_KEYS.items():
        if key not in item:
            raise _fail(where, f"missing key {key!r} (use null where a value is unknown)")
        if not isinstance(item[key], kind) or (isinstance(item[key], str) and not item[key].strip()):
            raise _fail(where, f"key {key!r} has the wrong type or is empty: {item[key]!r}")
    from pcl.models.registry import backbone_names

    if item["backbone"] not in backbone_names():
        raise _fail(where, f"backbone {item['backbone']!r} is not one of {', '.join(backbone_names())}")
    if item["method"] not in METHODS:
        raise _fail(where, f"method {item['method']!r} is not one of {', '.join(METHODS)}")
    if not item["experiment"].startswith(f"{item['backbone']}-{item['method']}"):
        raise _fail(where, f"experiment {item['experiment']!r} must start with {item['backbone']}-{item['method']} (its Table II row)")
    for key in ("sha256_prefix", "sha256"):
        value = item[key]
        if value is not None and not (_HEX.match(value) and (len(value) == 64 if key == "sha256" else 8 <= len(value) <= 64)):
            raise _fail(where, f"{key} {value!r} must be lowercase hex ({'64' if key == 'sha256' else '8 or more'} digits)")
    if item["sha256"] and item["sha256_prefix"] and not item["sha256"].startswith(item["sha256_prefix"]):
        raise _fail(where, "sha256 does not start with sha256_prefix; one of them is wrong")
    if item["url"] is None and not item["manual"]:
        raise _fail(where, "an entry without url needs 'manual' instructions (where to download it by hand)")
    if "/" in item["file"] or "\\" in item["file"]:
        raise _fail(where, f"file {item['file']!r} must be a bare file name (use 'path' for another folder)")
    path = Path(item["path"]) if item.get("path") else directory / item["file"]
    fields = {k: item[k] for k in _ENTRY_KEYS}
    return Checkpoint(**fields, path=path)


# --------------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------------


def present_checkpoints(registry: Registry) -> list[Checkpoint]:
    """Entries whose file exists (what the ``released`` tier evaluates)."""
    return [e for e in registry.entries if e.path.is_file()]


def expected_sha256(entry: Checkpoint, lock_file: Path) -> tuple[str | None, str]:
    """(full sha256 the file must have, where it comes from): pinned in the registry, else the lock."""
    if entry.sha256:
        return entry.sha256, "registry"
    from pcl.data.lockfile import pinned_sha256

    recorded = pinned_sha256(lock_file, entry.path.name)
    return (recorded, f"lock file {lock_file}") if recorded else (None, "")


def verify_file(entry: Checkpoint, lock_file: Path) -> tuple[bool, str, str]:
    """Hash a present file: (ok, sha256, what was compared); checks the full sha256 or the prefix."""
    actual = sha256_file(entry.path)
    expected, source = expected_sha256(entry, lock_file)
    if expected:
        return actual == expected, actual, f"sha256 {'matches' if actual == expected else 'differs from'} the {source}"
    if entry.sha256_prefix:
        ok = actual.startswith(entry.sha256_prefix)
        return ok, actual, f"sha256 prefix {entry.sha256_prefix} {'matches' if ok else 'does not match'}"
    return True, actual, "no checksum known yet (recorded on the next `pcl checkpoints fetch`)"


@dataclass(frozen=True)
class Status:
    """What ``pcl checkpoints list`` reports for one entry."""

    entry: Checkpoint
    present: bool
    size: int | None
    check: str
    ok: bool = True


def checkpoint_status(registry: Registry, *, hash_files: bool = False) -> list[Status]:
    """Present/absent for every entry; with ``hash_files`` present files are also verified."""
    out = []
    for entry in registry.entries:
        if not entry.path.is_file():
            out.append(Status(entry, False, None, ""))
            continue
        size = entry.path.stat().st_size
        if hash_files:
            ok, _, check = verify_file(entry, registry.lock_file)
            out.append(Status(entry, True, size, check, ok))
        else:
            out.append(Status(entry, True, size, "not hashed (use --hash)"))
    return out


def render_status(statuses: list[Status], registry: Registry) -> str:
    """Markdown status of the released checkpoints (``reports/released_status.md``)."""
    present = [s for s in statuses if s.present]
    lines = [
        "# Released checkpoints",
        "",
        f"Registry: `{registry.config}`. Checkpoint folder: `{registry.directory}` (from {registry.directory_source}; "
        f"override with `--dir` or `${ENV_DIR}`). Lock file: `{registry.lock_file}`.",
        "",
        f"{len(present)} of {len(statuses)} present. The `released` tier evaluates every present checkpoint on every "
        "benchmark present (protocol `authors`) and compares it image by image with its released log; absent "
        "checkpoints are listed here and are not a failure.",
        "",
        "| name | backbone | method | experiment | status | path | how to get it |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in statuses:
        e = s.entry
        if s.present:
            state = f"present ({s.size / 1e6:.1f} MB)" + ("" if s.ok else f"; **{s.check}**")
            how = e.source
        else:
            state, how = "absent", e.how_to_get()
        cells = [e.name, e.backbone, e.method, f"`{e.experiment}`", state, f"`{e.path}`", how]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    absent = [s for s in statuses if not s.present]
    if absent:
        lines += ["", "To fetch everything that has a URL: `pcl checkpoints fetch all`."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# fetching
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchResult:
    """Outcome of fetching one entry; ``failed`` decides the exit code."""

    name: str
    status: str
    """present, downloaded, manual, unavailable or mismatch."""
    detail: str = ""
    failed: bool = False


class _DropUnverifiedWarning(logging.Filter):
    """The downloader warns that a file without a known checksum is unverified; here the prefix
    is checked and the sha256 pinned right after, so that warning would mislead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "no checksum known and no lock file given" not in record.getMessage()


def fetch_checkpoints(
    registry: Registry, names: list[str], *, retries: int = 3, backoff: float = 1.0, timeout: float = 30.0
) -> list[FetchResult]:
    """Fetch the named entries (or ``all``); entries without a URL are reported with instructions.

    A manual entry counts as failed only when it was named explicitly; under ``all`` it is reported.
    """
    wanted = list(registry.entries) if names == ["all"] or "all" in names else [registry.get(n) for n in names]
    explicit = not ("all" in names)
    return [_fetch_one(registry, e, explicit=explicit, retries=retries, backoff=backoff, timeout=timeout) for e in wanted]


def _fetch_one(registry: Registry, entry: Checkpoint, *, explicit: bool, retries: int, backoff: float, timeout: float) -> FetchResult:
    from pcl.data.fetch import DownloadUnavailable
    from pcl.data.lockfile import record_lock
    from pcl.data.sources import Archive

    lock = registry.lock_file
    expected, _ = expected_sha256(entry, lock)
    archive = Archive(filename=entry.path.name, urls=(entry.url,) if entry.url else (), sha256=expected)
    if entry.path.is_file():
        ok, actual, check = verify_file(entry, lock)
        if not ok:
            return FetchResult(entry.name, "mismatch", f"{entry.path}: {check} (sha256 {actual}); delete it and fetch again", True)
        if expected is None:
            record_lock(lock, archive, actual, entry.path.stat().st_size, entry.url)
            check = f"sha256 {actual} recorded in {lock} (trust on first use)"
        return FetchResult(entry.name, "present", f"{entry.path}; {check}")
    if not entry.downloadable:
        return FetchResult(entry.name, "manual", entry.how_to_get(), explicit)
    from pcl.data.fetch import download, log as download_log

    flt = _DropUnverifiedWarning()
    download_log.addFilter(flt)
    try:
        path = download(archive, entry.path.parent, retries=retries, backoff=backoff, timeout=timeout, lock_file=None)
    except DownloadUnavailable as exc:
        return FetchResult(entry.name, "unavailable", str(exc), True)
    finally:
        download_log.removeFilter(flt)
    if expected is not None:
        return FetchResult(entry.name, "downloaded", f"{path}; sha256 verified")
    actual = sha256_file(path)
    if entry.sha256_prefix and not actual.startswith(entry.sha256_prefix):
        path.unlink(missing_ok=True)
        return FetchResult(
            entry.name, "mismatch",
            f"{entry.url} served a file with sha256 {actual}, which does not start with the expected prefix "
            f"{entry.sha256_prefix}; deleted. Download it from a trusted source to {entry.path}", True,
        )
    record_lock(lock, archive, actual, path.stat().st_size, entry.url)
    return FetchResult(entry.name, "downloaded", f"{path}; sha256 {actual} recorded in {lock} (trust on first use)")
