"""``pcl score``: score any folder of SR images, with or without their ground truth.

Why: researchers already have SR outputs (their own model's, a baseline's, the harness's
``--save-sr`` folders) and want the same numbers the tables use, without running a model.  SR and
HR files pair by file stem; the usual suffixes that SR code appends to a stem (``_x4``, ``x4``,
``_SR``, ``_x4_SR``) are also accepted.  Every unpaired file is named, and nothing is written then;
two SR files that pair with one HR image (``baby.png`` and ``baby_x4.png``) are refused by name,
since scoring both would count that image twice.
One row per image (column ``image`` and one column per metric) plus a JSON sidecar with the
settings and package versions.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from pcl.atomic import atomic_write_text
from pcl.data.images import list_images, read_image
from pcl.errors import PCLError
from pcl.evaluate import refuse_shared_stems
from pcl.metrics.suite import BUILTIN, FULL_REFERENCE, MetricSuite
from pcl.outputs import check_rows_out, sidecar_of

_SUFFIX = re.compile(r"(?:_?x\d+)?(?:_(?:sr|out|rlt|result))?$", re.IGNORECASE)


def _key(stem: str) -> str:
    return _SUFFIX.sub("", stem).lower() or stem.lower()


def _one_sr_per_hr(owners: dict[Path, list[Path]], sr_dir: Path) -> None:
    """Refuse two SR files for one HR image (``baby.png`` and ``baby_x4.png``): it would be scored twice."""
    twins = [f"{' and '.join(sr.name for sr in srs)} are {'both' if len(srs) == 2 else 'all'} SR images of {hr.name}"
             for hr, srs in owners.items() if len(srs) > 1]
    if twins:
        raise PCLError(f"{sr_dir}: {'; '.join(twins)}; keep one SR file per ground-truth image and move the others out of the folder")


def pair_files(sr_dir: Path, hr_dir: Path | None) -> list[tuple[str, Path, Path | None]]:
    """(image name, SR path, HR path or None) for every SR image; PCLError naming unpaired or
    doubled files (two SR files for one HR image, or two files with one stem)."""
    sr_files = list_images(Path(sr_dir))
    if not sr_files:
        raise PCLError(f"{sr_dir}: no images found (PNG, BMP, JPEG, TIFF); point --sr-dir at a folder of SR images")
    if hr_dir is None:
        refuse_shared_stems(sr_files, Path(sr_dir))
        return [(p.stem, p, None) for p in sr_files]
    hr_files = list_images(Path(hr_dir))
    refuse_shared_stems(hr_files, Path(hr_dir))
    by_stem = {p.stem: p for p in hr_files}
    by_key: dict[str, Path] = {}
    for p in hr_files:
        by_key.setdefault(_key(p.stem), p)
    pairs = []
    owners: dict[Path, list[Path]] = {}
    unpaired_sr = []
    for sr in sr_files:
        hr = by_stem.get(sr.stem) or by_key.get(_key(sr.stem))
        if hr is None:
            unpaired_sr.append(sr.name)
            continue
        pairs.append((hr.stem, sr, hr))
        owners.setdefault(hr, []).append(sr)
    _one_sr_per_hr(owners, Path(sr_dir))
    unpaired_hr = [p.name for p in hr_files if p not in owners]
    if unpaired_sr or unpaired_hr:
        parts = []
        if unpaired_sr:
            parts.append(f"SR without HR in {hr_dir}: {', '.join(unpaired_sr)}")
        if unpaired_hr:
            parts.append(f"HR without SR in {sr_dir}: {', '.join(unpaired_hr)}")
        raise PCLError("; ".join(parts) + "; SR and HR pair by file stem, so rename or remove these files")
    return pairs


def score_folder(
    sr_dir: Path,
    out: Path,
    *,
    metrics: tuple[str, ...],
    hr_dir: Path | None = None,
    protocol: str = "matlab",
    scale: int = 4,
    crop_border: int = 0,
    device: str = "cpu",
) -> list[dict]:
    """Score every SR image of ``sr_dir``; write ``out`` (CSV) and ``out`` with ``.json`` (settings).

    ``out`` is checked first (``pcl.outputs.check_rows_out``): neither file may replace an input.
    """
    from pcl.metrics.suite import parse_metrics

    check_rows_out(Path(out), inputs={"--sr-dir": Path(sr_dir), "--hr-dir": Path(hr_dir) if hr_dir else None})

    names = parse_metrics(metrics)
    if hr_dir is None:
        needs = [m for m in names if m in FULL_REFERENCE]
        if needs:
            no_ref = ", ".join(m for m in BUILTIN if m not in FULL_REFERENCE)
            raise PCLError(f"metrics {', '.join(needs)} compare with ground truth; pass --hr-dir, or use only {no_ref}")
    if isinstance(crop_border, bool) or crop_border < 0:
        raise PCLError(f"--crop-border must be a non-negative integer (got {crop_border!r})")
    pairs = pair_files(Path(sr_dir), Path(hr_dir) if hr_dir else None)
    suite = MetricSuite(names, scale=scale, protocol=protocol, niqe_crop=crop_border, device=device)
    if hr_dir is None and suite.needs_reference():
        raise PCLError(f"metrics {', '.join(suite.needs_reference())} compare with ground truth; pass --hr-dir")
    rows = []
    t0 = time.perf_counter()
    from tqdm import tqdm

    for name, sr_path, hr_path in tqdm(pairs, desc="score", unit="img", leave=False):
        sr = read_image(sr_path)
        hr = read_image(hr_path) if hr_path is not None else None
        try:
            values = suite.score(sr, hr)
        except PCLError as exc:
            raise PCLError(f"{sr_path}: {exc}") from None
        rows.append({"image": name, **values})
    _write(Path(out), rows, suite.columns)
    from pcl.provenance import code_provenance

    sidecar = {
        "sr_dir": str(sr_dir), "hr_dir": str(hr_dir) if hr_dir else None, "images": len(rows),
        "seconds": time.perf_counter() - t0, "device": device, "crop_border_niqe": crop_border,
        **suite.describe(), **code_provenance(),
    }
    atomic_write_text(sidecar_of(Path(out)), json.dumps(sidecar, indent=2, default=str) + "\n")
    return rows


def _write(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    lines = [",".join(("image", *columns))]
    for row in rows:
        image = row["image"]
        if any(ch in image for ch in ',"\n'):
            image = '"' + image.replace('"', '""') + '"'
        lines.append(",".join([image, *(repr(float(row[c])) for c in columns)]))
    atomic_write_text(path, "\n".join(lines) + "\n")
