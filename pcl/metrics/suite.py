"""The metrics a result row or a `pcl score` row can hold, parsed once and computed together.

Why one place: the pipeline (``pcl evaluate``), ``pcl score`` and the sidecars must agree on the
metric names, their CSV columns, which need a ground truth, and the settings each ran with.

Names: ``psnr``, ``ssim`` (Y channel under the protocol; ``pcl.metrics.psnr_ssim``), ``lpips``
(``pcl.metrics.perceptual``), ``niqe`` (official MATLAB NIQE, input through MATLAB ``rgb2gray``)
and ``niqe-y`` (the same on MATLAB's Y of YCbCr, BasicSR's convention) from ``pcl.metrics.niqe``,
and ``pyiqa:<name>`` for any metric of the optional pyiqa package (``pcl.metrics.pyiqa_bridge``).
``niqe-spread`` and ``niqe-y-spread`` are not quality metrics but the arithmetic uncertainty of
``niqe``/``niqe-y`` (``pcl.metrics.niqe_spread``), same convention and crop; asked with its score,
NIQE is computed once for both.
Columns: the name with ``-`` and ``:`` turned into ``_`` (``niqe_y``, ``niqe_y_spread``, ``pyiqa_musiq``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcl.errors import PCLError

BUILTIN: tuple[str, ...] = ("psnr", "ssim", "lpips", "niqe", "niqe-y", "niqe-spread", "niqe-y-spread")
#: the NIQE convention each spread name belongs to
NIQE_SPREADS: dict[str, str] = {"niqe-spread": "niqe", "niqe-y-spread": "niqe-y"}
FULL_REFERENCE: frozenset[str] = frozenset({"psnr", "ssim", "lpips"})
LOWER_IS_BETTER: frozenset[str] = frozenset({"lpips", "niqe", "niqe-y"})


def column(name: str) -> str:
    """CSV column of a metric name (``niqe-y`` -> ``niqe_y``, ``pyiqa:musiq`` -> ``pyiqa_musiq``)."""
    return name.replace("-", "_").replace(":", "_")


def parse_metrics(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate a comma-separated list (or a list) of metric names, keeping order, dropping repeats."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [str(i).strip().lower() for i in items if str(i).strip()]
    if not names:
        raise PCLError(f"no metric named; use some of {', '.join(BUILTIN)} or pyiqa:<name>")
    for name in names:
        if name in BUILTIN:
            continue
        if name.startswith("pyiqa:") and len(name) > len("pyiqa:"):
            continue
        raise PCLError(f"unknown metric {name!r}; use {', '.join(BUILTIN)} or pyiqa:<name>")
    return tuple(dict.fromkeys(names))


@dataclass
class MetricSuite:
    """Scores SR images (and their GT when given) with a set of metrics on one device.

    ``scale`` and ``protocol`` define the PSNR/SSIM/LPIPS region (GT mod-cropped, ``scale`` px
    shaved); ``niqe_crop`` pixels are removed on every side before NIQE (the pipeline passes the
    scale, as SR papers do; ``pcl score`` passes ``--crop-border``, default 0).
    """

    metrics: tuple[str, ...]
    scale: int = 4
    protocol: str = "matlab"
    niqe_crop: int = 0
    device: str = "cpu"
    check_hash: bool = True
    _lpips: Any = field(default=None, init=False, repr=False)
    _lpips_queue: Any = field(default=None, init=False, repr=False)
    _pyiqa: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        from pcl.metrics.psnr_ssim import check_protocol

        self.metrics = parse_metrics(self.metrics)
        check_protocol(self.protocol)
        if "lpips" in self.metrics:
            from pcl.metrics.perceptual import LPIPSScorer

            self._lpips = LPIPSScorer(self.device, check_hash=self.check_hash)
        for name in self.metrics:
            if name.startswith("pyiqa:"):
                from pcl.metrics.pyiqa_bridge import PyiqaMetric

                self._pyiqa[name] = PyiqaMetric(name.split(":", 1)[1], device=self.device)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column(m) for m in self.metrics)

    def needs_reference(self) -> list[str]:
        """The chosen metrics that compare with a ground truth."""
        return [m for m in self.metrics if m in FULL_REFERENCE or (m in self._pyiqa and self._pyiqa[m].full_reference)]

    def score(self, sr: np.ndarray, hr: np.ndarray | None, *,
              defer_lpips_to: dict[str, Any] | None = None) -> dict[str, float]:
        """{column: value} for one uint8 SR image (``hr``: its GT, not mod-cropped; None for NR only).

        ``defer_lpips_to``: a result row that receives ``lpips`` later, when :meth:`flush` (or a
        full queue) scores it together with the other pairs of its size; NaN until then, so a row
        whose set was never flushed fails every finiteness check rather than passing for scored.
        """
        out: dict[str, float] = {}
        if {"psnr", "ssim"} & set(self.metrics):
            from pcl.metrics.psnr_ssim import evaluate_pair

            psnr, ssim = evaluate_pair(sr, _mod_crop(self._gt(hr), self.scale), scale=self.scale,
                                       protocol=self.protocol, device=self.device)
            out.update({k: v for k, v in (("psnr", psnr), ("ssim", ssim)) if k in self.metrics})
        for name in self.metrics:
            if name == "lpips" and defer_lpips_to is not None:
                self._queue_lpips(sr, self._gt(hr), defer_lpips_to)
            elif name == "lpips":
                out["lpips"] = self._lpips.score(sr, self._gt(hr), scale=self.scale)
            elif name in ("niqe", "niqe-y", *NIQE_SPREADS):
                convention = NIQE_SPREADS.get(name, name)
                if column(convention) not in out and column(f"{convention}-spread") not in out:
                    out.update(self._niqe(sr, convention))
            elif name in self._pyiqa:
                out[column(name)] = self._pyiqa[name].score(sr, None if hr is None else self._gt(hr))
        return out

    def _queue_lpips(self, sr: np.ndarray, hr: np.ndarray, row: dict[str, Any]) -> None:
        from pcl.metrics.perceptual import scored_region

        if self._lpips_queue is None:
            self._lpips_queue = self._lpips.queue()
        row["lpips"] = math.nan
        self._lpips_queue.add(*scored_region(sr, hr, self.scale), lambda v: row.__setitem__("lpips", v))

    def flush(self) -> None:
        """Score the LPIPS pairs still queued (after the last image of a set)."""
        if self._lpips_queue is not None:
            self._lpips_queue.flush()

    def discard(self) -> None:
        """Drop the queued LPIPS pairs (their set failed; its rows are not written)."""
        if self._lpips_queue is not None:
            self._lpips_queue.discard()

    def _niqe(self, sr: np.ndarray, convention: str) -> dict[str, float]:
        """The asked columns of one NIQE convention: the score, its spread, or both from one
        computation (the spread's default-model score is ``niqe()``'s value, bit for bit)."""
        score_col, spread_col = column(convention), column(f"{convention}-spread")
        if f"{convention}-spread" not in self.metrics:
            from pcl.metrics.niqe import niqe

            return {score_col: niqe(sr, convention=convention, crop_border=self.niqe_crop)}
        from pcl.metrics.niqe_spread import niqe_with_spread

        score, spread = niqe_with_spread(sr, convention=convention, crop_border=self.niqe_crop)
        return {score_col: score, spread_col: spread} if convention in self.metrics else {spread_col: spread}

    def _gt(self, hr: np.ndarray | None) -> np.ndarray:
        if hr is None:
            raise PCLError(f"metrics {', '.join(self.needs_reference())} need ground truth; pass --hr-dir")
        return hr

    def describe(self) -> dict[str, Any]:
        """Settings for a JSON sidecar: every metric and how it was computed."""
        info: dict[str, Any] = {"metrics": list(self.metrics), "scale": self.scale, "protocol": self.protocol}
        if {"psnr", "ssim"} & set(self.metrics):
            info["psnr_ssim"] = f"Y channel, protocol {self.protocol}, GT mod-cropped to x{self.scale}, {self.scale} px shaved"
        if self._lpips is not None:
            info["lpips"] = self._lpips.describe()
        if {"niqe", "niqe-y", *NIQE_SPREADS} & set(self.metrics):
            info["niqe"] = {**_niqe_settings(), "crop_border": self.niqe_crop}
        if set(NIQE_SPREADS) & set(self.metrics):
            info["niqe"]["spread"] = (
                "pcl.metrics.niqe_uncertainty: largest change of the score under the other floating-point "
                "models of the local mean (fma-reverse, rounded, rounded-reverse); 0 without computing them "
                "where no pixel is near-flat (pcl.metrics.niqe_spread)")
        for name, metric in self._pyiqa.items():
            info[column(name)] = metric.describe()
        return info


def _niqe_settings() -> dict[str, Any]:
    from pcl.metrics.niqe import NIQE_MIN_SIZE, model_path
    from pcl.hashing import sha256_file

    path = model_path()
    return {
        "implementation": "pcl.metrics.niqe: the official MATLAB NIQE (computequality.m) step by step",
        "block": NIQE_MIN_SIZE, "scales": 2,
        "niqe": "input converted with MATLAB rgb2gray (uint8)", "niqe_y": "input converted to MATLAB Y of YCbCr (uint8)",
        "pristine_model": str(path), "pristine_model_sha256": sha256_file(path),
    }


def _mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
