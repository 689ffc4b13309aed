"""The Markdown the harness writes (tables, gains, verdict, status pages, check) as stand-alone HTML.

Why: Snakemake's HTML report shows HTML pages, images and CSV files, not Markdown.  The harness's
Markdown uses a small subset (headings, paragraphs, pipe tables, bullet lists, footnotes, inline
code, bold, links), so a converter for exactly that subset keeps the report dependency-free.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from pcl.atomic import atomic_write_text
from pcl.report.front import write_front

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 12px; }
th, td { border: 1px solid #bbb; padding: 2px 6px; }
th { background: #eef; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.paper td { background: #f6f6f6; font-weight: 600; }
code { background: #f2f2f2; padding: 0 2px; } pre { background: #f6f6f6; padding: 0.6em; }
"""


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"\[\^(\d+)\]", r"<sup>\1</sup>", out)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    head, align, body = _cells(lines[0]), _cells(lines[1]), [_cells(line) for line in lines[2:]]
    numeric = [a.endswith(":") for a in align]
    out = ["<table>", "<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head) + "</tr>"]
    for row in body:
        cls = ' class="paper"' if row and row[0].startswith("**") else ""
        tds = "".join(f'<td{" class=num" if i < len(numeric) and numeric[i] else ""}>{_inline(c)}</td>' for i, c in enumerate(row))
        out.append(f"<tr{cls}>{tds}</tr>")
    return "\n".join(out + ["</table>"])


def markdown_to_html(text: str, *, title: str) -> str:
    """A complete HTML page for the harness's Markdown subset."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append("<pre>" + html.escape("\n".join(lines[i + 1 : j])) + "</pre>")
            i = j + 1
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|?$", lines[i + 1]):
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
        elif m := re.match(r"^(#{1,4}) (.*)", line):
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif re.match(r"^\s*- ", line):
            items = []
            while i < len(lines) and re.match(r"^\s*- ", lines[i]):
                depth = (len(lines[i]) - len(lines[i].lstrip())) // 2
                items.append(f'<li style="margin-left:{1.5 * depth}em">{_inline(lines[i].strip()[2:])}</li>')
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        elif line.strip():
            para = [line]
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("|", "#", "- ", "```")):
                para.append(lines[i])
                i += 1
            out.append("<p>" + _inline(" ".join(para)) + "</p>")
        else:
            i += 1
    body = "\n".join(out)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def write_html_pages(sources: list[Path], out_dir: Path) -> list[Path]:
    """``<out_dir>/<stem>.html`` for every Markdown (or plain-text) source; plain text goes in <pre>.

    When the verdict (``verdict.md``) is among them, also the report's first screen
    (``<out_dir>/front.html``, ``pcl.report.front``): written in the same step as the pages it links
    to, so it never names a page this run did not write.
    """
    written = []
    for src in sources:
        src = Path(src)
        text = src.read_text()
        if src.suffix == ".md":
            title = next((l[2:] for l in text.splitlines() if l.startswith("# ")), src.stem)
            page = markdown_to_html(text, title=title)
        else:
            page = markdown_to_html(f"# {src.name}\n\n```\n{text}\n```", title=src.name)
        written.append(atomic_write_text(Path(out_dir) / f"{src.stem}.html", page))
    by_stem = {Path(s).stem: Path(s) for s in sources}
    if "verdict" in by_stem and by_stem["verdict"].suffix == ".md":
        written.append(write_front(by_stem["verdict"], Path(out_dir), table2=by_stem.get("table2"), pages=set(by_stem)))
    return written
