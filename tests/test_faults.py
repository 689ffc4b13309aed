"""Hostile paths and damaged files around the per-image commands and the report readers.

Every test runs the ``pcl`` command as a user would (``pcl.cli.main``) and asserts both what the
user sees (exit code 2 and one line naming the value, or a ``pcl check`` miss naming the file and
the image) and that nothing outside the intended target changed: the whole temporary tree,
inputs included, is hashed before and after.  The images are the shipped Set5 HR set; its file
names (baby, bird, butterfly, head, woman) are where the expected image names come from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from pcl.cli import main
from pcl.data.images import read_image, write_png
from pcl.data.imresize import bicubic_degrade
from pcl.errors import PCLError
from pcl.report.results import sidecar_field

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
SET5 = REPO / "resources" / "benchmarks" / "Set5" / "HR"
STEMS = sorted(p.stem for p in SET5.glob("*.png"))  # the shipped set, sorted as the harness lists it
CONFIG = ["--tolerances", str(REPO / "config" / "tolerances.yaml"), "--deviations", str(REPO / "config" / "expected_deviations.yaml"),
          "--catalog", str(REPO / "config" / "experiments.yaml")]


def tree_hash(root: Path) -> dict[str, str]:
    """Every file and link under ``root`` (hidden ones too) -> its sha256 (a link: its target)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("pcl: error:") and "\n" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture()
def folders(tmp_path: Path) -> dict[str, Path]:
    """hr: a copy of Set5 HR; sr: copies of the HR images standing in as SR output; lr: MATLAB
    bicubic x4 of each HR image (a valid LR set, so that only the output path can be refused)."""
    hr = tmp_path / "hr"
    shutil.copytree(SET5, hr)
    sr = tmp_path / "sr"
    shutil.copytree(SET5, sr)
    lr = tmp_path / "lr"
    for path in sorted(hr.iterdir()):
        write_png(lr / path.name, bicubic_degrade(read_image(path), 4))
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "keep.txt").write_text("not to be touched\n")
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    (tmp_path / "hr_link").symlink_to(hr)
    return {"root": tmp_path, "hr": hr, "sr": sr, "lr": lr, "hr_link": tmp_path / "hr_link"}


def _score(f: dict[str, Path], out: Path | str) -> list[str]:
    return ["score", "--sr-dir", f["sr"], "--hr-dir", f["hr"], "--out", out]


def _evaluate(f: dict[str, Path], out: Path | str, *extra: str) -> list[str]:
    return ["evaluate", "--model", "bicubic", "--hr-dir", f["hr"], "--lr-dir", f["lr"], "--dataset", "Set5",
            "--out", out, *extra]


# (case, what --out is, text the one-line error must hold)
OUT_CASES = [
    ("json", lambda f: f["root"] / "scores.json", ".json name"),
    ("image_in_input", lambda f: f["hr"] / "baby.png", "image file name"),
    ("image_elsewhere", lambda f: f["root"] / "rows.bmp", "image file name"),
    ("inside_hr", lambda f: f["hr"] / "rows.csv", "inside the input folder --hr-dir"),
    ("inside_hr_via_dotdot", lambda f: f["root"] / "outdir" / ".." / "hr" / "rows.csv", "inside the input folder --hr-dir"),
    ("inside_hr_via_link", lambda f: f["root"] / "hr_link" / "rows.csv", "inside the input folder --hr-dir"),
    ("existing_folder", lambda f: f["root"] / "outdir", "is an existing folder"),
    ("sidecar_is_folder", lambda f: f["root"] / "outdir.csv", "sidecar path"),
    ("parent_is_file", lambda f: f["root"] / "notes.txt" / "rows.csv", "is a file, not a folder"),
]


@pytest.mark.parametrize("command", ["score", "evaluate"])
@pytest.mark.parametrize("case, make_out, needle", OUT_CASES, ids=[c[0] for c in OUT_CASES])
def test_unsafe_out_is_refused_and_nothing_changes(command, case, make_out, needle, folders, capsys) -> None:
    if case == "sidecar_is_folder":
        (folders["root"] / "outdir.json").mkdir()  # the sidecar of outdir.csv would have to replace it
    out = make_out(folders)
    before = tree_hash(folders["root"])
    argv = _score(folders, out) if command == "score" else _evaluate(folders, out)
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, f"--out {out}", needle)
    assert tree_hash(folders["root"]) == before


@pytest.mark.parametrize("command, input_flag", [("score", "--sr-dir"), ("evaluate", "--lr-dir")])
def test_out_inside_the_other_input_folder(command, input_flag, folders, capsys) -> None:
    # the SR folder of `pcl score` and the LR folder of `pcl evaluate` are inputs too
    folder = folders["sr"] if command == "score" else folders["lr"]
    out = folder / "rows.csv"
    before = tree_hash(folders["root"])
    code, _, err = run(capsys, *(_score(folders, out) if command == "score" else _evaluate(folders, out)))
    assert_one_line_error(code, err, f"--out {out}", f"inside the input folder {input_flag}")
    assert tree_hash(folders["root"]) == before


def test_save_sr_into_the_hr_folder_is_refused(folders, capsys) -> None:
    # SR images are named after the HR stems: written into --hr-dir they would replace the ground truth
    before = tree_hash(folders["root"])
    out = folders["root"] / "rows.csv"
    code, _, err = run(capsys, *_evaluate(folders, out, "--save-sr", str(folders["hr_link"])))
    assert_one_line_error(code, err, f"--save-sr {folders['hr_link']}", "--hr-dir")
    assert tree_hash(folders["root"]) == before


def test_out_beside_a_checkpoint_cannot_replace_its_sidecar(folders, capsys) -> None:
    # a harness checkpoint m.safetensors keeps its settings in m.json; --out m.csv would overwrite them
    import torch

    from pcl.models import build_model
    from pcl.models.checkpoints import save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(build_model("edsr-s", n_resblocks=1, n_feats=8), folders["root"] / "ckpt" / "m.safetensors",
                           arch="edsr-s", config={"n_resblocks": 1, "n_feats": 8}, provenance={})
    assert ckpt.with_suffix(".json").is_file()
    out = ckpt.with_suffix(".csv")
    before = tree_hash(folders["root"])
    argv = ["evaluate", "--model", "auto", "--checkpoint", ckpt, "--hr-dir", folders["hr"], "--dataset", "Set5", "--out", out]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, f"--out {out}", f"would overwrite the input file {ckpt.with_suffix('.json')}")
    assert tree_hash(folders["root"]) == before


def test_a_safe_out_still_writes_rows_and_sidecar(folders, capsys) -> None:
    # the guard refuses only what can destroy data: a plain CSV beside the inputs is written with its sidecar
    out = folders["root"] / "scores" / "set5.csv"
    inputs = {k: tree_hash(folders[k]) for k in ("hr", "sr")}
    code, stdout, err = run(capsys, *_score(folders, out))
    assert code == 0, err
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert len(out.read_text().splitlines()) == 1 + len(STEMS) and f"{len(STEMS)} images" in stdout
    assert {k: tree_hash(folders[k]) for k in ("hr", "sr")} == inputs


# --- two files for one image --------------------------------------------------------------------


def test_two_sr_files_for_one_image_are_named(folders, capsys) -> None:
    # baby_x4.png pairs with baby.png by the usual SR suffix; with baby.png also there, baby would count twice
    shutil.copy(folders["sr"] / "baby.png", folders["sr"] / "baby_x4.png")
    out = folders["root"] / "rows.csv"
    before = tree_hash(folders["root"])
    code, _, err = run(capsys, *_score(folders, out))
    assert_one_line_error(code, err, "baby.png and baby_x4.png", "SR images of baby.png")
    assert tree_hash(folders["root"]) == before


def test_two_sr_files_with_one_stem_without_ground_truth(folders, capsys) -> None:
    # no-reference scoring names rows by stem: baby.png and baby.bmp would both be row "baby"
    shutil.copy(folders["sr"] / "baby.png", folders["sr"] / "baby.bmp")
    out = folders["root"] / "rows.csv"
    before = tree_hash(folders["root"])
    code, _, err = run(capsys, "score", "--sr-dir", folders["sr"], "--metrics", "niqe", "--out", out)
    assert_one_line_error(code, err, "baby.bmp and baby.png", "share one image name")
    assert tree_hash(folders["root"]) == before


def test_two_hr_files_with_one_stem_are_named(folders, capsys) -> None:
    shutil.copy(folders["hr"] / "bird.png", folders["hr"] / "bird.bmp")
    out = folders["root"] / "rows.csv"
    before = tree_hash(folders["root"])
    code, _, err = run(capsys, "evaluate", "--model", "bicubic", "--hr-dir", folders["hr"], "--dataset", "Set5", "--out", out)
    assert_one_line_error(code, err, "bird.bmp and bird.png", "share one image name")
    assert tree_hash(folders["root"]) == before


def test_two_lr_files_for_one_image_fail_before_any_sr_image_is_saved(folders, capsys) -> None:
    # woman is the last image: the doubled LR file must be found before baby..head are scored and saved
    shutil.copy(folders["lr"] / "woman.png", folders["lr"] / "woman_x4.png")
    out = folders["root"] / "rows.csv"
    before = tree_hash(folders["root"])
    code, _, err = run(capsys, *_evaluate(folders, out, "--save-sr", str(folders["root"] / "sr_out")))
    assert_one_line_error(code, err, "woman.png and woman_x4.png", "LR images of 'woman'")
    assert tree_hash(folders["root"]) == before


# --- pcl check counts distinct images -------------------------------------------------------------


@pytest.fixture(scope="module")
def bicubic_results(tmp_path_factory) -> Path:
    """A real result file with its sidecar, as `pcl evaluate` writes it (Set5, bicubic, matlab)."""
    root = tmp_path_factory.mktemp("results")
    out = root / "bicubic" / "bicubic" / "matlab" / "Set5.csv"
    assert main(["evaluate", "--model", "bicubic", "--hr-dir", str(SET5), "--dataset", "Set5", "--out", str(out)]) == 0
    return root


def _copy_results(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst / "bicubic" / "bicubic" / "matlab" / "Set5.csv"


def test_check_reports_a_row_copied_over_another_as_a_miss(bicubic_results, tmp_path, capsys) -> None:
    # five rows as before, but the last image's row is now a copy of the first: woman is missing, baby twice
    csv = _copy_results(bicubic_results, tmp_path / "results")
    lines = csv.read_text().splitlines()
    assert len(lines) == 1 + len(STEMS)
    lines[-1] = lines[1]
    csv.write_text("\n".join(lines) + "\n")
    before = tree_hash(tmp_path / "results")
    report = tmp_path / "check.md"
    code, stdout, err = run(capsys, "check", "--results", tmp_path / "results", "--out", report, *CONFIG)
    assert code == 1, err
    first = STEMS[0]  # the first row of a file written in sorted order
    miss = [line for line in stdout.splitlines() if "| images |" in line]
    assert len(miss) == 1, stdout
    assert "bicubic/bicubic/matlab/Set5.csv" in miss[0] and f"{first} x2" in miss[0]
    assert f"partial set: {len(STEMS) - 1}/{len(STEMS)} images" in stdout
    assert tree_hash(tmp_path / "results") == before


def test_check_of_the_intact_file_has_no_image_miss(bicubic_results, tmp_path, capsys) -> None:
    # the same file untouched: every image once, so the duplicate test above can only fail for the copy
    _copy_results(bicubic_results, tmp_path / "results")
    code, stdout, err = run(capsys, "check", "--results", tmp_path / "results", *CONFIG)
    assert "| images |" not in stdout and "1 result file(s) with each image once" in stdout, stdout + err


def test_check_reports_the_same_rows_passed_twice(bicubic_results, tmp_path, capsys) -> None:
    # one run's file copied to a second place and both passed: every image would count twice in the means
    csv = _copy_results(bicubic_results, tmp_path / "results")
    copy = tmp_path / "elsewhere" / "Set5.csv"
    copy.parent.mkdir()
    shutil.copy(csv, copy)
    shutil.copy(csv.with_suffix(".json"), copy.with_suffix(".json"))
    code, stdout, err = run(capsys, "check", "--results", tmp_path / "results", copy, *CONFIG)
    assert code == 1, err
    miss = [line for line in stdout.splitlines() if "| images |" in line]
    assert len(miss) == 1 and " and " in miss[0] and f"{len(STEMS)} image(s) more than once" in miss[0], stdout


# --- damaged files read by the report side ----------------------------------------------------------


def _report_commands(results: Path, out: Path) -> dict[str, list]:
    return {
        "check": ["check", "--results", results, "--out", out / "check.md", *CONFIG],
        "tables": ["tables", "--results", results, "--out-dir", out / "tables", "--figures-dir", out / "figures",
                   "--catalog", REPO / "config" / "experiments.yaml"],
        "gains": ["gains", "--results", results, "--out-dir", out / "gains", "--figures-dir", out / "figures"],
    }


@pytest.mark.parametrize("command", ["check", "tables", "gains"])
@pytest.mark.parametrize("damage", ["binary", "binary_nul_first", "no_columns", "bad_quotes"])
def test_damaged_result_file_one_line_and_nothing_written(command, damage, bicubic_results, tmp_path, capsys) -> None:
    csv = _copy_results(bicubic_results, tmp_path / "results")
    if damage == "binary":
        csv.write_bytes(bytes(range(255, -1, -1)) * 8)  # starts with 0xff: not UTF-8
        needle = "not UTF-8 CSV text"
    elif damage == "binary_nul_first":
        csv.write_bytes(bytes(range(256)) * 8)  # control bytes first: pandas' tokenizer gives up before decoding
        needle = "not valid CSV"
    elif damage == "no_columns":
        csv.write_text("image,psnr,ssim\nbaby,30.0,0.9\n")  # a `pcl score` CSV dropped among the results
        needle = "lacks column(s) tier"
    else:
        csv.write_text(csv.read_text().splitlines()[0] + '\n"unclosed,quote\n')
        needle = "not valid CSV"
    before = tree_hash(tmp_path)
    code, _, err = run(capsys, *_report_commands(tmp_path / "results", tmp_path / "out")[command])
    assert_one_line_error(code, err, str(csv), needle, "run snakemake again")
    assert tree_hash(tmp_path) == before  # no report, table or figure folder was created


def test_malformed_sidecar_stops_the_verdict(bicubic_results, tmp_path, capsys) -> None:
    # the verdict compares the checkpoint sha256 of the -pcl-released and -control sidecars
    results = tmp_path / "results"
    _copy_results(bicubic_results, results)
    runs = tmp_path / "sidecars" / "smoke"
    for experiment in ("rcan-pcl-released", "rcan-control"):
        (runs / experiment / "matlab").mkdir(parents=True)
    (runs / "rcan-control" / "matlab" / "Set5.json").write_text(json.dumps({"checkpoint": {"sha256": "ab" * 32}}))
    bad = runs / "rcan-pcl-released" / "matlab" / "Set5.json"
    bad.write_text('{"checkpoint": ')  # cut short
    assert main(["gains", "--results", str(results), "--out-dir", str(tmp_path / "gains"),
                 "--figures-dir", str(tmp_path / "figures")]) == 0
    capsys.readouterr()
    before = tree_hash(tmp_path)
    out = tmp_path / "verdict.md"
    code, _, err = run(capsys, "verdict", "--results", results, "--results-dir", tmp_path / "sidecars",
                       "--gains", tmp_path / "gains" / "gains.csv", "--claims", REPO / "config" / "claims.yaml",
                       "--catalog", REPO / "config" / "experiments.yaml", "--out", out)
    assert_one_line_error(code, err, str(bad), "not valid JSON", "run snakemake again")
    assert tree_hash(tmp_path) == before and not out.exists()


@pytest.mark.parametrize("content, needle", [
    ('{"checkpoint": "ab12"}', "'checkpoint' holds str"),
    ("[1, 2]", "holds a JSON list"),
    (b"\xff\xfe\x00garbage", "cannot be read as text"),
])
def test_sidecar_of_the_wrong_shape_names_itself(content, needle, tmp_path) -> None:
    csv = tmp_path / "Set5.csv"
    sidecar = csv.with_suffix(".json")
    if isinstance(content, bytes):
        sidecar.write_bytes(content)
    else:
        sidecar.write_text(content)
    with pytest.raises(PCLError, match="run snakemake again") as info:
        sidecar_field(csv, "checkpoint", "sha256")
    assert str(sidecar) in str(info.value) and needle in str(info.value)
