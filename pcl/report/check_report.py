"""What ``pcl check`` found: one item per checked cell or file, and the pass/fail report.

Why items, not a boolean: a failing check must say which tier, table row, set and metric missed,
by how much and under which tolerance, so the report is read as a table; ``exit_code`` is what CI
reads (1 on any miss or stale expected deviation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pcl.report.check_config import Deviation

OK, MISS, EXPECTED, STALE = "ok", "miss", "expected", "stale"
"""Item statuses: within tolerance; outside it (fails); outside but documented in
expected_deviations.yaml; documented but now within tolerance (fails: the entry is stale)."""

SLACK = 1e-9
"""Float slack on numeric tolerances: 28.43 - 28.42 is 0.00999999999999801 in binary."""


@dataclass(frozen=True)
class CheckItem:
    """One checked cell (or, for checks ``placed`` and ``sidecar``, one result file)."""

    tier: str
    check: str
    subject: str
    row: str
    dataset: str
    metric: str
    ours: float | None
    reference: str
    tolerance: str
    status: str
    detail: str = ""

    @property
    def difference(self) -> float | None:
        try:
            return None if self.ours is None else self.ours - float(self.reference)
        except ValueError:
            return None


@dataclass
class CheckReport:
    """All checked cells and notes; ``render`` for people, ``exit_code`` for CI."""

    items: list[CheckItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def misses(self) -> list[CheckItem]:
        return [i for i in self.items if i.status in (MISS, STALE)]

    @property
    def expected(self) -> list[CheckItem]:
        return [i for i in self.items if i.status == EXPECTED]

    @property
    def exit_code(self) -> int:
        return 1 if self.misses else 0

    def render(self) -> str:
        ok = sum(i.status == OK for i in self.items)
        lines = [
            f"pcl check: {len(self.items)} checks, {ok} ok, {len(self.expected)} expected deviations, "
            f"{len(self.misses)} misses -> {'FAIL' if self.exit_code else 'PASS'}",
        ]
        tiers = list(dict.fromkeys(i.tier for i in self.items))
        for tier in tiers:
            sub = [i for i in self.items if i.tier == tier]
            counts = {s: sum(i.status == s for i in sub) for s in (OK, EXPECTED, MISS, STALE)}
            lines.append(f"  tier {tier}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        if self.notes:
            lines += ["", "Notes:"] + [f"- {n}" for n in self.notes]
        head = "| tier | check | subject | row | dataset | metric | ours | reference | diff | tolerance | detail |"
        rule = "|---|---|---|---|---|---|---:|---:|---:|---|---|"
        if self.misses:
            lines += ["", "Misses:", head, rule] + [_item_row(i) for i in self.misses]
        if self.expected:
            lines += ["", "Expected deviations that occurred (config/expected_deviations.yaml):", head, rule]
            lines += [_item_row(i) for i in self.expected]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.6f}".rstrip("0").rstrip(".") if abs(value) >= 1e-6 or value == 0 else f"{value:.1e}"


def _item_row(i: CheckItem) -> str:
    diff = i.difference
    cells = [i.tier, i.check, i.subject, i.row, i.dataset, i.metric, _fmt(i.ours), i.reference, "" if diff is None else f"{diff:+.6f}", i.tolerance, i.detail]
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"


class Ledger:
    """Resolves out-of-tolerance cells against the expected deviations and finds stale ones."""

    def __init__(self, deviations: list[Deviation]):
        self.by_key = {d.key: d for d in deviations}
        self.occurred: set = set()
        self.within: set = set()

    def judge(self, key: tuple, within: bool) -> tuple[str, str]:
        dev = self.by_key.get(key)
        if within:
            if dev is not None:
                self.within.add(key)
                return STALE, f"listed as expected deviation but now within tolerance; remove it ({dev.reason})"
            return OK, ""
        if dev is not None:
            self.occurred.add(key)
            return EXPECTED, dev.reason
        return MISS, "outside tolerance and not listed in expected_deviations.yaml"
