"""The Speed page (``pcl.report.speed``, ``pcl speed``): constant columns once, varying ones in a table,
one line per unreadable CSV, and the committed benchmark CSVs each in their own section."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from pcl.cli import main
from pcl.report.speed import speed_page

REPO = Path(__file__).resolve().parents[1]

#: Two rows measured on one machine with one torch: cpu_model and torch_version are the same in both
#: rows, everything else differs between them.
SAMPLE = (
    "implementation,median_s,speedup_vs_ref,max_abs_diff,pixels,throughput,load_avg_before,note,cpu_model,torch_version\n"
    "ref,0.123456,1.0,0,2764800,123456.7,0.74267578125,,Test CPU 9000,2.13.0+cpu\n"
    "fast,0.0123456,10.0001,3.552713678800501e-15,2764801,2.5,1.5,a|b,Test CPU 9000,2.13.0+cpu\n"
)


def _section(page: str, stem: str) -> str:
    """The text of the ``## stem`` section, up to the next section."""
    start = page.index(f"## {stem}\n")
    end = page.find("\n## ", start + 1)
    return page[start:] if end < 0 else page[start:end]


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_constant_columns_are_bullets_and_varying_ones_a_rounded_table(tmp_path):
    """Expected cells are SAMPLE's values rounded by hand to 4 significant digits: 0.123456 -> 0.1235,
    0.0123456 -> 0.01235, 1.0 -> 1, 10.0001 -> 10, 0.74267578125 -> 0.7427, 3.5527e-15 -> 3.553e-15;
    integers (pixel counts) stay exact, 123456.7 is printed without exponent as 123457, the empty
    note as "–" and the pipe in "a|b" as "¦" so the table keeps its columns."""
    (tmp_path / "toy.csv").write_text(SAMPLE)
    page = speed_page(tmp_path)
    section = _section(page, "toy")
    assert page.startswith("# Speed\n")
    assert f"`{tmp_path / 'toy.csv'}`, 2 rows." in section
    # constant columns: once each, as "key: value" bullets, never in the table
    assert "- cpu_model: Test CPU 9000\n" in section
    assert "- torch_version: 2.13.0+cpu\n" in section
    assert page.count("Test CPU 9000") == 1 and page.count("cpu_model") == 1
    assert page.count("2.13.0+cpu") == 1
    header = "| implementation | median_s | speedup_vs_ref | max_abs_diff | pixels | throughput | load_avg_before | note |"
    assert header + "\n|---|---:|---:|---:|---:|---:|---:|---|\n" in section
    assert "| ref | 0.1235 | 1 | 0 | 2764800 | 123457 | 0.7427 | – |\n" in section
    assert "| fast | 0.01235 | 10 | 3.553e-15 | 2764801 | 2.5 | 1.5 | a¦b |\n" in section
    # machine (cpu_model), load (load_avg_before) and versions (torch_version) are all recorded
    assert "Not recorded" not in section


def test_missing_machine_load_and_versions_are_named(tmp_path):
    """A CSV without any machine, load_avg* or *_version column says so, so a reader never takes
    its timings for ones of a known machine."""
    (tmp_path / "bare.csv").write_text("image,psnr\na,30.1\nb,28.2\n")
    section = _section(speed_page(tmp_path), "bare")
    assert "Not recorded in this file: machine, load, versions." in section
    assert "| a | 30.1 |" in section and "| b | 28.2 |" in section


def test_sections_are_sorted_by_file_name(tmp_path):
    """Stable order: by file name, whatever order the folder lists them in."""
    for name in ("zeta", "alpha", "mid"):
        (tmp_path / f"{name}.csv").write_text("implementation,median_s\nx,1\ny,2\n")
    page = speed_page(tmp_path)
    assert [line[3:] for line in page.splitlines() if line.startswith("## ")] == ["alpha", "mid", "zeta"]
    assert speed_page(tmp_path) == page


@pytest.mark.faults
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"a,b,c\n1,2,3\n4,5\n", "line 3 has 2 fields, the header 3"),
        (b"a,b\n\xff\xfe,1\n", "not UTF-8 text (byte 4)"),
        (b"a,b\n", "a header but no rows"),
        (b"a,a\n1,2\n", "the header has an empty or repeated column name"),
    ],
)
def test_unparseable_csv_is_one_line_and_the_page_is_still_written(tmp_path, content, reason):
    """Each reason is the one the reader gives for that content: the byte offset 4 is where b"\\xff"
    sits in b"a,b\\n\\xff"; "line 3" is the second data row, which has 2 of the header's 3 fields.
    The good CSV beside it keeps its full section, and the folder is left as it was."""
    (tmp_path / "broken.csv").write_bytes(content)
    (tmp_path / "good.csv").write_text(SAMPLE)
    before = _tree_hash(tmp_path)
    page = speed_page(tmp_path)
    body = [line for line in _section(page, "broken").splitlines()[1:] if line.strip()]
    assert body == [f"`{tmp_path / 'broken.csv'}` cannot be parsed: {reason}; rerun "
                    f"`pcl bench all --out-dir {tmp_path}` to measure it again."]
    assert "| ref | 0.1235 | 1 |" in _section(page, "good")
    assert _tree_hash(tmp_path) == before


def test_empty_folder_says_nothing_was_measured_and_how_to_measure(tmp_path):
    """No CSV (a PNG alone does not count): no section, and the command that measures."""
    (tmp_path / "orphan.png").write_bytes(b"\x89PNG")
    page = speed_page(tmp_path)
    assert "## " not in page
    assert "none were measured" in page
    assert f"`pcl bench all --out-dir {tmp_path}`" in page


@pytest.mark.faults
def test_cli_missing_bench_dir_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    """What the user sees: exit 2, one stderr line naming the folder and `pcl bench all`; the output
    is not created and nothing else in the folder changes."""
    (tmp_path / "keep.txt").write_text("untouched")
    missing, out = tmp_path / "no_bench", tmp_path / "reports" / "speed.md"
    before = _tree_hash(tmp_path)
    assert main(["speed", "--bench-dir", str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "pcl bench all" in err[0]
    assert not out.exists()
    assert _tree_hash(tmp_path) == before


def test_cli_writes_the_page(tmp_path, capsys):
    """The file written is exactly the library's page for that folder."""
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "toy.csv").write_text(SAMPLE)
    out = tmp_path / "reports" / "speed.md"
    assert main(["speed", "--bench-dir", str(bench), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == speed_page(bench)
    assert str(out) in capsys.readouterr().out


def test_committed_bench_csvs_each_get_a_section_with_their_machine():
    """Expected sections and machines are read from the committed CSVs themselves: one section per
    CSV, holding every cpu_model value of that file and every load_avg*/*_version column name."""
    bench = REPO / "results" / "bench"
    csvs = sorted(p for p in bench.glob("*.csv") if not p.name.startswith("."))
    assert csvs, f"no CSV in {bench}"
    page = speed_page(bench)
    assert [line[3:] for line in page.splitlines() if line.startswith("## ")] == [p.stem for p in csvs]
    for path in csvs:
        section = _section(page, path.stem)
        assert "cannot be parsed" not in section, section.splitlines()[:3]
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        columns = list(rows[0])
        for value in {row.get("cpu_model", "").strip() for row in rows} - {""}:
            assert value in section, (path.name, value)
        for name in columns:
            if name.startswith("load_avg") or name.endswith("_version"):
                assert name in section, (path.name, name)
