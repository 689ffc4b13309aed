"""LPIPS wiring, the hash check of cached backbone weights, and `pcl weights`.

The real AlexNet weights cannot be fetched here, so a seeded random AlexNet is saved under the
real file name in a temporary TORCH_HOME.  The reference value comes from the `lpips` package
itself (``lpips.LPIPS(net='alex')``, which loads torchvision's cached file without any check).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pcl.errors import PCLError
from pcl.hashing import sha256_file
from pcl.metrics.perceptual import LPIPSScorer
from pcl.weights import WEIGHTS, check_digest, fetch_weights, render_weights_status, verified_path, weights_status

torch.set_num_threads(1)


def _pair(seed: int = 0, size: tuple[int, int] = (72, 64)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-25, 26, hr.shape), 0, 255).astype(np.uint8)
    return sr, hr


def test_equals_the_lpips_package(torch_home: Path) -> None:
    import lpips

    sr, hr = _pair()
    ours = LPIPSScorer(check_hash=False).score(sr, hr, scale=4)
    reference = lpips.LPIPS(net="alex", version="0.1", verbose=False)  # reads the same cached file
    crop = (slice(4, 68), slice(4, 60))  # protocol region: mod-crop (72x64 already), 4 px shaved
    a = torch.from_numpy(sr[crop]).permute(2, 0, 1)[None].float() / 255
    b = torch.from_numpy(hr[crop]).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = float(reference(a, b, normalize=True))
    assert ours == expected
    assert ours > 0


def test_identical_images_score_zero(torch_home: Path) -> None:
    _, hr = _pair(1)
    assert LPIPSScorer(check_hash=False).score(hr, hr, scale=4) == 0.0


def test_gray_is_replicated(torch_home: Path) -> None:
    sr, hr = _pair(2)
    g_sr, g_hr = sr[:, :, 0], hr[:, :, 0]
    scorer = LPIPSScorer(check_hash=False)
    rgb = scorer.score(np.repeat(g_sr[:, :, None], 3, 2), np.repeat(g_hr[:, :, None], 3, 2), scale=4)
    assert scorer.score(g_sr, g_hr, scale=4) == rgb


def test_stand_in_file_is_refused_with_both_digests(torch_home: Path) -> None:
    actual = sha256_file(WEIGHTS["alexnet"].path)
    with pytest.raises(PCLError, match=f"sha256 {actual} does not start with 7be5be79"):
        LPIPSScorer()


def test_lock_file_pins_the_full_digest(torch_home: Path, tmp_path: Path) -> None:
    entry = WEIGHTS["alexnet"]
    lock = tmp_path / "lock.yaml"
    actual = sha256_file(entry.path)
    forged = "7be5be79" + "0" * 56
    lock.write_text(f"version: 1\narchives:\n  {entry.file}: {{sha256: {forged}}}\n")
    with pytest.raises(PCLError, match=f"sha256 {actual} differs from {forged}"):
        check_digest(entry, actual, lock)
    lock.write_text(f"version: 1\narchives:\n  {entry.file}: {{sha256: {actual}}}\n")
    assert verified_path("alexnet", lock_file=lock) == entry.path
    scorer = LPIPSScorer(lock_file=lock)  # verified, so no bypass needed
    assert scorer.describe()["backbone_sha256"] == actual


def test_truncated_file_is_refused(torch_home: Path) -> None:
    path = WEIGHTS["alexnet"].path
    with path.open("rb") as fh:
        head = fh.read(1000)
    path.unlink()
    path.write_bytes(head)
    with pytest.raises(PCLError, match="cannot be read as AlexNet weights"):
        LPIPSScorer(check_hash=False)


def test_absent_file_names_path_and_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PCLError) as err:
        LPIPSScorer()
    text = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in text
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in text
    assert "\n" not in text


def test_status_page_lists_how_to_get_files(torch_home: Path) -> None:
    statuses = {s.entry.name: s for s in weights_status()}
    assert statuses["alexnet"].present and not statuses["alexnet"].ok
    assert not statuses["vgg19"].present
    page = render_weights_status(list(statuses.values()))
    assert "**refused**" in page and "pcl weights fetch vgg19" in page


def test_fetch_accepts_a_hand_placed_genuine_file_and_pins_it(torch_home: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # A file whose digest matches the published prefix is accepted and its full sha256 recorded.
    import pcl.weights as weights

    entry = WEIGHTS["alexnet"]
    real = sha256_file(entry.path)
    monkeypatch.setitem(weights.WEIGHTS, "alexnet", weights.WeightFile(entry.name, entry.file, entry.url, real[:8], entry.used_by))
    lock = tmp_path / "lock.yaml"
    lines = fetch_weights(["alexnet"], lock_file=lock)
    assert "recorded" in lines[0] and real in lock.read_text()
    assert "matches the lock file" in fetch_weights(["alexnet"], lock_file=lock)[0]


def test_fetch_deletes_a_mismatching_file(torch_home: Path, tmp_path: Path) -> None:
    path = WEIGHTS["alexnet"].path
    with pytest.raises(PCLError, match="does not start with 7be5be79"):
        fetch_weights(["alexnet"], lock_file=tmp_path / "lock.yaml")
    assert not path.exists()
