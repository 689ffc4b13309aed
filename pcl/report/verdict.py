"""``reports/verdict.md``: one line per claim of ``config/claims.yaml``, its status and its evidence.

Why generated: a verdict typed by hand goes stale the moment a tier runs.  Every status here is
computed from the gains (``pcl.report.gains``), the result rows, their sidecars and the paper's own
printed tables, so the same command gives "not testable here" before the GPU tiers have run and a
real answer after.  The cell and claim rules are in ``pcl.report.verdict_rules``; one evaluator per
kind of claim is in ``pcl.report.verdict_claims``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pcl.errors import PCLError
from pcl.report.verdict_claims import (Verdict, attribution_released, attribution_trained, gains_positive, mean_gain,
                                       ordering)
from pcl.report.verdict_paper import PaperTables
from pcl.report.verdict_rules import QUANTIFIERS, STATUSES, cell_status, min_effects
from pcl.yamlio import read_yaml

__all__ = ["STATUSES", "KINDS", "Verdict", "load_claims", "build_verdicts", "render"]

#: Kinds of claim and the keys each needs besides id, kind, text and source.
REQUIRED: dict[str, tuple[str, ...]] = {
    "gains_positive": ("comparison", "trained_comparisons", "backbones", "datasets", "metrics"),
    "mean_gain": ("comparison", "backbone", "datasets", "printed"),
    "attribution_released": (),
    "attribution_trained": ("min_term_share",),
    "ordering": ("table", "best", "others", "datasets", "metric"),
}
KINDS = tuple(REQUIRED)


def load_claims(path: Path) -> list[dict]:
    """Validated claims (id, kind, text, source and the keys of each kind), each with the file's ``min_effect``."""
    data = read_yaml(Path(path), what="claims catalog", missing_hint="restore config/claims.yaml from the repository")
    claims = data.get("claims") if isinstance(data, dict) else None
    if data.get("version") != 1 or not isinstance(claims, list) or not claims:
        raise PCLError(f"{path}: expected 'version: 1' and a non-empty list 'claims'")
    effects = min_effects(data, path)
    seen = set()
    for i, c in enumerate(claims):
        where = f"{path}: claims[{i}]"
        if not isinstance(c, dict) or not all(isinstance(c.get(k), str) for k in ("id", "kind", "text", "source")):
            raise PCLError(f"{where}: every claim needs string keys id, kind, text and source")
        if c["kind"] not in KINDS:
            raise PCLError(f"{where} ({c['id']}): kind {c['kind']!r} is not one of {', '.join(KINDS)}")
        lacking = [k for k in REQUIRED[c["kind"]] if k not in c]
        if lacking:
            raise PCLError(f"{where} ({c['id']}): a {c['kind']} claim needs {', '.join(lacking)}; add them")
        if c.get("quantifier", "all") not in QUANTIFIERS:
            raise PCLError(f"{where} ({c['id']}): quantifier {c['quantifier']!r} is not one of {', '.join(QUANTIFIERS)}")
        if c["id"] in seen:
            raise PCLError(f"{where}: id {c['id']!r} appears twice")
        seen.add(c["id"])
        c["min_effect"] = effects
    return claims


def build_verdicts(claims: list[dict], results: pd.DataFrame, gains: pd.DataFrame, *, paper_table2: pd.DataFrame | None = None,
                   cells=None, results_dir: Path | None = None, paper_dir: Path | None = None) -> list[Verdict]:
    """Evaluate every claim against the data (``paper_dir``: the printed tables, default the shipped copies)."""
    from pcl.resources import resource_path

    tables = PaperTables(paper_dir if paper_dir is not None else resource_path("reference", "paper"), paper_table2)
    gains = _with_optional_columns(gains)
    out = []
    for claim in claims:
        kind = claim["kind"]
        if kind == "gains_positive":
            out.append(gains_positive(claim, gains, tables))
        elif kind == "mean_gain":
            out.append(mean_gain(claim, results))
        elif kind == "attribution_released":
            out.append(attribution_released(claim, results_dir))
        elif kind == "attribution_trained":
            out.append(attribution_trained(claim, gains, results_dir))
        else:
            out.append(ordering(claim, results, cells, tables))
    return out


def _with_optional_columns(gains: pd.DataFrame) -> pd.DataFrame:
    """A gains frame written before the MDE column existed still serves (its MDE is unknown)."""
    return gains if "mde" in gains.columns else gains.assign(mde=float("nan"))


def _sensitivity(gains: pd.DataFrame, effects: dict[str, float]) -> list[str]:
    """Where the protocol changes a cell's status (tiers evaluated under both protocols)."""
    lines = []
    gains = _with_optional_columns(gains)
    for key, part in gains.groupby(["tier", "comparison", "dataset", "metric"]):
        if part["protocol"].nunique() < 2:
            continue
        st = {r["protocol"]: cell_status(r["mean_gain"], r["ci_low"], r["ci_high"], min_effect=effects.get(key[3], 0.0),
                                         mde=float(r["mde"])) for r in part.to_dict("records")}
        if len(set(st.values())) > 1:
            lines.append(f"- {key[0]} `{key[1]}` {key[2]} {key[3].upper()}: " + ", ".join(f"{p}: {s}" for p, s in st.items()))
    return lines


def render(verdicts: list[Verdict], gains: pd.DataFrame, claims_path: str, *, study: list[str] | None = None) -> str:
    """The verdict page; ``study`` (``pcl.report.study_write.verdict_section``) goes under its own
    heading right after the paper's claims."""
    out = ["# Verdict on the paper's claims", "",
           f"Generated from the result rows by `pcl verdict` (claims: `{claims_path}`; gains: reports/tables/gains.md). "
           f"Status per claim: {' / '.join(STATUSES)} (rules in the claims file and `pcl.report.verdict_rules`). "
           "A cell is decided on its paired bootstrap 95% interval and the minimum effect of the claims file; its "
           "minimum detectable effect (MDE, 80% power) says whether its images could resolve the gain in question. "
           "Wilcoxon and Holm p-values stay in gains.md as evidence: with 5 images no exact Wilcoxon p is below 0.0625. "
           "Where the paper's own printed table contradicts a claim, that decides; otherwise the first line of our "
           "evidence does (our evaluation of the released weights, then the authors' logs, then our trainings, "
           "+PCL vs baseline before +PCL vs control).", ""]
    for v in verdicts:
        said = f"\"{v.claim['text']}\"" if v.claim.get("wording", "quote") == "quote" else f"(paraphrase) {v.claim['text']}"
        out.append(f"- **{v.claim['id']}**: {v.status}. {said} ({v.claim['source']})")
        out += [f"  - {line}" for line in v.evidence]
    if study:
        out += ["", *study]
    out += ["", "## Protocol and printed-table sensitivity", ""]
    effects = verdicts[0].claim.get("min_effect", {}) if verdicts else {}
    sens = _sensitivity(gains, effects)
    out += sens or ["- No cell changes status between the `matlab` and `authors` protocols where both were evaluated "
                    "(the authors' logs exist under `authors` only)."]
    out += ["- The `printed gain` column below is the paper's table (+PCL row minus plain row, sign flipped for "
            "LPIPS/NIQE); it is the gain in question of the cell's MDE test. Where it differs from the log gain by more "
            "than the rounding, the printed table and the logs disagree (reports/tables/audit_released_logs.md).", ""]
    for v in verdicts:
        if v.cells:
            out += [f"## Cells of `{v.claim['id']}`", "",
                    "| source | comparison | data set | metric | gain [95% CI] | MDE | improved | printed gain | status |",
                    "|---|---|---|---|---:|---:|---:|---:|---|", *v.cells, ""]
    return "\n".join(out) + "\n"
