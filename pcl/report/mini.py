"""``reports/tables/mini.{md,csv,tex}``: the `mini` tier's own table (never compared with the paper).

Why its own table: the mini tier trains a small EDSR-S on CPU, so its absolute numbers mean nothing
next to the paper's; what it shows is relative: does the baseline learn (against bicubic), and does
+PCL differ from its L1-only control and from the baseline it was fine-tuned from.  One line per
method and protocol, one column per (data set, metric), then the deltas +PCL - control and
+PCL - baseline.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pcl.names import DATASETS
from pcl.atomic import atomic_write_text
from pcl.report.render import NOT_COMPUTED, NOT_EVALUATED
from pcl.report.results import SOURCE_COLUMN, display_path

ROLES: tuple[tuple[str, str], ...] = (
    ("bicubic", "Bicubic"), ("baseline", "baseline (from scratch)"), ("pcl", "+PCL (paper semantics)"),
    ("control", "control (L1 only)"), ("pcl-released", "as-released (term without gradient)"),
)
METRIC_DIGITS: dict[str, int] = {"psnr": 3, "ssim": 4, "lpips": 4, "niqe": 3, "niqe_y": 3}
DATASET_ORDER = DATASETS


def _role(experiment: str, backbone: str) -> str | None:
    if experiment == "bicubic":
        return "bicubic"
    for role, _ in ROLES[1:]:
        if experiment == f"{backbone}-{role}":
            return role
    return None


def tier_summary(results: pd.DataFrame, tier: str = "mini") -> pd.DataFrame:
    """Long table: backbone, protocol, role, dataset, metric, value, n_images, source file."""
    rows = results[results["tier"] == tier]
    if rows.empty:
        return pd.DataFrame(columns=["backbone", "protocol", "role", "experiment", "dataset", "metric", "value", "seed_sd",
                                     "n_seeds", "n_images", "source"])
    bicubic = results[(results["tier"] == "bicubic") & results["dataset"].isin(set(rows["dataset"]))]
    metrics = [m for m in METRIC_DIGITS if m in results.columns]
    records = []
    for backbone in sorted(set(rows["backbone"])):
        part = pd.concat([rows[rows["backbone"] == backbone], bicubic], ignore_index=True)
        for (experiment, protocol, dataset), sub in part.groupby(["experiment", "protocol", "dataset"], sort=False):
            role = _role(experiment, backbone)
            if role is None:
                continue
            tier_of = sub["tier"].iloc[0]
            seeds = sub["seed"].astype("string").fillna("") if "seed" in sub.columns else pd.Series("", index=sub.index)
            for metric in metrics:
                if sub[metric].isna().all():
                    continue
                per_seed = sub[metric].groupby(seeds).agg(lambda v: v.mean(skipna=False))
                records.append({"backbone": backbone, "protocol": protocol, "role": role, "experiment": experiment,
                                "dataset": dataset, "metric": metric, "value": float(per_seed.mean(skipna=False)),
                                "seed_sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else math.nan,
                                "n_seeds": len(per_seed), "n_images": int(seeds.value_counts().min()),
                                "source": _sources(sub, f"results/{tier_of}/{experiment}/{protocol}/{dataset}.csv")})
    return pd.DataFrame.from_records(records)


def _sources(rows: pd.DataFrame, canonical: str) -> str:
    """The files the rows came from (``;``-separated: one per seed), else the canonical path."""
    if SOURCE_COLUMN not in rows.columns:
        return canonical
    return ";".join(sorted({display_path(Path(p)) for p in rows[SOURCE_COLUMN].dropna()})) or canonical


def _fmt(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    d = METRIC_DIGITS[metric]
    return f"{value:+.{d}f}" if signed else f"{value:.{d}f}"


def _with_spread(value: float | None, sd: float | None, metric: str) -> str:
    """``mean`` or, over several seeds, ``mean ± sd`` (sample standard deviation of the seed means)."""
    text = _fmt(value, metric)
    return text if sd is None else f"{text} ± {_fmt(sd, metric)}"


def _share_line(diagnostics: dict[str, dict]) -> list[str]:
    """The measured weight of the contrastive term in each +PCL run: what a +PCL - control line can show."""
    parts = []
    for experiment, d in sorted(diagnostics.items()):
        share = d.get("grad_share_median")
        if not isinstance(share, (int, float)):
            continue
        text = f"`{experiment}` {share:.2%} of the L1 gradient"
        cosine = d.get("grad_cosine_median")
        if isinstance(cosine, (int, float)):
            text += f" (cosine {cosine:+.2f})"
        loss, chance = d.get("embedding_loss_median"), d.get("embedding_chance")
        if isinstance(loss, (int, float)) and isinstance(chance, (int, float)):
            text += f", embedding loss {loss:.2f} against a chance level of {chance:.2f}"
        parts.append(text)
    if not parts:
        return []
    return ["Measured weight of the contrastive term (median over each run's logged iterations, from its "
            "result.json; 0 for released semantics, whose term has no gradient): " + "; ".join(parts) + ".", ""]


def to_markdown(summary: pd.DataFrame, *, tier: str = "mini", speeds: dict[str, float] | None = None,
                diagnostics: dict[str, dict] | None = None) -> str:
    out = [f"# The `{tier}` tier: a CPU miniature of the paper's fine-tuning protocol", "",
           "Never compared with the paper: a small EDSR-S trained on 80 stand-in photos. `+PCL - control` isolates the "
           "contrastive term (same start, schedule and iterations, L1 only); `+PCL - baseline` is what the paper's "
           "Table II compares. Over several training seeds a cell reads `mean ± sd` of the seed means. "
           f"NIQE/LPIPS: lower is better. `{NOT_EVALUATED}`: a set the method was not evaluated on (on a difference "
           f"line: one side missing); `{NOT_COMPUTED}`: a metric not computed on a set that was evaluated. "
           f"Per-image files: the `source` column of reports/tables/{tier}.csv.", ""]
    if summary.empty:
        return "\n".join(out + [f"No `{tier}` results yet."]) + "\n"
    for (backbone, protocol), part in summary.groupby(["backbone", "protocol"], sort=True):
        cols = [(d, m) for d in DATASET_ORDER for m in METRIC_DIGITS if ((part["dataset"] == d) & (part["metric"] == m)).any()]
        value = {(r["role"], r["dataset"], r["metric"]): r["value"] for r in part.to_dict("records")}
        spread = {(r["role"], r["dataset"], r["metric"]): r["seed_sd"] for r in part.to_dict("records")
                  if r["n_seeds"] > 1}
        evaluated = {(r["role"], r["dataset"]) for r in part.to_dict("records")}
        out += [f"## {backbone} / {protocol}", "",
                "| method | " + " | ".join(f"{d} {m.upper().replace('_', '-')}" for d, m in cols) + " |",
                "|---|" + "---:|" * len(cols)]
        for role, label in ROLES:
            if any((role, d, m) in value for d, m in cols):
                out.append(f"| {label} | " + " | ".join(
                    _with_spread(value[(role, d, m)], spread.get((role, d, m)), m) if (role, d, m) in value
                    else NOT_COMPUTED if (role, d) in evaluated else NOT_EVALUATED for d, m in cols) + " |")
        for a, b, label in (("pcl", "control", "+PCL - control"), ("pcl", "baseline", "+PCL - baseline"),
                            ("baseline", "bicubic", "baseline - bicubic")):
            diffs = [value[(a, d, m)] - value[(b, d, m)] if (a, d, m) in value and (b, d, m) in value else None for d, m in cols]
            if any(x is not None for x in diffs):
                out.append(f"| **{label}** | " + " | ".join(_fmt(x, m, signed=True) for x, (_, m) in zip(diffs, cols)) + " |")
        out.append("")
    out += _share_line(diagnostics or {})
    if speeds:
        out += ["Training speed (iterations per second, from each run's result.json): "
                + ", ".join(f"`{k}` {v:.2f}" for k, v in speeds.items()) + ".", ""]
    return "\n".join(out)


def to_latex(summary: pd.DataFrame) -> str:
    lines = ["% The mini tier (pcl.report.mini); never compared with the paper.", "\\begin{tabular}{llllr}", "\\toprule",
             "Protocol & Method & Set & Metric & Value \\\\", "\\midrule"]
    for r in summary.to_dict("records"):
        lines.append(f"{r['protocol']} & {r['role']} & {r['dataset']} & {r['metric'].upper().replace('_', '-')} & {_fmt(r['value'], r['metric'])} \\\\")
    return "\n".join(lines + ["\\bottomrule", "\\end{tabular}"]) + "\n"


def write_tier_table(results: pd.DataFrame, out_dir: Path, *, tier: str = "mini", speeds: dict[str, float] | None = None,
                     diagnostics: dict[str, dict] | None = None) -> list[Path]:
    summary = tier_summary(results, tier)
    out_dir = Path(out_dir)
    return [
        atomic_write_text(out_dir / f"{tier}.md", to_markdown(summary, tier=tier, speeds=speeds, diagnostics=diagnostics)),
        atomic_write_text(out_dir / f"{tier}.csv", summary.to_csv(index=False)),
        atomic_write_text(out_dir / f"{tier}.tex", to_latex(summary)),
    ]
