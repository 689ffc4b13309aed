"""The contrastive term's measured share of the L1 gradient, beside the +PCL lines of a table.

Why a table shows it: whether a +PCL line can differ from its L1-only counterpart at all depends
on how much of the gradient the contrastive term was.  Each trained run measures
||grad alpha*L_CL|| / ||grad L1|| on the SR network's parameters and keeps the median over its
logged iterations; evaluation copies it into every result file's sidecar as
``training.term_grad_share`` (``pcl.evaluate``).  A table that sets ``TableSpec.term_share``
prints that number for each of its +PCL lines, read here from the sidecars of the line's own
result files, so the share and the PSNR beside it describe the same runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from statistics import median

from pcl.errors import PCLError
from pcl.report.lines import Line
from pcl.report.results import REDO, sidecar_field

SHARE_KEYS: tuple[str, str] = ("training", "term_grad_share")
"""Where a result sidecar keeps the run's median share (``pcl.evaluate._training_diagnostics``)."""
RUN_KEYS: tuple[str, str] = ("training", "result_json")
"""The run a sidecar's training block was copied from: several files of one run count once."""
NOT_RECORDED = "not recorded"
"""What a +PCL line reads when none of its sidecars carries the share (the authors' logs and
released weights were never measured; a run evaluated before the measurement existed)."""


def is_contrastive(method: str) -> bool:
    """Whether a result's method trains with the contrastive term (``pcl``, ``pcl-released``,
    ``pcl-fixed``...): those are the lines whose share means something."""
    return method == "pcl" or method.startswith("pcl-")


def _share_of(path: Path) -> float | None:
    """The share one sidecar records (None when it has none); a value that is not a finite,
    non-negative number is a damaged sidecar and stops the table with one line naming it."""
    value = sidecar_field(path, *SHARE_KEYS)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise PCLError(f"sidecar {Path(path).with_suffix('.json')}: {'.'.join(SHARE_KEYS)} holds {value!r}, not a "
                       f"finite non-negative number (a ratio of gradient norms); {REDO}")
    return float(value)


def recorded_shares(paths: Iterable[Path]) -> tuple[float, ...]:
    """The shares recorded beside result files ``paths``, one per run, smallest first.

    Why one per run: the sets of one run (Set5, Set14, ...) carry copies of the same value, so
    counting every file would weigh a run by how many sets it was evaluated on; runs are told
    apart by the ``result.json`` their sidecar names, a file without one counts on its own.
    """
    runs: dict[str, set[float]] = {}
    for path in sorted({Path(p) for p in paths}):
        share = _share_of(path)
        if share is None:
            continue
        run = sidecar_field(path, *RUN_KEYS)
        runs.setdefault(run if isinstance(run, str) and run else str(path), set()).add(share)
    return tuple(sorted(v for values in runs.values() for v in values))


def format_percent(share: float) -> str:
    """A share as a percentage with at least two significant digits (``0.0041`` -> ``0.41 %``,
    ``3.2e-05`` -> ``0.0032 %``, ``0`` -> ``0 %``): a tiny share must not print as zero."""
    percent = 100.0 * share
    if percent == 0:
        return "0 %"
    decimals = min(8, max(2, 1 - math.floor(math.log10(abs(percent)))))
    return f"{percent:.{decimals}f} %"


def share_text(shares: tuple[float, ...]) -> str:
    """``not recorded``, one value, or the median and range of several runs that disagree."""
    if not shares:
        return NOT_RECORDED
    if min(shares) == max(shares):
        runs = f" ({len(shares)} runs)" if len(shares) > 1 else ""
        return format_percent(shares[0]) + runs
    return (f"median {format_percent(median(shares))} (range {format_percent(min(shares))} to "
            f"{format_percent(max(shares))} over {len(shares)} runs)")


def share_lines(lines: Iterable[Line]) -> list[Line]:
    """The lines that carry a share (``Line.term_shares`` set), each (tier, experiment, protocol) once."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for line in lines:
        key = (line.source, line.experiment, line.protocol)
        if line.term_shares is None or key in seen:
            continue
        seen.add(key)
        out.append(line)
    return out


def share_legend(lines: Iterable[Line], *, markdown: bool = True) -> str:
    """The legend sentence naming each +PCL line's measured share ("" when the table has none).

    ``markdown=False`` gives the plain text of a LaTeX comment (no backticks).
    """
    shown = share_lines(lines)
    if not shown:
        return ""
    parts = [f"`{line.source} / {line.experiment} / {line.protocol}` {share_text(line.term_shares or ())}"
             for line in shown]
    text = ("Measured share of the L1 gradient taken by the contrastive term (||grad alpha*L_CL|| / ||grad L1|| on "
            "the SR network's parameters, median over the run's logged iterations, from `training.term_grad_share` "
            "of the result sidecars, column `term_grad_share` of the CSV; 0 for released semantics, whose term gives "
            f"no gradient; {NOT_RECORDED} where no sidecar of the line carries it, as for the authors' logs and "
            "released weights): " + "; ".join(parts) + ".")
    return text if markdown else text.replace("`", "")
