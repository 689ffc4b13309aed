"""`pcl check` on reports/verdict.md: one line per claim, each with a status its rule gives.

Why re-derive and not only parse: a verdict edited to say "supported" where the data say
otherwise still lists every claim with a known status.  So the check runs the verdict's own rule
functions (``pcl.report.verdict.build_verdicts``) on the same gains.csv and result rows and
compares each claim's status, and the per-cell lines under "Cells of ...", with the file.  The
statuses a line may carry are the verdict module's vocabulary (``pcl.report.verdict.STATUSES``),
never a list kept here, so a new status needs no change in this file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pcl.report import verdict as verdict_module
from pcl.report.cells import CellsMap
from pcl.report.check_report import MISS, OK, CheckItem, CheckReport
from pcl.report.gains import GAIN_COLUMNS
from pcl.report.results import SOURCE_COLUMN
from pcl.resources import resource_path

CLAIM_LINE = re.compile(r"^- \*\*(?P<id>[^*]+)\*\*: (?P<rest>.*)$", re.M)
"""A claim's line in verdict.md: ``- **<id>**: <status>. "<text>" (<source>)``."""
CELLS_HEADING = re.compile(r"^## Cells of `(?P<id>[^`]+)`\s*$")
SEPARATOR = re.compile(r"^\|[-:| ]+\|\s*$")
NUMERIC_GAIN_COLUMNS: tuple[str, ...] = ("n", "mean_gain", "ci_low", "ci_high", "improved", "mde")
"""Columns of gains.csv the verdict's rules compute with (a text cell there would stop them)."""
NEEDS_CELLS = frozenset({"ordering"})
"""Claim kinds whose rule reads the catalog's cells mapping (not re-derived without one)."""


def known_statuses() -> tuple[str, ...]:
    """The statuses a claim or a cell may have, from the verdict module."""
    return tuple(verdict_module.STATUSES)


def status_pattern(statuses: tuple[str, ...] | None = None) -> re.Pattern[str]:
    """A regex whose group ``status`` matches one known status at the start of a claim line's rest
    (longest first, so that a status that is a prefix of another cannot win)."""
    names = sorted(statuses or known_statuses(), key=len, reverse=True)
    return re.compile(r"(?P<status>" + "|".join(re.escape(s) for s in names) + r")\.(\s|$)")


def parse_claim_lines(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(claim id -> status) for lines with a known status, (claim id -> text) for the others."""
    pattern = status_pattern()
    known, unknown = {}, {}
    for m in CLAIM_LINE.finditer(text):
        hit = pattern.match(m["rest"])
        if hit:
            known[m["id"]] = hit["status"]
        else:
            unknown[m["id"]] = m["rest"].split(".")[0][:40]
    return known, unknown


def parse_cell_lines(text: str) -> dict[str, list[str]]:
    """Claim id -> the table lines of its "Cells of" section (header and rule lines left out)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        heading = CELLS_HEADING.match(line)
        if heading:
            current = heading["id"]
            out[current] = []
        elif line.startswith("## "):
            current = None
        elif current is not None and line.startswith("|") and not SEPARATOR.match(line):
            out[current].append(line.rstrip())
    return {claim: lines[1:] for claim, lines in out.items()}  # the first line is the table's header


def results_root(results: pd.DataFrame) -> Path | None:
    """The folder holding results/<tier>/<experiment>/<protocol>/<set>.csv, when the rows name one."""
    if SOURCE_COLUMN not in results.columns or results.empty:
        return None
    roots = {Path(str(p)).parents[3] for p in results[SOURCE_COLUMN].dropna().unique() if len(Path(str(p)).parents) > 3}
    return roots.pop() if len(roots) == 1 else None


def _rederive(claims: list[dict], results: pd.DataFrame, gains: pd.DataFrame, cells: CellsMap | None,
              results_dir: Path | None) -> list:
    """The verdicts `pcl verdict` would write for these inputs (its own call, its own paper table)."""
    paper = pd.read_csv(resource_path("reference", "paper", "table2.csv"), dtype=str, keep_default_na=False)
    return verdict_module.build_verdicts(claims, results, gains, paper_table2=paper, cells=cells,
                                         results_dir=results_dir if results_dir is not None else results_root(results))


def _read_gains(path: Path) -> tuple[pd.DataFrame | None, str]:
    """gains.csv as `pcl verdict` reads it, or None and why the rules cannot run on it (the gains
    check reports the file itself as a miss)."""
    try:
        gains = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        return None, f"{path} is not readable ({exc.__class__.__name__})"
    missing = [c for c in GAIN_COLUMNS if c not in gains.columns]
    if missing:
        return None, f"{path} lacks column(s) {', '.join(missing)}"
    text = [c for c in NUMERIC_GAIN_COLUMNS if c in gains.columns and not pd.api.types.is_numeric_dtype(gains[c])]
    if text:
        return None, f"{path} has non-numbers in column(s) {', '.join(text)}"
    return gains, ""


def _cell_problems(claim_id: str, ours: list[str], theirs: list[str]) -> list[str]:
    if ours == theirs:
        return []
    if len(ours) != len(theirs):
        return [f"{claim_id}: {len(theirs)} cell lines, the rule gives {len(ours)}"]
    return [f"{claim_id}: cell line '{t[:160]}' where the rule gives '{o[:160]}'" for o, t in zip(ours, theirs) if o != t][:3]


def rederived_problems(text: str, claims: list[dict], results: pd.DataFrame, gains: pd.DataFrame,
                       cells: CellsMap | None, notes: list[str], results_dir: Path | None = None) -> list[str]:
    """Claims (and cells) whose status in ``text`` is not what the verdict's rules give."""
    found, _ = parse_claim_lines(text)
    cell_lines = parse_cell_lines(text)
    testable = [c for c in claims if cells is not None or c["kind"] not in NEEDS_CELLS]
    skipped = [c["id"] for c in claims if c not in testable]
    if skipped:
        notes.append(f"verdict: status of {', '.join(skipped)} not re-derived (no cells mapping; pass --cells)")
    problems = []
    for v in _rederive(testable, results, gains, cells, results_dir):
        claim_id = v.claim["id"]
        if claim_id in found and found[claim_id] != v.status:
            problems.append(f"{claim_id}: verdict.md says '{found[claim_id]}', its rule gives '{v.status}'")
        problems += _cell_problems(claim_id, [c.rstrip() for c in v.cells], cell_lines.get(claim_id, []))
    return problems


def check_verdict_file(verdict_md: Path, claims: list[dict], report: CheckReport, *, results: pd.DataFrame | None = None,
                       gains_csv: Path | None = None, cells: CellsMap | None = None,
                       results_dir: Path | None = None) -> None:
    """One line per claim with a known status; with ``results`` and ``gains_csv``, each status (and
    each cell line) equal to what the verdict's rules give on them.

    ``results_dir`` (where the result sidecars are, as `pcl verdict --results-dir`) defaults to the
    folder the rows were read from (``results_root``).
    """
    try:
        text = Path(verdict_md).read_text()
    except OSError as exc:
        report.items.append(CheckItem("", "verdict", str(verdict_md), "", "", "", None, "", "readable", MISS,
                                      f"cannot read ({exc.__class__.__name__}); run `pcl verdict`"))
        return
    found, unknown = parse_claim_lines(text)
    ids = [c["id"] for c in claims]
    lacking = [i for i in ids if i not in found and i not in unknown]
    extra = sorted((set(found) | set(unknown)) - set(ids))
    ids_seen = [m["id"] for m in CLAIM_LINE.finditer(text)]
    doubled = sorted({i for i in ids_seen if ids_seen.count(i) > 1})
    problems = [f"claims without a line: {', '.join(lacking)}" if lacking else "",
                f"lines for no claim: {', '.join(extra)}" if extra else "",
                f"more than one line for: {', '.join(doubled)}" if doubled else "",
                *(f"{i}: status '{s}' is not one of {', '.join(known_statuses())}" for i, s in sorted(unknown.items()))]
    problems = [p for p in problems if p]
    rederived = results is not None and gains_csv is not None
    gains, why = _read_gains(gains_csv) if rederived else (None, "pass --gains with --verdict")
    if gains is not None:
        problems += rederived_problems(text, claims, results, gains, cells, report.notes, results_dir)
    else:
        rederived = False
        report.notes.append(f"verdict: statuses not re-derived ({why})")
    ok_detail = f"every claim has its line ({len(ids)})" + (", each with the status its rule gives" if rederived else "")
    report.items.append(CheckItem("", "verdict", str(verdict_md), "", "", "claims", None, "", f"{len(ids)} claims",
                                  MISS if problems else OK, "; ".join(problems[:6]) or ok_detail))
    _check_study_section(text, verdict_md, report)


def _check_study_section(text: str, verdict_md: Path, report: CheckReport) -> None:
    """The study's lines at miniature scale (``pcl verdict --study``) equal to those its table gives now."""
    from pcl.errors import PCLError
    from pcl.report.study_write import parse_verdict_section, read_study_table, verdict_lines

    section = parse_verdict_section(text)
    if section is None:
        return
    source, lines = section
    try:
        expected = verdict_lines(read_study_table(Path(source)))
    except PCLError as exc:
        status, detail = MISS, f"{exc}"
    else:
        status = OK if lines == expected else MISS
        detail = ("both lines as the study table gives them" if status == OK else
                  f"the page says {lines!r} but {source} gives {expected!r}; run `pcl verdict --study {source}` again")
    report.items.append(CheckItem("study", "verdict", str(verdict_md), "miniature scale", "", "", None, "",
                                  "re-derived from the study table", status, detail))
