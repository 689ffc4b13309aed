"""Released per-image logs: parsing, self-consistency, ingestion and the audit against Table II.

Expected numbers come from docs/protocols.md §8 (format, line counts, HAN_Ours doubled) and
docs/method.md §8.1 (flags of log averages vs Table II) and §8.2 (gains and images improved), all hand-made from
the same files; the audit must reproduce them from the data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pcl.errors import PCLError
from pcl.names import DATASETS
from pcl.report.audit import audit_table, classify, write_audit
from pcl.report.paper import round_half_up
from pcl.report.released_logs import (
    LOG_EXPERIMENTS,
    check_averages,
    ingest,
    largest_average_difference,
    log_rows,
    parse_log,
    parse_logs,
)
from pcl.report.results import RESULT_COLUMNS, read_results
from pcl.resources import resource_path

LOGS = resource_path("reference", "released_logs")


@pytest.fixture(scope="module")
def logs():
    return parse_logs(LOGS)


@pytest.fixture(scope="module")
def audit():
    return audit_table(LOGS)


def _copy(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copy(LOGS / name, dst)
    return dst


def _edit_line(path: Path, lineno: int, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[lineno - 1] = new + "\n"
    path.write_text("".join(lines))


# --- parsing ----------------------------------------------------------------------------------


def test_every_shipped_log_parses(logs):
    # docs/protocols.md §8: eight logs; 338 lines each (5 headers + 328 images + 5 averages), HAN_Ours 676 (doubled)
    assert sorted(logs) == sorted(p.stem for p in LOGS.glob("*.log")) and len(logs) == 8
    assert set(logs) <= set(LOG_EXPERIMENTS)  # every shipped log has a known (backbone, method)
    for name, parsed in logs.items():
        assert parsed.n_lines == (676 if name == "HAN_Ours" else 338), name
        assert parsed.duplicated == (name == "HAN_Ours"), name
        # docs/protocols.md §8: block order and sizes Set5 5, Set14 14, B100 100, Urban100 100, Manga109 109
        assert [(b.dataset, len(b.images)) for b in parsed.blocks] == [
            ("Set5", 5), ("Set14", 14), ("B100", 100), ("Urban100", 100), ("Manga109", 109)
        ]
        assert len(log_rows(parsed)) == 328


def test_first_image_line_parsed_exactly(logs):
    # EDSR_Ours.log line 2 reads '  1 - baby  . PSNR: 33.914393 dB, SSIM: 0.895876' (file as shipped)
    first = logs["EDSR_Ours"].blocks[0].images[0]
    assert (first.index, first.name, first.psnr, first.ssim, first.line) == (1, "baby", 33.914393, 0.895876, 2)
    # a name longer than the padding has no space before the dot (Manga109 #26 in every log)
    manga = logs["EDSR_Ours"].block("Manga109").images[25]
    assert manga.name == "HanzaiKousyouninMinegishiEitarou"


def test_stated_averages_equal_per_image_means(logs):
    # docs/protocols.md §8: "The averages in the files equal the means of the per-image lines" (6 printed decimals)
    for parsed in logs.values():
        assert check_averages(parsed) == []
        assert abs(largest_average_difference(parsed).difference) <= 1e-6
    # and a stated average is what the file prints (EDSR_Ours Set5 'Average: PSNR: 32.523324 dB')
    assert logs["EDSR_Ours"].blocks[0].stated_psnr == 32.523324


def test_tampered_average_is_reported(tmp_path):
    path = _copy(tmp_path, "RCAN_OFFICIAL.log")
    # line 7 is the Set5 Average line (header line 1 + 5 images)
    text = path.read_text().splitlines()
    assert text[6].startswith("Average:")
    _edit_line(path, 7, "Average: PSNR: 32.700000 dB, SSIM: 0.900233")
    mism = check_averages(parse_log(path))
    assert [(m.dataset, m.metric) for m in mism] == [("Set5", "psnr")]
    assert mism[0].line == 7


def test_malformed_line_names_file_and_line(tmp_path):
    path = _copy(tmp_path, "RCAN_Ours.log")
    _edit_line(path, 12, "  4 - barbara   . PSNR: twenty dB, SSIM: 0.7")  # line 12 = Set14 image 4
    with pytest.raises(PCLError, match=r"RCAN_Ours\.log: line 12: cannot parse"):
        parse_log(path)


def test_block_with_wrong_count_is_refused(tmp_path):
    path = _copy(tmp_path, "NLSNx4_Ours.log")
    lines = path.read_text().splitlines(keepends=True)
    del lines[9]  # drop Set14 image 2 (line 10) and renumber nothing: the index check fires first
    path.write_text("".join(lines))
    with pytest.raises(PCLError, match=r"line 10: image index 3 in the Set14 block, expected 2"):
        parse_log(path)
    # drop the last Set14 image instead: the count check fires on the Average line
    path = _copy(tmp_path, "NLSNx4_Ours.log")
    lines = path.read_text().splitlines(keepends=True)
    del lines[21]  # line 22 = Set14 image 14
    path.write_text("".join(lines))
    with pytest.raises(PCLError, match=r"line 22: the Set14 block .* holds 13 images, expected 14"):
        parse_log(path)


def test_doubled_log_with_differing_copies_is_refused(tmp_path):
    path = _copy(tmp_path, "HAN_Ours.log")
    # second copy starts at line 339; its Urban100 block spans lines 339+125 .. 339+226
    lines = path.read_text().splitlines()
    assert lines[499] != lines[499].replace("PSNR: ", "PSNR: 1")
    _edit_line(path, 500, lines[499].replace("PSNR: ", "PSNR: 1"))
    with pytest.raises(PCLError, match=r"the Urban100 blocks differ \(line 162 vs line 500\)"):
        parse_log(path)


def test_truncated_log_is_refused(tmp_path):
    path = _copy(tmp_path, "EDSR_Ours.log")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:300]))
    with pytest.raises(PCLError, match="Manga109 block .* no 'Average:' line"):
        parse_log(path)


# --- rows and ingestion -----------------------------------------------------------------------


def test_log_rows_follow_the_schema(logs):
    rows = log_rows(logs["HAN_Ours"])
    assert list(rows[0]) == list(RESULT_COLUMNS)
    r = rows[0]
    assert (r["tier"], r["experiment"], r["backbone"], r["method"], r["protocol"], r["scale"]) == (
        "reported", "han-pcl", "han", "pcl", "authors", 4
    )
    assert r["height"] is None and r["width"] is None and r["channels"] is None and r["seed"] is None
    assert r["run_id"].startswith("HAN_Ours.log@") and len(r["run_id"].split("@")[1]) == 12


def test_ingest_writes_one_file_per_log_and_set(tmp_path):
    paths = ingest(LOGS, tmp_path / "results")
    assert len(paths) == 8 * 5
    assert tmp_path / "results/reported/edsr-l-official/authors/Set5.csv" in paths
    assert tmp_path / "results/reported/nlsn-pcl/authors/Manga109.csv" in paths
    df = read_results(paths)
    assert len(df) == 8 * 328
    # values survive the CSV round trip exactly (6-decimal text -> float -> repr)
    rcan_b100 = df[(df["experiment"] == "rcan-official") & (df["dataset"] == "B100")]
    assert abs(rcan_b100["psnr"].mean() - 27.743771) < 1e-6  # RCAN_OFFICIAL.log B100 Average line
    assert sorted(set(df["dataset"])) == sorted(DATASETS)


def test_unknown_log_file_is_refused(tmp_path):
    shutil.copy(LOGS / "RCAN_Ours.log", tmp_path / "SwinIR_Ours.log")
    with pytest.raises(PCLError, match="SwinIR_Ours"):
        ingest(tmp_path, tmp_path / "results")


# --- audit vs docs/method.md §8.1 / §8.2 ------------------------------------------------------


def test_rounding_helpers():
    # half-up, not banker's: 27.825 -> 27.83; 0.745448 -> 0.7454 (docs/method.md §8.1 item 6)
    assert str(round_half_up("27.825", 2)) == "27.83"
    assert classify(0.745448, "0.7455") == ("0.7454", -1, "±1")
    assert classify(32.484510, "32.46") == ("32.48", 2, "X")
    assert classify(32.523324, "32.52") == ("32.52", 0, "=")


# docs/method.md §8.1 table, transcribed: (log, dataset) -> (PSNR flag, SSIM flag); "" means equal after rounding
SPEC_81 = {
    "EDSR_RAW_OFFICIAL": [("X", "X"), ("±1", "X"), ("±1", ""), ("±1", "X"), ("X", "X")],
    "EDSR_Ours": [("", ""), ("", ""), ("", "X"), ("", "±1"), ("", "")],
    "RCAN_OFFICIAL": [("", ""), ("", ""), ("±1", "X"), ("", ""), ("", "")],
    "RCAN_Ours": [("", ""), ("", ""), ("±1", "X"), ("", ""), ("", "")],
    "HAN_OFFICIAL": [("±1", "X"), ("", ""), ("", ""), ("±1", ""), ("X", "X")],
    "HAN_Ours": [("", ""), ("", ""), ("", ""), ("", ""), ("", "")],
    "NLSNx4_official": [("", "±1"), ("", "X"), ("", "X"), ("", "±1"), ("X", "X")],
    "NLSNx4_Ours": [("", ""), ("", ""), ("", "±1"), ("", ""), ("", "")],
}


def test_audit_reproduces_spec_8_1_flags(audit):
    avg = audit[audit["kind"] == "average"]
    assert len(avg) == 8 * 5 * 2
    for log, flags in SPEC_81.items():
        for dataset, (pf, sf) in zip(DATASETS, flags):
            got = avg[(avg["log"] == log) & (avg["dataset"] == dataset)].set_index("metric")["flag"]
            assert (got["psnr"], got["ssim"]) == (pf or "=", sf or "="), (log, dataset)


def test_audit_rows_map_logs_to_table2_rows(audit):
    avg = audit[audit["kind"] == "average"]
    pairs = set(zip(avg["log"], avg["row_label"]))
    # docs/protocols.md §8 file table: EDSR_RAW_OFFICIAL is EDSR-L (not EDSR-S), the Ours logs are the +PCL rows
    assert ("EDSR_RAW_OFFICIAL", "EDSR-L") in pairs and ("NLSNx4_Ours", "NLSN+PCL") in pairs
    assert len(pairs) == 8


# docs/method.md §8.2 "Images improved (PSNR, +PCL vs official)"
SPEC_82_IMPROVED = {
    "edsr-l": [4, 12, 66, 79, 102],
    "rcan": [4, 10, 79, 74, 98],
    "han": [4, 9, 65, 77, 44],
    "nlsn": [4, 13, 94, 93, 109],
}
# docs/method.md §8.2 "log gains PSNR" (3 decimals as printed there)
SPEC_82_GAINS = {
    "edsr-l": [0.039, 0.024, 0.015, 0.062, 0.163],
    "rcan": [0.058, 0.042, 0.030, 0.093, 0.213],
    "han": [0.064, 0.023, 0.013, 0.107, 0.005],
    "nlsn": [0.125, 0.115, 0.064, 0.157, 0.246],
}


def test_audit_reproduces_spec_8_2_gains_and_improved_counts(audit):
    gains = audit[(audit["kind"] == "gain") & (audit["metric"] == "psnr")]
    for backbone, counts in SPEC_82_IMPROVED.items():
        sub = gains[gains["backbone"] == backbone].set_index("dataset")
        assert [int(sub.loc[d, "images_improved"]) for d in DATASETS] == counts, backbone
        assert [int(sub.loc[d, "n_images"]) for d in DATASETS] == [5, 14, 100, 100, 109]
        for d, g in zip(DATASETS, SPEC_82_GAINS[backbone]):
            assert abs(sub.loc[d, "log_value"] - g) <= 0.0005 + 1e-12, (backbone, d)


def test_audit_gain_compares_with_row_difference(audit):
    gains = audit[audit["kind"] == "gain"].set_index(["backbone", "dataset", "metric"])
    # docs/method.md §8.3: EDSR-L Urban100 rows give 0.07 / 0.0023 (the printed Gains cell 0.06/0.0019 is not used)
    assert gains.loc[("edsr-l", "Urban100", "psnr"), "paper_value"] == "0.07"
    assert gains.loc[("edsr-l", "Urban100", "ssim"), "paper_value"] == "0.0023"
    # docs/method.md §9 item 20: NLSN Manga109 row gain 0.30 dB vs 0.246 from the logs
    assert gains.loc[("nlsn", "Manga109", "psnr"), "paper_value"] == "0.30"
    assert gains.loc[("nlsn", "Manga109", "psnr"), "flag"] == "X"
    # RCAN gains from logs match the rows everywhere (docs/method.md §8.1 item 3: "the gain is unchanged")
    assert set(gains.xs("rcan", level="backbone")["flag"]) == {"="}


def test_write_audit_files(tmp_path):
    paths = write_audit(tmp_path / "tables")
    assert [p.name for p in paths] == ["audit_released_logs.md", "audit_released_logs.csv"]
    md = paths[0].read_text()
    assert "rounded half-up" in md and "`±1`" in md and "`X`" in md
    assert "| NLSNx4_official | NLSN | PSNR |" in md
    assert read_csv_rows(paths[1]) == 80 + 40


def read_csv_rows(path: Path) -> int:
    return len(path.read_text().strip().splitlines()) - 1
