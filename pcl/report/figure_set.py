"""``pcl figures``: every figure the run's outputs allow, from the saved SR images, run logs and rows.

* Fig. 2/3 crops: for each configured image and each backbone of a tier that has a +PCL run and its
  baseline (or the official weights), HR / Bicubic / baseline / +PCL (/ control) crops with their
  scores, at the configured crop or automatically at the best and the worst patch for +PCL against
  the baseline (or official weights) and, where the tier has one, against the L1-only control
  (``..._{best,worst}_vs_<reference>.png``);
* training curves of the runs of each backbone of a trained tier (``log.csv``);
* Table VII's alpha curve, the paper beside whatever alpha runs exist.
The SR images are those ``pcl evaluate --save-sr`` wrote; their folder is read from the result
file's sidecar (``sr_images``), so a figure shows exactly the pixels that were scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pcl.errors import PCLError
from pcl.report.crops import Crop, auto_crops, comparison_figure
from pcl.report.curves import alpha_curve, training_curves
from pcl.report.results import sidecar_field

ROLE_LABELS = {"bicubic": "Bicubic", "official": "official", "baseline": "baseline", "pcl": "+PCL", "control": "control (L1)"}


@dataclass(frozen=True)
class FigureImage:
    dataset: str
    image: str
    crop: tuple[int, int, int] | None = None


def parse_images(items: list[dict]) -> list[FigureImage]:
    """The ``figures.images`` config entries; a bad entry names itself."""
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not {"dataset", "image"} <= set(item):
            raise PCLError(f"figures.images[{i}]: needs keys dataset and image (and optionally crop: [x, y, size])")
        crop = item.get("crop")
        if crop is not None and (not isinstance(crop, list) or len(crop) != 3 or not all(isinstance(v, int) for v in crop)):
            raise PCLError(f"figures.images[{i}].crop: {crop!r} must be [x, y, size] in HR pixels")
        out.append(FigureImage(str(item["dataset"]), str(item["image"]), tuple(crop) if crop else None))
    return out


def _sr_dir(results_dir: Path, tier: str, experiment: str, dataset: str) -> Path | None:
    """Where the SR images of one result set were saved (from any protocol's sidecar)."""
    for sidecar in sorted((Path(results_dir) / tier / experiment).glob(f"*/{dataset}.json")):
        folder = sidecar_field(sidecar, "sr_images")  # PCLError naming a damaged sidecar
        if folder:
            return Path(folder)
    return None


def crop_figures(results: pd.DataFrame, results_dir: Path, hr_dirs: dict[str, Path], images: list[FigureImage],
                 out_dir: Path, *, tiers: list[str], crop_size: int = 48, scale: int = 4) -> list[Path]:
    """Fig. 2/3-style figures for every (tier, backbone) with +PCL and its reference model."""
    written = []
    for tier in tiers:
        rows = results[results["tier"] == tier]
        for backbone in sorted(set(rows["backbone"])):
            names = set(rows.loc[rows["backbone"] == backbone, "experiment"])
            pcl, ref = f"{backbone}-pcl", next((f"{backbone}-{m}" for m in ("baseline", "official") if f"{backbone}-{m}" in names), None)
            if pcl not in names or ref is None:
                continue
            roles = [("bicubic", "bicubic", "bicubic"), (ref.rsplit("-", 1)[1], tier, ref), ("pcl", tier, pcl)]
            if f"{backbone}-control" in names:
                roles.append(("control", tier, f"{backbone}-control"))
            for fig in images:
                written += _one_image(results_dir, hr_dirs, fig, roles, out_dir, tier=tier, backbone=backbone,
                                      crop_size=crop_size, scale=scale)
    return written


def _one_image(results_dir, hr_dirs, fig: FigureImage, roles, out_dir: Path, *, tier, backbone, crop_size, scale) -> list[Path]:
    from pcl.data.images import list_images, read_image

    if fig.dataset not in hr_dirs:
        raise PCLError(f"figure image {fig.dataset}/{fig.image}: benchmark {fig.dataset} was not evaluated")
    hr_path = next((p for p in list_images(hr_dirs[fig.dataset]) if p.stem == fig.image), None)
    if hr_path is None:
        raise PCLError(f"figure image {fig.dataset}/{fig.image}: no such image in {hr_dirs[fig.dataset]}")
    models = {}
    for role, role_tier, experiment in roles:
        folder = _sr_dir(results_dir, role_tier, experiment, fig.dataset)
        if folder is None:
            raise PCLError(f"figure image {fig.dataset}/{fig.image}: {role_tier}/{experiment} saved no SR images "
                           "(evaluate it with --save-sr); the figures config and the evaluations disagree")
        models[ROLE_LABELS[role] + ("" if role == "bicubic" else f" ({experiment})")] = folder / f"{fig.image}.png"
    stem = f"crops_{tier}_{backbone}_{fig.dataset}_{fig.image}"
    title = f"{fig.dataset} {fig.image} x{scale}, tier {tier}"
    if fig.crop is not None:
        return [comparison_figure(hr_path, models, Crop(*fig.crop), Path(out_dir) / f"{stem}.png", title=title, scale=scale)]
    hr = read_image(hr_path)
    hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
    written = []
    for reference, crops in automatic_crops(hr, models, crop_size, scale=scale):
        for kind, crop in zip(("best", "worst"), crops):
            written.append(comparison_figure(hr_path, models, crop, Path(out_dir) / f"{stem}_{kind}_vs_{reference}.png",
                                             title=title, scale=scale))
    return written


def automatic_crops(hr, models: dict[str, Path], crop_size: int, *, scale: int) -> list[tuple[str, tuple[Crop, Crop]]]:
    """(reference, (best, worst)) for each reference +PCL is compared with: the baseline (or official
    weights, the second model of ``models``) and the L1-only control when ``models`` holds one.

    Why both: against the baseline the best patch shows what the paper's figures show; against the
    control it shows what the contrastive term alone changed -- often far less.
    """
    from pcl.data.images import read_image

    labels = list(models)
    pcl_label = next(label for label in labels if label.startswith(ROLE_LABELS["pcl"]))
    pcl_img = read_image(models[pcl_label])
    references = [(labels[1].split(" ", 1)[0], models[labels[1]])]
    control = next((label for label in labels if label.startswith(ROLE_LABELS["control"])), None)
    if control is not None:
        references.append(("control", models[control]))
    return [(name, auto_crops(hr, pcl_img, read_image(path), crop_size, scale=scale, against=name))
            for name, path in references]


def curve_figures(runs_root: Path, tier: str, out_dir: Path) -> list[Path]:
    """Training curves per backbone of one trained tier (runs with a log.csv)."""
    root = Path(runs_root) / tier
    written = []
    by_backbone: dict[str, dict[str, Path]] = {}
    for log in sorted(root.glob("*/log.csv")):
        experiment = log.parent.name
        backbone = next((experiment[: -len(s) - 1] for s in ("pcl-released", "baseline", "control", "pcl")
                         if experiment.endswith("-" + s)), None)
        if backbone is not None:
            by_backbone.setdefault(backbone, {})[experiment] = log.parent
    for backbone, runs in sorted(by_backbone.items()):
        written.append(training_curves(runs, Path(out_dir) / f"curves_{tier}_{backbone}.png",
                                       title=f"Training curves, tier {tier}, {backbone}"))
    return written


def alpha_figure(results: pd.DataFrame, paper_csv: Path, out: Path) -> Path:
    """Table VII: Set14 PSNR against alpha, paper and every (tier, protocol) with alpha runs."""
    ours: dict[str, dict[float, float]] = {}
    rows = results[(results["dataset"] == "Set14") & results["experiment"].str.startswith("rcan-pcl")]
    for (tier, protocol), part in rows.groupby(["tier", "protocol"]):
        if tier in ("reported", "released", "smoke"):
            continue
        points = {}
        for experiment, sub in part.groupby("experiment"):
            alpha = 0.1 if experiment == "rcan-pcl" else _alpha_of(experiment)
            if alpha is not None:
                points[alpha] = float(sub["psnr"].mean())
        if len(points) > 1:
            ours[f"{tier}/{protocol}"] = points
    return alpha_curve(paper_csv, ours, out)


def _alpha_of(experiment: str) -> float | None:
    tail = experiment.rsplit("-alpha", 1)
    try:
        return float(tail[1]) if len(tail) == 2 else None
    except ValueError:
        return None


def no_reference_figures(lr_dir: Path, checkpoints: dict[str, Path], out_dir: Path, *, limit: int = 4) -> list[Path]:
    """Fig. 4 style: SR of real LR photos (no ground truth, e.g. RealSRSet) by each model, NIQE under
    each; a ``real_images.json`` beside the figures records every image's and checkpoint's sha256."""
    from pcl.atomic import atomic_write_text
    from pcl.data.images import is_image_file, read_image
    from pcl.hashing import sha256_file
    from pcl.inference import InferenceSettings, ModelPredictor, load_model
    from pcl.metrics.niqe import niqe
    from pcl.report.crops import no_reference_figure

    folder = Path(lr_dir)
    if not folder.is_dir():
        raise PCLError(f"{folder}: no such folder of LR images (RealSRSet: `pcl download --dataset RealSRSet` says where it goes)")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    stray = [p.name for p in files if not is_image_file(p)]
    if stray:
        raise PCLError(f"{folder}: not images: {', '.join(stray[:5])}; the folder must hold only LR images")
    if not files:
        raise PCLError(f"{folder}: no images")
    models = {}
    for label, path in checkpoints.items():
        if not Path(path).is_file():
            raise PCLError(f"model {label}: checkpoint {path} not found")
        loaded = load_model("auto", path)
        models[label] = (ModelPredictor(loaded.model, InferenceSettings(), name=loaded.backbone), loaded.sha256)
    written, record = [], {"lr_dir": str(folder), "images": {}, "checkpoints": {k: {"path": str(checkpoints[k]), "sha256": v[1]}
                                                                               for k, v in models.items()}}
    for path in files[:limit]:
        lr = read_image(path)
        outputs = {label: predictor(lr) for label, (predictor, _) in models.items()}
        scores = {label: niqe(sr) for label, sr in outputs.items()}
        record["images"][path.name] = {"sha256": sha256_file(path), "niqe": scores}
        written.append(no_reference_figure(path, outputs, scores, Path(out_dir) / f"real_{path.stem}.png",
                                           title=f"{path.name}: no ground truth, NIQE only"))
    written.append(atomic_write_text(Path(out_dir) / "real_images.json", json.dumps(record, indent=2) + "\n"))
    return written
