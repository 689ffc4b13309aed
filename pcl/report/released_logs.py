"""Parser for the authors' released per-image evaluation logs (``src/PSNR_SSIM/*.log``).

Why: the logs are the only artefact that ties Table II's PCL rows to images, so they become
result rows of tier ``reported`` / protocol ``authors`` (docs/protocols.md §3 and §8) and
every comparison with the paper is computed from them.  Format, one block per benchmark in the
order Set5, Set14, B100, Urban100, Manga109::

    Testing Y channel.
      1 - baby                     . \tPSNR: 33.974356 dB, \tSSIM: 0.896573
    ...
    Average: PSNR: 32.484510 dB, SSIM: 0.898761

``HAN_Ours.log`` holds the whole evaluation twice; the copies are verified identical and one is
kept.  Entry point for the CLI: ``ingest(logs_dir, out_dir)``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

from pcl.errors import PCLError
from pcl.names import DATASET_SIZES, DATASETS
from pcl.report.results import result_path, write_rows

LOG_EXPERIMENTS: dict[str, tuple[str, str]] = {
    "EDSR_RAW_OFFICIAL": ("edsr-l", "official"),
    "EDSR_Ours": ("edsr-l", "pcl"),
    "RCAN_OFFICIAL": ("rcan", "official"),
    "RCAN_Ours": ("rcan", "pcl"),
    "HAN_OFFICIAL": ("han", "official"),
    "HAN_Ours": ("han", "pcl"),
    "NLSNx4_official": ("nlsn", "official"),
    "NLSNx4_Ours": ("nlsn", "pcl"),
}
"""Log file stem -> (backbone, method); docs/protocols.md §8 (the official EDSR is EDSR-L)."""

LOG_SCALE = 4
LOG_TIER = "reported"
LOG_PROTOCOL = "authors"
AVERAGE_TOLERANCE = 1e-6
"""Stated averages and per-image values are printed with 6 decimals, so their mean agrees to 1e-6."""

_NUM = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+|inf|nan))"
_HEADER = "Testing Y channel."
_IMAGE_RE = re.compile(rf"^\s*(\d+)\s+-\s+(\S+?)\s*\.\s+PSNR:\s*{_NUM}\s*dB,\s+SSIM:\s*{_NUM}\s*$")
_AVERAGE_RE = re.compile(rf"^Average:\s+PSNR:\s*{_NUM}\s*dB,\s+SSIM:\s*{_NUM}\s*$")


@dataclass(frozen=True)
class LogImage:
    """One per-image line."""

    index: int
    name: str
    psnr: float
    ssim: float
    line: int


@dataclass(frozen=True)
class LogBlock:
    """One benchmark's block: the per-image lines and the stated ``Average`` line."""

    dataset: str
    images: tuple[LogImage, ...]
    stated_psnr: float
    stated_ssim: float
    first_line: int
    average_line: int

    def mean(self, metric: str) -> float:
        """Arithmetic mean of the per-image values (what the ``Average`` line should state)."""
        values = [getattr(im, metric) for im in self.images]
        return math.fsum(values) / len(values)

    def stated(self, metric: str) -> float:
        """The ``Average`` line's value for ``metric`` ('psnr' or 'ssim')."""
        return self.stated_psnr if metric == "psnr" else self.stated_ssim


@dataclass(frozen=True)
class ParsedLog:
    """A parsed log: one block per benchmark, plus what identifies the file."""

    path: Path
    sha256: str
    blocks: tuple[LogBlock, ...]
    n_lines: int
    duplicated: bool
    """True when the file held the evaluation twice (identical copies, one kept)."""

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def run_id(self) -> str:
        """File name + sha256 prefix: names the exact bytes the rows came from."""
        return f"{self.path.name}@{self.sha256[:12]}"

    def block(self, dataset: str) -> LogBlock:
        for blk in self.blocks:
            if blk.dataset == dataset:
                return blk
        raise KeyError(dataset)


@dataclass(frozen=True)
class Mismatch:
    """A stated ``Average`` that differs from the mean of its per-image lines."""

    log: str
    dataset: str
    metric: str
    stated: float
    recomputed: float
    line: int

    @property
    def difference(self) -> float:
        return self.recomputed - self.stated


def log_identity(name: str) -> tuple[str, str]:
    """(backbone, method) of a released log from its file stem; PCLError for an unknown file."""
    try:
        return LOG_EXPERIMENTS[name]
    except KeyError:
        raise PCLError(
            f"released log {name!r} is not one of the known files ({', '.join(LOG_EXPERIMENTS)}); "
            "add it to pcl.report.released_logs.LOG_EXPERIMENTS or remove it from the logs folder"
        ) from None


def experiment_name(backbone: str, method: str) -> str:
    return f"{backbone}-{method}"


def _parse_blocks(path: Path, lines: list[str], start: int) -> tuple[list[LogBlock], int]:
    """Parse the five blocks starting at 0-based line ``start``; return them and the next index."""
    blocks: list[LogBlock] = []
    i = start
    for dataset in DATASETS:
        expected = DATASET_SIZES[dataset]
        if i >= len(lines):
            raise PCLError(f"{path}: ends at line {len(lines)} before the {dataset} block; the log is truncated")
        if lines[i].strip() != _HEADER:
            raise PCLError(f"{path}: line {i + 1}: expected {_HEADER!r} opening the {dataset} block, found {lines[i].strip()!r}")
        first = i + 1
        i += 1
        images: list[LogImage] = []
        while True:
            if i >= len(lines):
                raise PCLError(f"{path}: {dataset} block (line {first}) has no 'Average:' line; the log is truncated")
            text = lines[i]
            avg = _AVERAGE_RE.match(text.strip())
            if avg:
                break
            m = _IMAGE_RE.match(text)
            if not m:
                raise PCLError(
                    f"{path}: line {i + 1}: cannot parse {text.strip()!r} in the {dataset} block; "
                    "expected '<index> - <name> . PSNR: <x> dB, SSIM: <y>' or 'Average: ...'"
                )
            index = int(m.group(1))
            if index != len(images) + 1:
                raise PCLError(f"{path}: line {i + 1}: image index {index} in the {dataset} block, expected {len(images) + 1}")
            images.append(LogImage(index, m.group(2), float(m.group(3)), float(m.group(4)), i + 1))
            i += 1
        if len(images) != expected:
            raise PCLError(
                f"{path}: line {i + 1}: the {dataset} block (from line {first}) holds {len(images)} images, "
                f"expected {expected}; the log is incomplete or the blocks are out of order"
            )
        blocks.append(LogBlock(dataset, tuple(images), float(avg.group(1)), float(avg.group(2)), first, i + 1))
        i += 1
    return blocks, i


def parse_log(path: Path) -> ParsedLog:
    """Parse one released log; a doubled evaluation is checked for identical copies and kept once.

    Raises ``PCLError`` naming the file and line for a malformed line, a block with the wrong
    number of images, a truncated file, or a second copy that differs (naming the block).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PCLError(f"cannot read released log {path}: {exc.strerror}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise PCLError(f"{path}: not an ASCII text log; is this a released evaluation log?") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    blocks, nxt = _parse_blocks(path, lines, 0)
    duplicated = False
    if nxt < len(lines):
        copy, end = _parse_blocks(path, lines, nxt)
        for a, b in zip(blocks, copy):
            first_a, first_b = a.first_line - 1, b.first_line - 1
            seg_a = lines[first_a : a.average_line]
            seg_b = lines[first_b : b.average_line]
            if seg_a != seg_b:
                k = next(j for j, (x, y) in enumerate(zip(seg_a, seg_b)) if x != y)
                raise PCLError(
                    f"{path}: the file holds the evaluation twice but the {a.dataset} blocks differ "
                    f"(line {first_a + k + 1} vs line {first_b + k + 1}); keep only the copy that is right"
                )
        if end < len(lines):
            raise PCLError(f"{path}: line {end + 1}: unexpected text after the second copy of the evaluation")
        duplicated = True
    return ParsedLog(path, hashlib.sha256(data).hexdigest(), tuple(blocks), len(lines), duplicated)


def log_rows(parsed: ParsedLog) -> list[dict]:
    """Result rows (tier ``reported``, protocol ``authors``, x4) for every image of a parsed log.

    Height, width and channels stay empty because the log does not record them; seed is empty
    because the authors' training seed of the evaluated checkpoint is unknown.
    """
    backbone, method = log_identity(parsed.name)
    experiment = experiment_name(backbone, method)
    rows = []
    for blk in parsed.blocks:
        for im in blk.images:
            rows.append(
                {
                    "tier": LOG_TIER,
                    "experiment": experiment,
                    "backbone": backbone,
                    "method": method,
                    "dataset": blk.dataset,
                    "image": im.name,
                    "scale": LOG_SCALE,
                    "protocol": LOG_PROTOCOL,
                    "psnr": im.psnr,
                    "ssim": im.ssim,
                    "height": None,
                    "width": None,
                    "channels": None,
                    "seed": None,
                    "run_id": parsed.run_id,
                }
            )
    return rows


def average_differences(parsed: ParsedLog) -> list[Mismatch]:
    """Recomputed mean vs stated ``Average`` for every block and metric (passing ones included)."""
    out = []
    for blk in parsed.blocks:
        for metric in ("psnr", "ssim"):
            out.append(Mismatch(parsed.name, blk.dataset, metric, blk.stated(metric), blk.mean(metric), blk.average_line))
    return out


def check_averages(parsed: ParsedLog, tolerance: float = AVERAGE_TOLERANCE) -> list[Mismatch]:
    """Blocks whose stated ``Average`` differs from the per-image mean by more than ``tolerance``,
    largest difference first (empty when the log is self-consistent)."""
    bad = [m for m in average_differences(parsed) if not abs(m.difference) <= tolerance]
    return sorted(bad, key=lambda m: -abs(m.difference) if math.isfinite(m.difference) else -math.inf)


def largest_average_difference(parsed: ParsedLog) -> Mismatch:
    """The block/metric with the largest |recomputed - stated| (to report how close they are)."""
    return max(average_differences(parsed), key=lambda m: abs(m.difference))


def find_logs(logs_dir: Path) -> list[Path]:
    """The ``*.log`` files of a logs folder, sorted; PCLError if there are none."""
    logs_dir = Path(logs_dir)
    if not logs_dir.is_dir():
        raise PCLError(f"released-logs folder {logs_dir} not found; pass the folder holding the *.log files")
    paths = sorted(logs_dir.glob("*.log"))
    if not paths:
        raise PCLError(f"no *.log files in {logs_dir}; pass the folder holding the released logs")
    return paths


def parse_logs(logs_dir: Path) -> dict[str, ParsedLog]:
    """Parse every known log in ``logs_dir`` (stem -> ParsedLog); unknown file names are refused."""
    out = {}
    for path in find_logs(logs_dir):
        log_identity(path.stem)
        out[path.stem] = parse_log(path)
    return out


def ingest(logs_dir: Path, out_dir: Path) -> list[Path]:
    """CLI entry (``pcl ingest-logs``): every released log into
    ``results/reported/<experiment>/authors/<dataset>.csv``; returns the written paths, sorted.

    ``out_dir`` is the results root (``results``) or the tier folder itself (``results/reported``,
    what the Snakemake rule declares as its output): a folder named ``reported`` is used as is.
    The logs are only parsed here; ``pcl check`` judges them.
    """
    out_dir = Path(out_dir)
    root = out_dir.parent if out_dir.name == LOG_TIER else out_dir
    written = []
    for parsed in parse_logs(logs_dir).values():
        rows = log_rows(parsed)
        for dataset in DATASETS:
            subset = [r for r in rows if r["dataset"] == dataset]
            experiment = subset[0]["experiment"]
            written.append(write_rows(result_path(root, LOG_TIER, experiment, LOG_PROTOCOL, dataset), subset))
    return sorted(written)
