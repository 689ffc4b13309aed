"""Score a super-resolution method on a benchmark folder, one result row per image.

Why one loop for every method: the bicubic baseline, released checkpoints and our trained models
must be scored by exactly the same code (same LR images, same crop, same protocol), otherwise the
deltas in the tables would mix protocols -- the very problem the paper has (docs/method.md §9 item 18).
A method is a *predictor*: a function from an LR uint8 image to an SR uint8 image
(``bicubic_predictor`` here; SR networks through ``pcl.inference.ModelPredictor``, run by
``evaluate_model``, which also writes the JSON sidecar of the result file).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pcl.data.images import list_images, read_image
from pcl.data.imresize import bicubic_degrade, bicubic_upscale
from pcl.errors import PCLError
from pcl.metrics.psnr_ssim import check_protocol, evaluate_pair, min_size
from pcl.names import TIERS, canonical_dataset

if TYPE_CHECKING:
    from pcl.inference import InferenceSettings
    from pcl.metrics.suite import MetricSuite

log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], np.ndarray]

@dataclass(frozen=True)
class Pair:
    """One benchmark image: its name, the HR pixels and the LR input the method receives."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def _mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop to a multiple of ``scale`` (the benchmark convention before making LR)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


class _LRIndex:
    """The LR files of a folder by HR stem, listed once (``name.png``, ``namex4.png``, ``name_x4.png``).

    Two LR files for one HR stem (``baby.png`` and ``baby_x4.png``) are refused by name: either
    could be the intended input, and picking one silently would score an unknown image.
    """

    def __init__(self, lr_dir: Path, scale: int) -> None:
        self.lr_dir = lr_dir
        self.exact: dict[str, list[Path]] = {}
        self.suffixed: dict[str, list[Path]] = {}
        for cand in list_images(lr_dir):
            self.exact.setdefault(cand.stem, []).append(cand)
            low = cand.stem.lower()
            for suffix in (f"_x{scale}", f"x{scale}"):
                if low.endswith(suffix):
                    self.suffixed.setdefault(low[: -len(suffix)], []).append(cand)
                    break

    def find(self, stem: str) -> Path:
        found = [*self.exact.get(stem, []), *self.suffixed.get(stem.lower(), [])]
        if not found:
            raise PCLError(f"no LR image for {stem!r} in {self.lr_dir}; expected {stem}.png (re-run `pcl prepare`)")
        if len(found) > 1:
            names = " and ".join(p.name for p in found)
            both = "both" if len(found) == 2 else "all"
            raise PCLError(f"{self.lr_dir}: {names} are {both} LR images of {stem!r}; keep one and move the others out of the folder")
        return found[0]


def refuse_shared_stems(files: list[Path], folder: Path) -> None:
    """Two files with one stem (``baby.png``, ``baby.bmp``) would both be scored as image ``baby``."""
    by_stem: dict[str, list[str]] = {}
    for p in files:
        by_stem.setdefault(p.stem, []).append(p.name)
    twins = [" and ".join(names) for names in by_stem.values() if len(names) > 1]
    if twins:
        raise PCLError(f"{folder}: {'; '.join(twins)} share one image name; keep one file per image and move the others out of the folder")


def iter_pairs(hr_dir: Path, *, scale: int, lr_dir: Path | None = None) -> Iterator[Pair]:
    """Yield HR/LR pairs, validating sizes so that a bad folder fails before any scoring.

    Without ``lr_dir`` the LR image is made with our MATLAB-exact bicubic x1/scale, which is how
    the standard benchmark LR sets were produced.
    """
    smallest = min_size(scale)
    hr_files = list_images(hr_dir)
    refuse_shared_stems(hr_files, Path(hr_dir))
    lr_index = _LRIndex(lr_dir, scale) if lr_dir is not None else None
    if lr_index is not None:
        for path in hr_files:  # a missing or doubled LR file fails before the first image is scored
            lr_index.find(path.stem)
    for path in hr_files:
        hr = read_image(path)
        h, w = hr.shape[:2]
        if min(h, w) < smallest:
            raise PCLError(
                f"{path}: image is {w}x{h}, smaller than {smallest} px (2*scale+11), too small to "
                "score; remove it from the folder"
            )
        if lr_index is None:
            lr = bicubic_degrade(hr, scale)
        else:
            lr_path = lr_index.find(path.stem)
            lr = read_image(lr_path)
            hc = _mod_crop(hr, scale)
            want = (hc.shape[0] // scale, hc.shape[1] // scale)
            if lr.shape[:2] != want:
                raise PCLError(
                    f"{lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} does not match HR {path.name} "
                    f"({w}x{h} -> expected {want[1]}x{want[0]} at x{scale}); re-make the LR set"
                )
        yield Pair(path.stem, hr, lr)


def check_outputs(out: Path, hr_dir: Path, lr_dir: Path | None, save_sr: Path | None, protect: tuple[Path, ...] = ()) -> None:
    """Refuse an ``--out`` or ``--save-sr`` that could overwrite an input, before any work is done."""
    from pcl.outputs import check_image_out_dir, check_rows_out

    inputs = {"--hr-dir": Path(hr_dir), "--lr-dir": Path(lr_dir) if lr_dir else None}
    check_rows_out(Path(out), inputs=inputs, protect=protect)
    if save_sr is not None:
        check_image_out_dir(Path(save_sr), inputs=inputs)


def _training_diagnostics(checkpoint: Path) -> dict[str, dict[str, Any]]:
    """``{"training": {...}}`` from the ``result.json`` of the run that wrote ``checkpoint``, if any.

    Why in the result's sidecar: whether +PCL vs control can show the contrastive term's effect
    depends on how much of the gradient the term was (``term_grad_share``), and the verdict reads
    result sidecars, never run folders.  A checkpoint outside a harness run gets nothing.
    """
    result = checkpoint.parent / "result.json"
    if checkpoint.suffix != ".safetensors" or not result.is_file():
        return {}
    try:
        diagnostics = json.loads(result.read_text(encoding="utf-8")).get("pcl_diagnostics")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return {}
    if not isinstance(diagnostics, dict):
        return {}
    keys = {"term_grad_share": "grad_share_median", "grad_cosine": "grad_cosine_median",
            "embedding_loss": "embedding_loss_median", "embedding_chance": "embedding_chance",
            "measurements": "measurements"}
    return {"training": {"result_json": str(result), **{k: diagnostics.get(v) for k, v in keys.items()}}}


def bicubic_predictor(scale: int) -> Predictor:
    """The paper's Bicubic row: MATLAB bicubic upscaling of the LR image, saved as 8 bit."""
    return lambda lr: bicubic_upscale(lr, scale)


def evaluate_folder(
    predictor: Predictor,
    hr_dir: Path,
    *,
    dataset: str,
    scale: int,
    protocol: str,
    lr_dir: Path | None = None,
    identity: dict[str, str] | None = None,
    extra: MetricSuite | None = None,
    save_sr: Path | None = None,
    save_only: frozenset[str] | None = None,
) -> list[dict]:
    """Run ``predictor`` on every image of ``hr_dir`` and return one result row per image.

    ``identity`` fills the row's tier/experiment/backbone/method/seed/run_id columns; ``extra``
    scores further metrics (LPIPS, NIQE) into optional columns of the same rows; ``save_sr``
    keeps each SR image (or only those named in ``save_only``) as a lossless PNG named after the
    HR stem, exactly the uint8 image that was scored.
    """
    protocol = check_protocol(protocol)
    dataset = canonical_dataset(dataset)
    ident = {"tier": "", "experiment": "", "backbone": "", "method": "", "seed": "", "run_id": ""}
    ident.update(identity or {})
    rows = []
    if save_only:
        stems = {p.stem for p in list_images(Path(hr_dir))}
        missing = sorted(set(save_only) - stems)
        if missing:
            raise PCLError(f"--save-sr-images {', '.join(missing)}: not in {hr_dir} (its images: {', '.join(sorted(stems))})")
    with _staged_images(save_sr) as staging:
        try:
            for pair in iter_pairs(Path(hr_dir), scale=scale, lr_dir=lr_dir):
                rows.append(_score_pair(predictor, pair, dataset=dataset, scale=scale, protocol=protocol,
                                        ident=ident, extra=extra,
                                        keep=staging if save_only is None or pair.name in save_only else None))
            if extra is not None:
                extra.flush()  # LPIPS of equal-size images, batched (pcl.metrics.lpips_batch)
        except BaseException:
            if extra is not None:
                extra.discard()
            raise
    return rows


@contextmanager
def _staged_images(save_sr: Path | None) -> Iterator[Path | None]:
    """A staging folder for the SR images, moved into ``save_sr`` only once every image has scored.

    Why: a model that turns non-finite (or an image that fails) half-way through a set must leave
    no SR images behind that look like the output of a scored model.
    """
    if save_sr is None:
        yield None
        return
    from pcl.atomic import make_temp_dir

    target = Path(save_sr)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(target.parent, f".{target.name}.staging-")
    try:
        yield staging
        target.mkdir(exist_ok=True)
        for png in sorted(staging.iterdir()):
            os.replace(png, target / png.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _score_pair(predictor: Predictor, pair: Pair, *, dataset: str, scale: int, protocol: str,
                ident: dict[str, str], extra: MetricSuite | None, keep: Path | None) -> dict:
    """One result row; the SR image goes to ``keep`` (a staging folder) when given."""
    from pcl.inference.predictor import NonFiniteOutput

    t0 = time.perf_counter()
    try:
        sr = predictor(pair.lr)
    except NonFiniteOutput as exc:
        raise exc.named(pair.name) from None
    psnr, ssim = evaluate_pair(sr, _mod_crop(pair.hr, scale), scale=scale, protocol=protocol)
    row: dict = {}
    more = extra.score(sr, pair.hr, defer_lpips_to=row) if extra is not None else {}
    if keep is not None:
        from pcl.data.images import write_png

        write_png(keep / f"{pair.name}.png", sr)
    log.debug("%s %s: %.4f dB %.5f (%.2fs)", dataset, pair.name, psnr, ssim, time.perf_counter() - t0)
    row.update({
        "tier": ident["tier"],
        "experiment": ident["experiment"],
        "backbone": ident["backbone"],
        "method": ident["method"],
        "dataset": dataset,
        "image": pair.name,
        "scale": scale,
        "protocol": protocol,
        "psnr": psnr,
        "ssim": ssim,
        "height": pair.hr.shape[0],
        "width": pair.hr.shape[1],
        "channels": 1 if pair.hr.ndim == 2 else pair.hr.shape[2],
        "seed": ident["seed"],
        "run_id": ident["run_id"],
        **more,
    })
    return row


def evaluate_model(
    model: str,
    checkpoint: str | Path | None,
    hr_dir: Path,
    out: Path,
    *,
    dataset: str,
    scale: int,
    protocol: str,
    lr_dir: Path | None = None,
    tier: str = "released",
    method: str = "checkpoint",
    experiment: str | None = None,
    settings: InferenceSettings | None = None,
    extra: MetricSuite | None = None,
    save_sr: Path | None = None,
    save_only: frozenset[str] | None = None,
    train_seed: int | None = None,
) -> list[dict]:
    """Evaluate an SR checkpoint on one benchmark folder: rows to ``out`` and a ``<stem>.json`` sidecar.

    Why the sidecar: options such as tiling, precision, self-ensemble and the NLSN seed change the
    numbers, so they travel with every result file (with the checkpoint's sha256, the torch
    version and the throughput).  The rows' ``seed`` column holds the seed only for models that
    draw random numbers (NLSN), or ``train_seed``, the training seed of one of several runs of
    an experiment (the rows of its seeds are then averaged by the tables and the gains);
    ``run_id`` names the checkpoint file and its sha256 prefix.
    """
    from pcl.inference import InferenceSettings, ModelPredictor, load_model, write_sidecar
    from pcl.provenance import code_provenance
    from pcl.report.results import write_rows

    if tier not in TIERS:
        raise PCLError(f"unknown tier {tier!r}; use one of {', '.join(TIERS)}")
    if not checkpoint:
        raise PCLError(f"--model {model} needs --checkpoint PATH (a .pt/.pth or .safetensors file)")
    from pcl.outputs import sidecar_of

    check_outputs(out, hr_dir, lr_dir, save_sr, protect=(Path(checkpoint), sidecar_of(Path(checkpoint))))
    check_protocol(protocol)
    dataset = canonical_dataset(dataset)
    loaded = load_model(model, checkpoint)
    model_scale = int(getattr(loaded.model, "scale", scale))
    if model_scale != scale:
        raise PCLError(f"checkpoint {checkpoint} is a x{model_scale} model but --scale is {scale}; pass --scale {model_scale}")
    predictor = ModelPredictor(loaded.model, settings or InferenceSettings(), name=loaded.backbone)
    experiment = experiment or f"{loaded.backbone}-{method}"
    seed = predictor.settings.seed if predictor.stochastic and predictor.settings.seed is not None else ""
    if train_seed is not None:
        seed = int(train_seed)
    identity = {
        "tier": tier,
        "experiment": experiment,
        "backbone": loaded.backbone,
        "method": method,
        "seed": seed,
        "run_id": f"{loaded.checkpoint.name}@{loaded.sha256[:12]}",
    }
    t0 = time.perf_counter()
    rows = evaluate_folder(predictor, Path(hr_dir), dataset=dataset, scale=scale, protocol=protocol,
                           lr_dir=lr_dir, identity=identity, extra=extra, save_sr=save_sr, save_only=save_only)
    wall = time.perf_counter() - t0
    write_rows(Path(out), rows)
    write_sidecar(
        Path(out),
        {
            "model": loaded.backbone,
            "experiment": experiment,
            "tier": tier,
            "method": method,
            "dataset": dataset,
            "protocol": protocol,
            "scale": scale,
            "checkpoint": {"path": str(loaded.checkpoint), "sha256": loaded.sha256, "loaded_as": loaded.source},
            "config": loaded.config,
            **predictor.describe(),
            "images": len(rows),
            "wall_seconds": wall,
            "model_seconds": predictor.seconds,
            "images_per_second": len(rows) / wall if wall > 0 else None,
            "metrics": metric_settings(extra, scale=scale, protocol=protocol),
            "sr_images": str(save_sr) if save_sr else None,
            "hr_dir": str(hr_dir),
            "lr_dir": str(lr_dir) if lr_dir else None,
            **_training_diagnostics(Path(checkpoint)),
            **code_provenance(),
        },
    )
    return rows


def metric_settings(extra: MetricSuite | None, *, scale: int, protocol: str) -> dict:
    """What a result sidecar records about the metrics of its rows."""
    base = {"psnr_ssim": f"Y channel, protocol {protocol}, GT mod-cropped to x{scale}, {scale} px shaved"}
    return {**base, **extra.describe()} if extra is not None else base


def evaluate_bicubic(
    hr_dir: Path,
    out: Path,
    *,
    dataset: str,
    scale: int,
    protocol: str,
    lr_dir: Path | None = None,
    tier: str = "bicubic",
    extra: MetricSuite | None = None,
    save_sr: Path | None = None,
    save_only: frozenset[str] | None = None,
) -> list[dict]:
    """The Bicubic row on one benchmark folder: rows to ``out`` and a ``<stem>.json`` sidecar."""
    from pcl.inference import write_sidecar
    from pcl.provenance import code_provenance
    from pcl.report.results import write_rows

    check_outputs(out, hr_dir, lr_dir, save_sr)
    identity = {"tier": tier, "experiment": "bicubic", "backbone": "bicubic", "method": "bicubic",
                "run_id": f"bicubic-x{scale}"}
    t0 = time.perf_counter()
    rows = evaluate_folder(bicubic_predictor(scale), Path(hr_dir), dataset=dataset, scale=scale, protocol=protocol,
                           lr_dir=lr_dir, identity=identity, extra=extra, save_sr=save_sr, save_only=save_only)
    write_rows(Path(out), rows)
    write_sidecar(Path(out), {
        "model": "bicubic", "experiment": "bicubic", "tier": tier, "dataset": dataset, "protocol": protocol,
        "scale": scale, "predictor": f"MATLAB bicubic x{scale} (pcl.data.imresize)",
        "images": len(rows), "wall_seconds": time.perf_counter() - t0,
        "metrics": metric_settings(extra, scale=scale, protocol=protocol),
        "hr_dir": str(hr_dir), "lr_dir": str(lr_dir) if lr_dir else None,
        "sr_images": str(save_sr) if save_sr else None, **code_provenance(),
    })
    return rows
