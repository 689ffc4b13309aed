"""`pyiqa:<name>` metrics without installing pyiqa (optional extra): a stand-in module with pyiqa's
API surface (``list_models``, ``create_metric`` returning a callable with ``metric_mode`` and
``lower_better``, ``utils.download_util.download_url_to_file``) checks the wiring and the errors."""

from __future__ import annotations

import sys
import types
import urllib.error

import numpy as np
import pytest
import torch

from pcl.errors import PCLError
from pcl.metrics.suite import MetricSuite, parse_metrics


class _Metric:
    def __init__(self, mode: str) -> None:
        self.metric_mode, self.lower_better = mode, mode == "NR"

    def __call__(self, *imgs: torch.Tensor) -> torch.Tensor:
        return imgs[0].mean().reshape(1, 1) if len(imgs) == 1 else (imgs[0] - imgs[1]).abs().mean().reshape(1, 1)


@pytest.fixture()
def fake_pyiqa(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    def download(url: str, dst: str, *args, **kwargs) -> None:
        raise urllib.error.URLError("offline")

    util = types.ModuleType("pyiqa.utils.download_util")
    util.download_url_to_file = download
    utils = types.ModuleType("pyiqa.utils")
    utils.download_util = util
    mod = types.ModuleType("pyiqa")
    mod.__version__ = "0.0-test"
    mod.utils = utils
    mod.list_models = lambda: ["musiq", "lpips-vgg", "needs-weights"]

    def create_metric(name: str, device=None):
        if name == "needs-weights":
            util.download_url_to_file("https://example.invalid/w.pth", "/cache/pyiqa/w.pth")
        return _Metric("FR" if name == "lpips-vgg" else "NR")

    mod.create_metric = create_metric
    for name, module in (("pyiqa", mod), ("pyiqa.utils", utils), ("pyiqa.utils.download_util", util)):
        monkeypatch.setitem(sys.modules, name, module)
    return mod


def test_names_and_columns() -> None:
    assert parse_metrics("psnr, NIQE-Y,pyiqa:musiq,psnr") == ("psnr", "niqe-y", "pyiqa:musiq")
    with pytest.raises(PCLError, match="unknown metric 'pyiqa:'"):
        parse_metrics("pyiqa:")


def test_no_reference_and_full_reference(fake_pyiqa) -> None:
    sr = np.full((8, 8, 3), 51, np.uint8)
    hr = np.full((8, 8, 3), 102, np.uint8)
    suite = MetricSuite(("pyiqa:musiq", "pyiqa:lpips-vgg"))
    assert suite.columns == ("pyiqa_musiq", "pyiqa_lpips_vgg")
    assert suite.needs_reference() == ["pyiqa:lpips-vgg"]
    values = suite.score(sr, hr)
    assert values == pytest.approx({"pyiqa_musiq": 0.2, "pyiqa_lpips_vgg": 0.2})  # 51/255 and |51-102|/255
    assert suite.describe()["pyiqa_musiq"]["mode"] == "NR"
    with pytest.raises(PCLError, match="full-reference metric; pass --hr-dir"):
        suite.score(sr, None)


def test_offline_weights_name_the_file(fake_pyiqa) -> None:
    with pytest.raises(PCLError, match=r"pyiqa needs /cache/pyiqa/w\.pth.*download https://example\.invalid/w\.pth"):
        MetricSuite(("pyiqa:needs-weights",))


def test_unknown_metric_and_missing_package(fake_pyiqa, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PCLError, match="pyiqa has no metric 'nope'"):
        MetricSuite(("pyiqa:nope",))
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # import fails
    with pytest.raises(PCLError, match=r"pip install '\.\[iqa\]'"):
        MetricSuite(("pyiqa:musiq",))
