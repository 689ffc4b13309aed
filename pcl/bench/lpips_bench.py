"""``pcl bench lpips``: seconds per Urban100-size image for LPIPS, ours beside the ``lpips`` package.

What users would otherwise run is ``lpips.LPIPS(net='alex')`` on [0, 1] tensors of the same crop;
ours is that model with a hash-checked AlexNet (``pcl.metrics.perceptual``), so the two should cost
the same and agree exactly: the benchmark shows that the checks and the conversions add nothing
measurable.  Both sides run in one process, alternating order, on the five 1024x768 photos of
``pcl bench metrics`` (SR = their MATLAB-bicubic x4 round trip).

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
               "ratio_to_ours", "max_abs_diff", "weights", "image_size", "cpu_model", "torch_threads",
               "torch_version", "lpips_version"]


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


def run(out_dir: Path, *, repeats: int = 3, device: str = "cpu") -> dict:
    """Time both, check that they agree, write ``lpips.csv``; return the numbers."""
    import lpips  # noqa: F401  (fails early, with the package's own message, when absent)
    from importlib.metadata import version

    from pcl.metrics.perceptual import LPIPSScorer

    pairs = [(sr, hr) for _, sr, hr in benchmark_pairs()]
    with _weights() as weights:
        ours_model = LPIPSScorer(device, check_hash=weights.startswith("genuine"))
        impls = {"ours": lambda sr, hr: ours_model.score(sr, hr, scale=SCALE), "lpips package": _package_scorer(device)}
        values = {name: [fn(sr, hr) for sr, hr in pairs] for name, fn in impls.items()}  # also the warm-up
        times: dict[str, list[float]] = {name: [] for name in impls}
        names = list(impls)
        for r in range(max(1, repeats)):
            for name in names if r % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                for sr, hr in pairs:
                    impls[name](sr, hr)
                times[name].append((time.perf_counter() - start) / len(pairs))
    diff = max(abs(a - b) for a, b in zip(values["ours"], values["lpips package"]))
    ours_s = statistics.median(times["ours"])
    common = {"device": device, "n_images": len(pairs), "repeats": repeats, "max_abs_diff": diff, "weights": weights,
              "image_size": f"{pairs[0][1].shape[1]}x{pairs[0][1].shape[0]}", "cpu_model": cpu_model(),
              "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
              "lpips_version": version("lpips")}
    rows = [{"implementation": name, "median_s_per_image": statistics.median(t), "min_s_per_image": min(t),
             "ratio_to_ours": statistics.median(t) / ours_s, **common} for name, t in times.items()]
    write_bench_csv(Path(out_dir) / "lpips.csv", CSV_COLUMNS, rows)
    return {"ours_s_per_image": ours_s, "package_s_per_image": statistics.median(times["lpips package"]),
            "max_abs_diff": diff, "weights": weights}
