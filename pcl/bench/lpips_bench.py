"""``pcl bench lpips``: seconds per Urban100-size image for LPIPS, ours beside the ``lpips`` package.

What users would otherwise run is ``lpips.LPIPS(net='alex')`` on [0, 1] tensors of the same crop;
ours is that model with a hash-checked AlexNet (``pcl.metrics.perceptual``), so one image at a time
the two should cost the same and agree exactly: the benchmark shows that the checks and the
conversions add nothing measurable.  A third row times what the evaluator does with a set: equal-size
images queued and scored in one pass (``pcl.metrics.lpips_batch``); ``max_abs_diff`` is each row's
largest difference from the package.  All run in one process, alternating order, on the five
1024x768 photos of ``pcl bench metrics`` (SR = their MATLAB-bicubic x4 round trip).

Weights: the genuine ``alexnet-owt-7be5be79.pth`` in ``$TORCH_HOME/hub/checkpoints`` when it is
there and passes its hash check; otherwise (offline machines) a seeded random AlexNet is written
under the real name in a temporary TORCH_HOME, for both sides.  Speed does not depend on the weight
values; the LPIPS values are then meaningless and the CSV says which weights were used.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from pcl.bench import write_bench_csv
from pcl.bench.metrics_bench import SCALE, benchmark_pairs
from pcl.device import cpu_model
from pcl.errors import PCLError

CSV_COLUMNS = ["implementation", "device", "n_images", "repeats", "median_s_per_image", "min_s_per_image",
               "ratio_to_ours", "max_abs_diff", "weights", "image_size", "cpu_model", "load_avg_before",
               "load_avg_after", "torch_threads", "torch_version", "lpips_version"]


@contextlib.contextmanager
def _weights() -> Iterator[str]:
    """Yield which AlexNet weights both sides use; a temporary TORCH_HOME with random ones if needed."""
    from pcl.weights import WEIGHTS, verified_path

    try:
        verified_path("alexnet")
        yield "genuine alexnet-owt-7be5be79.pth (hash checked)"
        return
    except PCLError:
        pass
    import torchvision

    before = os.environ.get("TORCH_HOME")
    with tempfile.TemporaryDirectory(prefix="pcl-lpips-bench-") as home:
        os.environ["TORCH_HOME"] = home
        try:
            path = WEIGHTS["alexnet"].path
            path.parent.mkdir(parents=True, exist_ok=True)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
            yield "seeded random AlexNet (genuine file absent: speed only, values meaningless)"
        finally:
            if before is None:
                os.environ.pop("TORCH_HOME", None)
            else:
                os.environ["TORCH_HOME"] = before


def _package_scorer(device: str):
    """LPIPS as users call the package: its AlexNet from the torch.hub cache, [0, 1] inputs."""
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", verbose=False).to(device).eval()

    def score(sr: np.ndarray, hr: np.ndarray) -> float:
        h, w = hr.shape[:2]
        crop = (slice(SCALE, h - h % SCALE - SCALE), slice(SCALE, w - w % SCALE - SCALE))
        a = torch.from_numpy(np.ascontiguousarray(sr[crop])).permute(2, 0, 1)[None].float().div(255).to(device)
        b = torch.from_numpy(np.ascontiguousarray(hr[crop])).permute(2, 0, 1)[None].float().div(255).to(device)
        with torch.no_grad():
            return float(model(a, b, normalize=True).reshape(-1)[0])

    return score


def _ours_batched(scorer):
    """The evaluator's path: every pair queued, equal sizes scored in one pass at the end."""
    from pcl.metrics.perceptual import scored_region

    def score_all(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
        values = [float("nan")] * len(pairs)
        queue = scorer.queue()
        for i, (sr, hr) in enumerate(pairs):
            queue.add(*scored_region(sr, hr, SCALE), lambda v, i=i: values.__setitem__(i, v))
        queue.flush()
        return values

    return score_all


def run(out_dir: Path, *, repeats: int = 3, device: str = "cpu") -> dict:
    """Time all three, check that they agree, write ``lpips.csv``; return the numbers."""
    import lpips  # noqa: F401  (fails early, with the package's own message, when absent)
    from importlib.metadata import version

    from pcl.metrics.perceptual import LPIPSScorer

    pairs = [(sr, hr) for _, sr, hr in benchmark_pairs()]
    with _weights() as weights:
        ours_model = LPIPSScorer(device, check_hash=weights.startswith("genuine"))
        package = _package_scorer(device)
        impls = {
            "ours, one image at a time": lambda ps: [ours_model.score(sr, hr, scale=SCALE) for sr, hr in ps],
            "ours, equal sizes batched (evaluator)": _ours_batched(ours_model),
            "lpips package": lambda ps: [package(sr, hr) for sr, hr in ps],
        }
        values = {name: fn(pairs) for name, fn in impls.items()}  # also the warm-up
        load_before = os.getloadavg()[0]
        times: dict[str, list[float]] = {name: [] for name in impls}
        names = list(impls)
        for r in range(max(1, repeats)):
            for name in names if r % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                impls[name](pairs)
                times[name].append((time.perf_counter() - start) / len(pairs))
        load_after = os.getloadavg()[0]
    reference = values["lpips package"]
    ours_s = statistics.median(times[names[0]])
    common = {"device": device, "n_images": len(pairs), "repeats": repeats, "weights": weights,
              "image_size": f"{pairs[0][1].shape[1]}x{pairs[0][1].shape[0]}", "cpu_model": cpu_model(),
              "load_avg_before": load_before, "load_avg_after": load_after,
              "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
              "lpips_version": version("lpips")}
    rows = [{"implementation": name, "median_s_per_image": statistics.median(t), "min_s_per_image": min(t),
             "ratio_to_ours": statistics.median(t) / ours_s,
             "max_abs_diff": max(abs(a - b) for a, b in zip(values[name], reference)), **common}
            for name, t in times.items()]
    write_bench_csv(Path(out_dir) / "lpips.csv", CSV_COLUMNS, rows)
    return {row["implementation"]: (row["median_s_per_image"], row["max_abs_diff"]) for row in rows} | {
        "weights": weights, "load_avg": (load_before, load_after)}
