"""Third-party backbone weights the harness reads from torch.hub's cache, verified by hash.

Why this module: two metrics/ablations use ImageNet backbones whose weights torchvision keeps in
``$TORCH_HOME/hub/checkpoints/`` -- AlexNet for LPIPS and VGG-19 for the VGG embedding of Table IV
(configuration 1).  torch checks a file's hash only while downloading it, never when it finds the
file already cached, so a truncated, forged or simply different file would be used silently.  The
harness therefore checks every such file itself before loading it:

* the torch.hub naming convention puts the first hex digits of the file's sha256 in its name
  (``alexnet-owt-7be5be79.pth``): the file's sha256 must start with them;
* the full sha256 seen the first time a file is accepted (``pcl weights fetch``) is recorded in the
  lock file shared with the dataset downloader and the released checkpoints
  (``config/checksums.lock.yaml``, trust on first use) and enforced afterwards.

Absent files are never downloaded behind the user's back: ``pcl weights fetch`` downloads them
(with the same resumable downloader as the data sets); offline, the error names the exact path to
place the file at and the URL to get it from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pcl.errors import PCLError
from pcl.hashing import sha256_file


@dataclass(frozen=True)
class WeightFile:
    """One backbone weight file of torch.hub's cache."""

    name: str
    file: str
    url: str
    sha256_prefix: str
    used_by: str

    @property
    def path(self) -> Path:
        return hub_checkpoint_dir() / self.file

    def how_to_get(self) -> str:
        return f"`pcl weights fetch {self.name}` (downloads {self.url}), or place the file at `{self.path}`"


#: The files the harness may load; the URLs are torchvision's own.
WEIGHTS: dict[str, WeightFile] = {
    "alexnet": WeightFile(
        "alexnet",
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "7be5be79",
        "LPIPS (lpips 0.1, AlexNet backbone)",
    ),
    "vgg19": WeightFile(
        "vgg19",
        "vgg19-dcbb9e9d.pth",
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        "dcbb9e9d",
        "Table IV configuration 1 (VGG-19 embedding)",
    ),
}


def hub_checkpoint_dir() -> Path:
    """``<torch hub dir>/checkpoints``: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub.

    Computed like ``torch.hub.get_dir`` (without importing torch: the workflow calls this while it
    parses), so the harness looks where torchvision would have saved the file.
    """
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser() / "hub" / "checkpoints"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "torch" / "hub" / "checkpoints"


def weight_file(name: str) -> WeightFile:
    """The registry entry ``name`` (a PCLError lists the known ones)."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise PCLError(f"unknown weight file {name!r}; known: {', '.join(WEIGHTS)} (or all)") from None


def recorded_sha256(entry: WeightFile, lock_file: Path | None = None) -> str | None:
    """The full sha256 pinned in the lock file for this file, if any."""
    from pcl.data.lockfile import default_lock_file, pinned_sha256

    return pinned_sha256(lock_file or default_lock_file(), entry.file)


def check_digest(entry: WeightFile, actual: str, lock_file: Path | None = None) -> str:
    """Raise PCLError unless ``actual`` is the file's sha256; return what was compared."""
    pinned = recorded_sha256(entry, lock_file)
    if pinned is not None:
        if actual != pinned:
            raise PCLError(
                f"{entry.path}: sha256 {actual} differs from {pinned} recorded in the lock file; "
                f"delete the file and run `pcl weights fetch {entry.name}`"
            )
        return "sha256 matches the lock file"
    if not actual.startswith(entry.sha256_prefix):
        raise PCLError(
            f"{entry.path}: sha256 {actual} does not start with {entry.sha256_prefix} (torchvision's published prefix); "
            f"delete the file and run `pcl weights fetch {entry.name}`"
        )
    return f"sha256 prefix {entry.sha256_prefix} matches (full digest recorded by `pcl weights fetch`)"


def verified_path(name: str, *, lock_file: Path | None = None) -> Path:
    """Path of a present, hash-checked weight file; PCLError naming the path and the URL otherwise."""
    entry = weight_file(name)
    if not entry.path.is_file():
        raise PCLError(f"{entry.used_by} needs {entry.path}, which is absent; get it with {entry.how_to_get()}")
    check_digest(entry, sha256_file(entry.path), lock_file)
    return entry.path


@dataclass(frozen=True)
class WeightStatus:
    entry: WeightFile
    present: bool
    check: str
    ok: bool


def weights_status(*, hash_files: bool = True, lock_file: Path | None = None) -> list[WeightStatus]:
    """Present/absent and hash check of every registered weight file."""
    out = []
    for entry in WEIGHTS.values():
        if not entry.path.is_file():
            out.append(WeightStatus(entry, False, "", True))
        elif not hash_files:
            out.append(WeightStatus(entry, True, "not hashed", True))
        else:
            try:
                out.append(WeightStatus(entry, True, check_digest(entry, sha256_file(entry.path), lock_file), True))
            except PCLError as exc:
                out.append(WeightStatus(entry, True, str(exc), False))
    return out


def render_weights_status(statuses: list[WeightStatus]) -> str:
    """Markdown section for the status page: what each file is for and how to get the absent ones."""
    lines = [
        "# Backbone weights (torch.hub cache)",
        "",
        f"Folder: `{hub_checkpoint_dir()}` (set `TORCH_HOME` to move it). Every file is checked against "
        "torchvision's sha256 prefix and, once fetched, its full sha256 in `config/checksums.lock.yaml`. "
        "Without the AlexNet file the LPIPS cells of Tables III and VI read `∅` (not computed).",
        "",
        "| name | used by | status | path | how to get it |",
        "|---|---|---|---|---|",
    ]
    for s in statuses:
        e = s.entry
        state = ("present; " + s.check) if s.present and s.ok else ("**refused**: " + s.check if s.present else "absent")
        how = "" if s.present and s.ok else e.how_to_get()
        lines.append("| " + " | ".join(c.replace("|", "/") for c in (e.name, e.used_by, state, f"`{e.path}`", how)) + " |")
    return "\n".join(lines) + "\n"


def fetch_weights(names: list[str], *, lock_file: Path | None = None, retries: int = 3, timeout: float = 30.0) -> list[str]:
    """Download (or accept a hand-placed) file per name, check it and pin its sha256; one line each.

    Raises PCLError on a hash mismatch (the downloaded file is deleted) or when a source is
    unreachable, naming the path to place the file at.
    """
    from pcl.data.fetch import DownloadUnavailable, download
    from pcl.data.lockfile import default_lock_file, record_lock
    from pcl.data.sources import Archive

    lock = lock_file or default_lock_file()
    wanted = list(WEIGHTS.values()) if "all" in names else [weight_file(n) for n in names]
    lines = []
    for entry in wanted:
        archive = Archive(filename=entry.file, urls=(entry.url,), sha256=recorded_sha256(entry, lock))
        if not entry.path.is_file():
            try:
                download(archive, entry.path.parent, retries=retries, timeout=timeout, lock_file=None)
            except DownloadUnavailable as exc:
                raise PCLError(f"{entry.name}: {exc}; place the file by hand at {entry.path}") from None
        actual = sha256_file(entry.path)
        try:
            check = check_digest(entry, actual, lock)
        except PCLError:
            entry.path.unlink(missing_ok=True)
            raise
        if recorded_sha256(entry, lock) is None:
            record_lock(lock, archive, actual, entry.path.stat().st_size, entry.url)
            check = f"sha256 {actual} recorded in {lock} (trust on first use)"
        lines.append(f"{entry.name}: {entry.path}; {check}")
    return lines
