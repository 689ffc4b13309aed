"""The first screen of the HTML report: what was reproduced and the verdict per claim, with links.

Why a generated fragment: Snakemake's report opens on its rule graph, beside the workflow
description (the Snakefile's ``report:`` rst, ``workflow/report/workflow.rst``).  A reader's first
question is not how the rules connect but what the run found, so the description pulls in this
fragment (``reports/html/front.html``, an rst ``raw`` include), written by ``pcl pages`` from the
same reports/verdict.md and Table II page the report shows, never typed by hand.

Links use the report's own JavaScript (``app.showCategory`` / ``app.showResultInfo``, the calls
Snakemake's rst link targets expand to), so they open the pages and figures inside the report.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from pcl.names import TIER_MEANINGS

FRONT_NAME = "front.html"
"""File name of the fragment, written beside the pages (``reports/html/front.html``)."""
PAGES_DIR = "reports/html"
"""Where the report's pages are, as the report names its results (workflow/rules/report.smk)."""
FOREST = "reports/figures/gains/gains_forest_psnr.png"
"""The forest plot of the gains, as the report names it (rule ``gains``)."""
HEADING = "PCL-SR reproduction: what was reproduced, and the verdict per claim"
"""First line of the report's first screen (the browser test looks for it)."""
_CLAIM = re.compile(r"^- \*\*(?P<id>[^*]+)\*\*: (?P<status>[^.]+)\. (?P<rest>.*)$")
_TABLE = re.compile(r"\bTables? ((?:[IVX]+)(?:(?:, | and |-|–)[IVX]+)*)")
_ROMAN = {"II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7}
_NUMERAL = {n: roman for roman, n in _ROMAN.items()}


@dataclass(frozen=True)
class Claim:
    """One top-level line of reports/verdict.md: ``- **id**: status. "text" (source)``."""

    id: str
    status: str
    text: str


def parse_verdict(text: str) -> list[Claim]:
    """The claims of a verdict page, in its order (its evidence lines and cell tables are left to the page)."""
    out = []
    for line in text.splitlines():
        m = _CLAIM.match(line)
        if m:
            out.append(Claim(m["id"].strip(), m["status"].strip(), m["rest"].strip()))
    return out


def tiers_run(table2_md: str | None) -> list[str]:
    """Tiers with results, from Table II's legend line ``Tiers with results: a, b.`` (none when absent)."""
    for line in (table2_md or "").splitlines():
        if line.startswith("Tiers with results:"):
            names = line.split(":", 1)[1].split(".", 1)[0]
            tiers = [t.strip().strip("`") for t in names.split(",")]  # the legend writes them as `code`
            return [t for t in tiers if t and t != "none"]
    return []


def _tables_of(claim: Claim) -> list[int]:
    """Paper tables a claim names in its source (``Table II``, ``Tables IV and VII``)."""
    numbers: list[int] = []
    for m in _TABLE.finditer(claim.text):
        for roman in re.findall(r"[IVX]+", m.group(1)):
            if roman in _ROMAN and _ROMAN[roman] not in numbers:
                numbers.append(_ROMAN[roman])
    return numbers


def _text(value: str) -> str:
    """Element text, escaped (quotes need no escaping outside attributes)."""
    return html.escape(value, quote=False)


def _short(meaning: str) -> str:
    """A tier's meaning up to its first aside (``(``, ``;`` or ``,``): one line per tier on the first screen."""
    return re.split(r" \(|;|, ", meaning, maxsplit=1)[0]


def _result_link(path: str, text: str) -> str:
    return f'<a href="javascript:app.showResultInfo(\'{html.escape(path)}\')">{_text(text)}</a>'


def _category_link(category: str) -> str:
    return f'<a href="javascript:app.showCategory(\'{category}\')">{category}</a>'


#: Inline styles that keep the first screen compact: Snakemake centres the description in a box of
#: the window's height, so every line saved keeps the heading on screen in smaller windows too.
_BOX = "font-size:13px;line-height:1.3"
_HEADING_STYLE = "font-size:18px;line-height:1.25;margin:0 0 6px 0"
_P = "margin:0 0 6px 0"
_TABLE_STYLE = "font-size:12px;line-height:1.2;border-collapse:collapse;margin:0 0 6px 0"
_CELL = "padding:2px 6px;vertical-align:top"


def front_fragment(verdict_md: str, *, table2_md: str | None = None, pages: set[str] = frozenset()) -> str:
    """HTML for the report's first screen; ``pages`` are the page stems written (links only to those).

    Kept to one screen on purpose: Snakemake centres the description vertically in a box that
    scrolls, so a description taller than the window loses its top -- the claim texts go into each
    row's tooltip and the verdict page, not here.
    """
    claims = parse_verdict(verdict_md)
    tiers = tiers_run(table2_md)
    # a monospace span, not <code>: the report's stylesheet wraps <code> in literal backticks
    ran = "; ".join(f'<span style="font-family:monospace">{_text(t)}</span> {_text(_short(TIER_MEANINGS.get(t, "")))}'
                    for t in tiers)
    out = [f'<div style="{_BOX}">', f'<h2 style="{_HEADING_STYLE}">{HEADING}</h2>',
           f'<p style="{_P}">Reproduced: the paper\'s Tables II-VII from per-image result rows (each printed line '
           "followed by ours), the gains of +PCL with paired bootstrap intervals, and a verdict on each claim of "
           "config/claims.yaml computed from those rows.</p>",
           f'<p style="{_P}">Tiers with results: {ran}.</p>' if tiers else f'<p style="{_P}">No tier has results yet.</p>']
    rows = []
    for claim in claims:
        links = [_result_link(f"{PAGES_DIR}/verdict.html", "cells")] if "verdict" in pages else []
        links += [_result_link(f"{PAGES_DIR}/table{n}.html", f"Table {_NUMERAL[n]}") for n in _tables_of(claim) if f"table{n}" in pages]
        if "gains" in pages:
            links.append(_result_link(FOREST, "forest plot"))
        rows.append(f'<tr title="{html.escape(claim.text)}"><td style="{_CELL}"><strong>{_text(claim.id)}</strong></td>'
                    f'<td style="{_CELL}"><em>{_text(claim.status)}</em></td><td style="{_CELL}">{" · ".join(links)}</td></tr>')
    if rows:
        out.append(f'<table style="{_TABLE_STYLE}"><tr><th style="{_CELL}">claim</th><th style="{_CELL}">verdict</th>'
                   f'<th style="{_CELL}">behind it</th></tr>' + "".join(rows) + "</table>")
    else:
        out.append(f'<p style="{_P}">reports/verdict.md holds no claim line.</p>')
    out.append(f'<p style="{_P}">Claim texts and evidence: the verdict page. All outputs: {_category_link("Findings")} '
               f"(verdict, gains, check, audit), {_category_link('Tables')}, {_category_link('Figures')}.</p>")
    out.append("</div>")
    return "\n".join(out) + "\n"


def write_front(verdict: Path, out_dir: Path, *, table2: Path | None, pages: set[str]) -> Path:
    """``<out_dir>/front.html`` from the verdict page (and Table II's legend for the tiers run)."""
    from pcl.atomic import atomic_write_text

    table2_md = Path(table2).read_text() if table2 is not None and Path(table2).is_file() else None
    fragment = front_fragment(Path(verdict).read_text(), table2_md=table2_md, pages=pages)
    return atomic_write_text(Path(out_dir) / FRONT_NAME, fragment)
