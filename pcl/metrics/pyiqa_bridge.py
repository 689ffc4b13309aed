"""Any metric of the optional ``pyiqa`` package, for ``pcl score --metrics pyiqa:<name>``.

Why optional: pyiqa brings about 60 packages and is licensed PolyForm Noncommercial 1.0.0, so it
is not part of the default install (``pip install '.[iqa]'`` adds it).  Its weights live in its
own cache, ``<torch hub dir>/pyiqa/`` (``$TORCH_HOME/hub/pyiqa``).  pyiqa downloads a missing file
on first use; offline that download fails deep inside the package, so the download function is
wrapped to fail in one line that names the file to place and where to get it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pcl.errors import PCLError


def _import_pyiqa() -> Any:
    try:
        import pyiqa
    except ImportError:
        raise PCLError("metric pyiqa:<name> needs the optional package pyiqa; install it with `pip install '.[iqa]'` "
                       "(PolyForm Noncommercial licence)") from None
    return pyiqa


def _guard_downloads(module: Any) -> None:
    """Make pyiqa's weight download fail as one PCLError naming the cache file and its URL."""
    original = module.download_url_to_file
    if getattr(original, "_pcl_guard", False):
        return

    def guarded(url: str, dst: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(url, dst, *args, **kwargs)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            raise PCLError(f"pyiqa needs {dst}, which is absent and could not be downloaded ({exc.__class__.__name__}); "
                           f"download {url} and place it there") from None

    guarded._pcl_guard = True  # type: ignore[attr-defined]
    module.download_url_to_file = guarded


class PyiqaMetric:
    """One pyiqa metric; images are uint8 (H, W[, 3]) arrays, scored as RGB in [0, 1]."""

    def __init__(self, name: str, *, device: str = "cpu") -> None:
        pyiqa = _import_pyiqa()
        from pyiqa.utils import download_util

        _guard_downloads(download_util)
        available = set(pyiqa.list_models())
        if name not in available:
            raise PCLError(f"pyiqa has no metric {name!r}; see `python -c 'import pyiqa; print(pyiqa.list_models())'`")
        self.name = name
        self.metric = pyiqa.create_metric(name, device=torch.device(device))
        self.full_reference = getattr(self.metric, "metric_mode", "NR") == "FR"

    def score(self, sr: np.ndarray, hr: np.ndarray | None) -> float:
        if self.full_reference and hr is None:
            raise PCLError(f"pyiqa:{self.name} is a full-reference metric; pass --hr-dir")
        args = [_tensor(sr)] + ([_tensor(hr)] if self.full_reference else [])
        with torch.no_grad():
            return float(self.metric(*args).reshape(-1)[0])

    def describe(self) -> dict[str, Any]:
        import pyiqa

        return {"package": f"pyiqa {getattr(pyiqa, '__version__', '?')}", "metric": self.name,
                "mode": "FR" if self.full_reference else "NR",
                "lower_better": bool(getattr(self.metric, "lower_better", False))}


def _tensor(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).unsqueeze(0).float() / 255.0
