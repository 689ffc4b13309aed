"""Released checkpoints: registry, `pcl checkpoints list/fetch`, and the check of our evaluation of a
released model against its released per-image log."""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml

from pcl.cli import main
from pcl.errors import PCLError
from pcl.released import checkpoint_status, fetch_checkpoints, load_registry, present_checkpoints, render_status
from pcl.report.check import DEFAULT_DEVIATIONS, DEFAULT_TOLERANCES, normalise_image_name, run_check
from pcl.report.released_logs import LOG_EXPERIMENTS, experiment_name
from pcl.report.results import DATASET_SIZES, DATASETS, read_results, write_rows
from pcl.report.specs import TABLE2
from pcl.report.tables import build_table

REPO = Path(__file__).resolve().parents[1]
REGISTRY = REPO / "config" / "checkpoints.yaml"


# --- the shipped registry -----------------------------------------------------------------------


def test_shipped_registry() -> None:
    reg = load_registry(REGISTRY, checkpoint_dir="/nonexistent")
    names = [e.name for e in reg.entries]
    assert len(names) == 9
    # every released log (tier `reported`) has a checkpoint entry with the same experiment name
    assert {experiment_name(*v) for v in LOG_EXPERIMENTS.values()} <= {e.experiment for e in reg.entries}
    assert reg.get("edsr-s-official").experiment == "edsr-s-official"  # no EDSR-S log was released
    # EDSR-PyTorch URLs: the torch.hub suffix is the sha256 prefix
    s, l = reg.get("edsr-s-official"), reg.get("edsr-l-official")
    assert s.url == "https://cv.snu.ac.kr/research/EDSR/models/edsr_baseline_x4-6b446fab.pt"
    assert l.url == "https://cv.snu.ac.kr/research/EDSR/models/edsr_x4-4f62e9ef.pt"
    assert (s.sha256_prefix, l.sha256_prefix) == ("6b446fab", "4f62e9ef")
    assert (s.backbone, l.backbone) == ("edsr-s", "edsr-l")
    manual = [e for e in reg.entries if not e.downloadable]
    assert {e.name for e in manual} == {"rcan-official", "han-official", "nlsn-official", "edsr-l-pcl", "rcan-pcl",
                                        "han-pcl", "nlsn-pcl"}
    assert all("drive.google.com" in e.manual or "dropbox" in e.manual for e in manual)
    assert all(e.path == Path("/nonexistent") / e.file for e in reg.entries)


def _write_registry(tmp_path: Path, entries: list[dict], **top) -> Path:
    data = {"version": 1, "dir": str(tmp_path / "ckpt"), "lock_file": str(tmp_path / "lock.yaml"),
            "checkpoints": entries, **top}
    path = tmp_path / "checkpoints.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _entry(**kw) -> dict:
    base = {"name": "edsr-s-official", "backbone": "edsr-s", "method": "official", "experiment": "edsr-s-official",
            "file": "edsr_baseline_x4-6b446fab.pt", "url": None, "sha256_prefix": None, "sha256": None,
            "source": "test", "manual": "get it from the authors"}
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(backbone="srgan"), "backbone 'srgan' is not one of"),
        (dict(method="ours"), "method 'ours' is not one of"),
        (dict(manual=None), "needs 'manual' instructions"),
        (dict(sha256_prefix="XYZ"), "must be lowercase hex"),
        (dict(experiment="rcan-official"), "must start with edsr-s-official"),
        (dict(colour="red"), "unknown key 'colour'"),
        (dict(file="a/b.pt"), "bare file name"),
    ],
)
def test_registry_validation(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(PCLError, match=message):
        load_registry(_write_registry(tmp_path, [_entry(**change)]))


def test_registry_duplicates_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PCLError, match="share name"):
        load_registry(_write_registry(tmp_path, [_entry(), _entry(file="other.pt", experiment="edsr-s-official-2")]))
    with pytest.raises(PCLError, match="not found"):
        load_registry(tmp_path / "nope.yaml")


def test_checkpoint_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_registry(tmp_path, [_entry(), _entry(name="x", experiment="edsr-s-official-x", file="x.pt", path=str(tmp_path / "elsewhere.pt"))])
    monkeypatch.delenv("PCL_CHECKPOINT_DIR", raising=False)
    assert load_registry(path).directory == tmp_path / "ckpt"
    monkeypatch.setenv("PCL_CHECKPOINT_DIR", str(tmp_path / "env"))
    reg = load_registry(path)
    assert reg.directory == tmp_path / "env" and reg.get("edsr-s-official").path == tmp_path / "env" / "edsr_baseline_x4-6b446fab.pt"
    assert reg.get("x").path == tmp_path / "elsewhere.pt"  # an explicit path wins
    assert load_registry(path, checkpoint_dir=tmp_path / "cli").directory == tmp_path / "cli"


# --- list --------------------------------------------------------------------------------------


def test_list_reports_absent_with_how_to_get_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "status.md"
    code = main(["checkpoints", "list", "--config", str(REGISTRY), "--dir", str(tmp_path / "none"), "--out", str(out)])
    assert code == 0  # absent checkpoints are not a failure
    text = out.read_text()
    assert "0 of 9 present" in text
    assert "`pcl checkpoints fetch edsr-l-official`" in text
    assert f"save it as `{tmp_path / 'none' / 'RCAN_BIX4.pt'}`" in text
    assert capsys.readouterr().out == text


def test_list_shows_present_files(tmp_path: Path) -> None:
    reg = load_registry(_write_registry(tmp_path, [_entry(sha256_prefix="00000000")]))
    (tmp_path / "ckpt").mkdir()
    reg.entries[0].path.write_bytes(b"weights")
    assert [e.name for e in present_checkpoints(reg)] == ["edsr-s-official"]
    status = checkpoint_status(reg, hash_files=True)
    assert status[0].present and not status[0].ok  # sha256("weights") does not start with 00000000
    assert "**sha256 prefix 00000000 does not match**" in render_status(status, reg)


# --- fetch -------------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/www``."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_fetch_downloads_checks_the_prefix_and_pins_the_sha256(tmp_path: Path, served) -> None:
    base, www = served
    body = b"pretend weights " * 100
    sha = hashlib.sha256(body).hexdigest()
    name = f"edsr_baseline_x4-{sha[:8]}.pt"
    (www / name).write_bytes(body)
    reg = load_registry(_write_registry(tmp_path, [_entry(file=name, url=f"{base}/{name}", sha256_prefix=sha[:8], manual=None)]))
    [result] = fetch_checkpoints(reg, ["all"], retries=0)
    assert result.status == "downloaded" and not result.failed
    assert reg.entries[0].path.read_bytes() == body
    lock = yaml.safe_load(reg.lock_file.read_text())
    assert lock["archives"][name]["sha256"] == sha  # trust on first use
    [again] = fetch_checkpoints(reg, ["edsr-s-official"], retries=0)
    assert again.status == "present" and "matches the lock file" in again.detail
    # the pinned sha256 is now enforced: a modified file is a mismatch
    reg.entries[0].path.write_bytes(body + b"x")
    [bad] = fetch_checkpoints(reg, ["edsr-s-official"], retries=0)
    assert bad.status == "mismatch" and bad.failed


def test_fetch_refuses_a_file_with_the_wrong_prefix(tmp_path: Path, served) -> None:
    base, www = served
    (www / "edsr.pt").write_bytes(b"not the released file")
    reg = load_registry(_write_registry(tmp_path, [_entry(file="edsr.pt", url=f"{base}/edsr.pt", sha256_prefix="6b446fab", manual=None)]))
    [result] = fetch_checkpoints(reg, ["edsr-s-official"], retries=0)
    assert result.status == "mismatch" and "6b446fab" in result.detail and result.failed
    assert not reg.entries[0].path.exists() and not reg.lock_file.exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fetch_offline_message_and_manual_entries(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/edsr.pt"
    path = _write_registry(tmp_path, [
        _entry(file="edsr.pt", url=url, manual=None),
        _entry(name="rcan-official", backbone="rcan", experiment="rcan-official", file="RCAN_BIX4.pt", manual="Dropbox only"),
    ])
    code = main(["checkpoints", "fetch", "all", "--config", str(path), "--retries", "0", "--timeout", "2"])
    out = capsys.readouterr().out
    assert code == 1
    assert "edsr-s-official: unavailable" in out and f"place it at {tmp_path / 'ckpt' / 'edsr.pt'}" in out
    assert f"rcan-official: manual (Dropbox only; save it as `{tmp_path / 'ckpt' / 'RCAN_BIX4.pt'}`)" in out
    code = main(["checkpoints", "fetch", "all", "--config", str(path), "--retries", "0", "--timeout", "2", "--offline-ok"])
    assert code == 0  # unreachable is reported; a manual entry under `all` is not a failure
    capsys.readouterr()
    assert main(["checkpoints", "fetch", "rcan-official", "--config", str(path)]) == 1  # named explicitly
    assert main(["checkpoints", "fetch", "--config", str(path)]) == 2
    assert "needs NAME" in capsys.readouterr().err


# --- released model vs released log ------------------------------------------------------------


def test_normalise_image_name() -> None:
    assert normalise_image_name("img_001") == normalise_image_name("img001") == "img001"
    assert normalise_image_name("ARMS") == "arms"
    assert normalise_image_name("Akuhamu") != normalise_image_name("AkkeraKanjinchou")


def _log_names(dataset: str) -> list[str]:
    if dataset == "Set5":
        return ["baby", "bird", "butterfly", "head", "woman"]
    if dataset == "Urban100":
        return [f"img{i:03d}" for i in range(1, 101)]
    return [f"{dataset.lower()}_{i:03d}" for i in range(1, DATASET_SIZES[dataset] + 1)]


def _write_log(path: Path, seed: int) -> dict[str, dict[str, tuple[float, float]]]:
    """A synthetic released log in the authors' format (docs/protocols.md §8); returns its values."""
    rng = np.random.default_rng(seed)
    values: dict[str, dict[str, tuple[float, float]]] = {}
    lines = []
    for dataset in DATASETS:
        lines.append("Testing Y channel.")
        vals = {}
        for i, name in enumerate(_log_names(dataset), 1):
            p, s = round(float(rng.uniform(24, 34)), 6), round(float(rng.uniform(0.6, 0.95)), 6)
            vals[name] = (p, s)
            lines.append(f"{i:3d} - {name:<24} . \tPSNR: {p:.6f} dB, \tSSIM: {s:.6f}")
        mp = sum(v[0] for v in vals.values()) / len(vals)
        ms = sum(v[1] for v in vals.values()) / len(vals)
        lines.append(f"Average: PSNR: {mp:.6f} dB, SSIM: {ms:.6f}")
        values[dataset] = vals
    path.write_text("\n".join(lines) + "\n")
    return values


def _rows(experiment: str, backbone: str, method: str, dataset: str, values: dict[str, tuple[float, float]],
          protocol: str = "authors") -> list[dict]:
    return [dict(tier="released", experiment=experiment, backbone=backbone, method=method, dataset=dataset, image=n,
                 scale=4, protocol=protocol, psnr=p, ssim=s, height=400, width=400, channels=3, seed=None, run_id="t")
            for n, (p, s) in values.items()]


def _run(tmp_path: Path, rows: list[dict], logs: Path):
    csv = write_rows(tmp_path / "rows.csv", rows)
    return run_check(read_results([csv]), tolerances_path=DEFAULT_TOLERANCES, deviations_path=DEFAULT_DEVIATIONS,
                     logs_dir=logs)


def test_released_model_is_compared_with_its_log_image_by_image(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = _write_log(logs / "RCAN_OFFICIAL.log", seed=1)
    _write_log(logs / "NLSNx4_official.log", seed=2)
    # Urban100 as installed here: img_001 ... (normalised to match the log's img001)
    urban = {n.replace("img", "img_"): v for n, v in log["Urban100"].items()}
    set5 = dict(log["Set5"])
    set5["bird"] = (set5["bird"][0] + 0.004, set5["bird"][1] + 0.00004)  # inside 0.005 dB / 0.00005
    rows = _rows("rcan-official", "rcan", "official", "Urban100", urban) + _rows("rcan-official", "rcan", "official", "Set5", set5)
    report = _run(tmp_path, rows, logs)
    items = [i for i in report.items if i.tier == "released"]
    assert {(i.check, i.dataset, i.metric, i.status) for i in items} == {
        ("images", "Urban100", "names", "ok"), ("per-image", "Urban100", "psnr", "ok"), ("per-image", "Urban100", "ssim", "ok"),
        ("images", "Set5", "names", "ok"), ("per-image", "Set5", "psnr", "ok"), ("per-image", "Set5", "ssim", "ok"),
    }
    assert report.exit_code == 0
    assert all(i.row == "RCAN" for i in items)

    # one image 0.006 dB off, one unmatched name, one log image missing -> misses naming them
    set5["head"] = (set5["head"][0] - 0.006, set5["head"][1])
    urban.pop("img_100")
    urban["img_x"] = (30.0, 0.9)
    rows = _rows("rcan-official", "rcan", "official", "Urban100", urban) + _rows("rcan-official", "rcan", "official", "Set5", set5)
    report = _run(tmp_path, rows, logs)
    misses = {(i.check, i.dataset, i.metric): i.detail for i in report.misses}
    assert set(misses) == {("per-image", "Set5", "psnr"), ("images", "Urban100", "names")}
    assert "head -0.0060" in misses[("per-image", "Set5", "psnr")]
    assert "img_x" in misses[("images", "Urban100", "names")] and "img100" in misses[("images", "Urban100", "names")]
    assert report.exit_code == 1


def test_nlsn_uses_the_seed_spread_and_unlogged_models_are_notes(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = _write_log(logs / "NLSNx4_official.log", seed=3)
    tol = yaml.safe_load(DEFAULT_TOLERANCES.read_text())["tiers"]["released"]
    set5 = {n: (p, s + 0.5 * (tol["nlsn_seed_spread_ssim"] + tol["ssim_per_image"])) for n, (p, s) in log["Set5"].items()}
    rows = _rows("nlsn-official", "nlsn", "official", "Set5", set5)
    rows += _rows("edsr-s-official", "edsr-s", "official", "Set5", log["Set5"])  # no EDSR-S log exists
    rows += _rows("nlsn-official", "nlsn", "official", "Set5", log["Set5"], protocol="matlab")
    report = _run(tmp_path, rows, logs)
    ssim = [i for i in report.items if i.tier == "released" and i.metric == "ssim"]
    assert [i.status for i in ssim] == ["ok"] and "seed spread" in ssim[0].tolerance
    assert any("edsr-s-official has no released per-image log" in n for n in report.notes)
    assert any("protocol matlab not compared" in n for n in report.notes)
    # the same offset on a deterministic model is a miss
    rows = _rows("rcan-official", "rcan", "official", "Set5", set5)
    _write_log(logs / "RCAN_OFFICIAL.log", seed=3)
    report = _run(tmp_path, rows, logs)
    assert [(i.metric, i.status) for i in report.items if i.check == "per-image"] == [("psnr", "ok"), ("ssim", "miss")]


def test_table2_shows_released_rows_beside_the_paper(tmp_path: Path) -> None:
    log = _write_log(tmp_path / "RCAN_OFFICIAL.log", seed=4)
    csv = write_rows(tmp_path / "r.csv", _rows("rcan-official", "rcan", "official", "Set5", log["Set5"]))
    table = build_table(read_results([csv]), TABLE2)
    lines = [ln for ln in table.lines if ln.row_label == "RCAN"]
    assert [ln.source for ln in lines] == ["paper", "released"]
    assert "released / `rcan-official` / authors" in table.to_markdown()
    assert "released" in table.tiers_run
