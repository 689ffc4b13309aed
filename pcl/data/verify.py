"""Verify a benchmark folder by pixel content against ``benchmark_manifest.csv``.

Why by content: file names differ between mirrors (``img_001.png`` vs ``img001.png``, ``3096``
vs ``3096.png``) and some mirrors ship re-encoded or resized versions of the "same" image, which
shift PSNR by tenths of a dB.  Hashing the decoded pixels (see :func:`pcl.data.images.pixel_sha256`)
pins the exact images with which the paper's bicubic row reproduces, whatever they are called.

B100: the manifest pins only 68 of the 100 images.  A B100 folder is ``ok`` when those 68 are
all present and it holds exactly 100 readable images; the other 32 are reported as
*unverified* (not wrong, just not pinned).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pcl.data.images import ImageReadError, image_info, list_images, pixel_sha256, shipped_resource
from pcl.data.sources import get_dataset
from pcl.errors import PCLError
from pcl.resources import resource_path

B100_EXPECTED = 100  # BSD100 test split (Martin et al. 2001; Huang et al. 2015 benchmark package)


@dataclass(frozen=True)
class ManifestEntry:
    """One row of ``benchmark_manifest.csv``."""

    dataset: str
    image: str
    mode: str
    height: int
    width: int
    channels: int
    pixel_sha256: str


@lru_cache(maxsize=None)
def _load_manifest_file(path: str) -> tuple[ManifestEntry, ...]:
    """Parse the manifest once per process."""
    rows = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        expected = ["dataset", "image", "mode", "height", "width", "channels", "pixel_sha256"]
        if reader.fieldnames != expected:
            raise PCLError(f"{path}: columns {reader.fieldnames}, expected {expected}; restore it from git")
        for row in reader:
            rows.append(
                ManifestEntry(row["dataset"], row["image"], row["mode"], int(row["height"]),
                              int(row["width"]), int(row["channels"]), row["pixel_sha256"])
            )
    return tuple(rows)


def manifest_path() -> Path:
    """Location of the shipped manifest."""
    return resource_path("reference", "benchmark_manifest.csv")


def load_manifest(manifest_key: str) -> tuple[ManifestEntry, ...]:
    """Manifest rows whose ``dataset`` column is ``manifest_key`` (e.g. ``B100_subset68``)."""
    path = manifest_path()
    if not path.is_file():
        raise PCLError(f"benchmark manifest {path} is missing; restore it with `git checkout -- resources/reference/benchmark_manifest.csv`")
    entries = tuple(e for e in _load_manifest_file(str(path)) if e.dataset == manifest_key)
    if not entries:
        raise PCLError(f"no rows for {manifest_key!r} in {path}; restore the manifest from git")
    return entries


def manifest_for(dataset: str) -> tuple[ManifestEntry, ...]:
    """Manifest rows of a benchmark given by its registry name (``BSD100`` works)."""
    ds = get_dataset(dataset)
    if ds.manifest_key is None:
        raise PCLError(f"dataset {ds.name} is training data and has no benchmark manifest")
    return load_manifest(ds.manifest_key)


@dataclass(frozen=True)
class UnmatchedFile:
    """An image whose pixels match no manifest image."""

    path: Path
    mode: str
    height: int
    width: int
    similar: tuple[str, ...] = ()  # manifest images with the same size and mode

    def describe(self) -> str:
        base = f"{self.path.name} ({self.mode} {self.width}x{self.height})"
        if len(self.similar) == 1:
            return base + f": probably a different version of {self.similar[0]}"
        if self.similar:
            shown = ", ".join(self.similar[:3]) + (", ..." if len(self.similar) > 3 else "")
            return base + f": probably a different version of one of {shown} ({len(self.similar)} missing images of this size)"
        return base + ": matches no manifest image"


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_benchmark`; ``ok`` says whether the folder can be used."""

    dataset: str
    manifest_key: str
    folder: Path
    expected_count: int
    manifest_count: int
    files: list[Path] = field(default_factory=list)
    matched: dict[str, Path] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unmatched: list[UnmatchedFile] = field(default_factory=list)
    unverified: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    duplicates: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def partial_manifest(self) -> bool:
        """True when the manifest pins only some images of the set (B100)."""
        return self.manifest_count != self.expected_count

    @property
    def ok(self) -> bool:
        if self.missing or self.unreadable or self.duplicates:
            return False
        if self.partial_manifest:
            return len(self.files) == self.expected_count
        return not self.unmatched and len(self.files) == self.expected_count

    def bad_files(self) -> list[str]:
        """One phrase per offending file, most informative first."""
        out = [f"{p.name}: unreadable ({reason})" for p, reason in self.unreadable]
        out += [u.describe() for u in self.unmatched]
        out += [f"{p.name}: duplicate of {name}" for p, name in self.duplicates]
        return out

    def summary(self) -> str:
        """One line, e.g. ``Set5: ok, 5/5 manifest images matched in data/benchmarks/Set5/HR``."""
        head = f"{self.dataset}: {'ok' if self.ok else 'FAILED'}, {len(self.matched)}/{self.manifest_count} manifest images matched"
        parts = []
        if self.partial_manifest:
            parts.append(f"{len(self.unverified)} unverified (not in manifest), {len(self.files)}/{self.expected_count} images")
        elif len(self.files) != self.expected_count:
            parts.append(f"{len(self.files)} files for {self.expected_count} expected")
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({', '.join(self.missing[:3])}{', ...' if len(self.missing) > 3 else ''})")
        bad = self.bad_files()
        if bad:
            parts.append(f"{len(bad)} bad file(s): {'; '.join(bad[:2])}{'; ...' if len(bad) > 2 else ''}")
        tail = f" in {self.folder}"
        return head + (", " + ", ".join(parts) if parts else "") + tail

    def details(self) -> str:
        """Multi-line report listing every offending file."""
        lines = [self.summary()]
        if self.missing:
            lines.append(f"missing manifest images ({len(self.missing)}):")
            lines += [f"  {name}" for name in self.missing]
        if self.unreadable:
            lines.append(f"unreadable files ({len(self.unreadable)}):")
            lines += [f"  {p}: {reason}" for p, reason in self.unreadable]
        if self.unmatched:
            lines.append(f"files matching no manifest image ({len(self.unmatched)}):")
            lines += [f"  {u.path}: {u.describe().split(': ', 1)[1]} [{u.mode} {u.width}x{u.height}]" for u in self.unmatched]
        if self.duplicates:
            lines.append(f"duplicate files ({len(self.duplicates)}):")
            lines += [f"  {p}: same pixels as {name}" for p, name in self.duplicates]
        if self.unverified:
            lines.append(f"unverified files, not pinned by the manifest ({len(self.unverified)}):")
            lines += [f"  {p.name}" for p in self.unverified]
        return "\n".join(lines)


def verify_benchmark(folder: Path, dataset: str) -> VerifyReport:
    """Hash every image in ``folder`` and match it against the manifest rows of ``dataset``."""
    folder = Path(folder)
    ds = get_dataset(dataset)
    entries = manifest_for(ds.name)
    files = list_images(folder)
    expected = B100_EXPECTED if ds.name == "B100" else len(entries)
    report = VerifyReport(ds.name, entries[0].dataset, folder, expected, len(entries), files=files)
    by_hash = {e.pixel_sha256: e for e in entries}
    by_shape: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    for e in entries:
        by_shape[(e.mode, e.height, e.width)].append(e.image)
    unmatched_paths: list[Path] = []
    for path in files:
        try:
            digest = pixel_sha256(path)
        except ImageReadError as exc:
            report.unreadable.append((path, exc.reason))
            continue
        entry = by_hash.get(digest)
        if entry is None:
            unmatched_paths.append(path)
        elif entry.image in report.matched:
            report.duplicates.append((path, entry.image))
        else:
            report.matched[entry.image] = path
    report.missing = [e.image for e in entries if e.image not in report.matched]
    missing = set(report.missing)
    for path in unmatched_paths:
        mode, height, width = image_info(path)
        similar = _similar(path, missing, by_shape.get((mode, height, width), []), report.partial_manifest)
        if report.partial_manifest and not similar:
            report.unverified.append(path)
        else:
            report.unmatched.append(UnmatchedFile(path, mode, height, width, similar))
    return report


def _similar(path: Path, missing: set[str], same_shape: list[str], partial: bool) -> tuple[str, ...]:
    """Missing manifest images that ``path`` is probably a different version of.

    A name match (``3096.png``, ``img_001_HR.png``) wins; otherwise, for a fully pinned set,
    the missing images of the same mode and size.  For B100 (partly pinned, all images 481x321)
    size says nothing, so only names count and the rest is merely unverified.
    """
    tokens = {path.stem, *re.split(r"[^A-Za-z0-9]+", path.stem)}
    by_name = tuple(sorted(n for n in missing if n in tokens))
    if by_name or partial:
        return by_name
    return tuple(n for n in same_shape if n in missing)


def _restore_hint(path: Path) -> str:
    """How to get a good copy of ``path`` back: git for shipped files, a re-download otherwise."""
    shipped = shipped_resource(path)
    if shipped is not None:
        return f"restore the shipped file with `git checkout -- {shipped}`"
    return "re-download the dataset (delete the folder and fetch it again)"


def require_verified(folder: Path, dataset: str) -> VerifyReport:
    """Verify and return the report, or raise :class:`PCLError` naming the first bad file(s)."""
    report = verify_benchmark(folder, dataset)
    if report.ok:
        return report
    bad_paths = [p for p, _ in report.unreadable] + [u.path for u in report.unmatched] + [p for p, _ in report.duplicates]
    problems = report.bad_files()[:3]
    if report.missing:
        problems.append(f"missing {', '.join(report.missing[:3])}{', ...' if len(report.missing) > 3 else ''}")
    if not problems:
        problems.append(f"{len(report.files)} images, expected {report.expected_count}")
    hint = _restore_hint(bad_paths[0]) if bad_paths else _restore_hint(Path(folder) / "x")
    raise PCLError(
        f"{report.dataset} in {folder} failed verification against the benchmark manifest: "
        f"{'; '.join(problems)}; {hint}"
    )
