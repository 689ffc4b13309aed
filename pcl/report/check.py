"""``pcl check``: does each tier of results meet its acceptance rule, cell by cell?

Why: a reproduction claim must fail loudly when numbers drift.  Rules come per tier from
``config/tolerances.yaml``; documented differences between the paper and the data come from
``config/expected_deviations.yaml`` and are shown as "expected" instead of failing, but never by
widening a tolerance.  An expected deviation that no longer occurs is "stale" and fails too, so
the file stays honest.  Exit code: 1 on any miss or stale entry, else 0 (``CheckReport.exit_code``).
CLI entry point: ``check_files``.

Rule ``finite`` (tier ``smoke``): never compared with the paper; with the catalog's cells mapping
(``pcl.report.cells``) every experiment that feeds a paper cell must have a full set of rows for
every (protocol, dataset) the tier evaluated, and every value must be finite.

Rule ``released_models`` (tier ``released``): our evaluation of a released checkpoint is compared
with the authors' released per-image log of the same model, image by image (``compare_with_log``);
image names are matched after ``normalise_image_name`` (the logs say ``img001`` where the installed
Urban100 says ``img_001``), and images that match nothing are reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd

from pcl.errors import PCLError
from pcl.yamlio import read_yaml
from pcl.report.audit import to_decimal
from pcl.report.cells import CellsMap
from pcl.report.check_perceptual import check_table3, computed_optional_metrics, validate_table3_rule
from pcl.report.released_logs import (
    LOG_PROTOCOL,
    LOG_SCALE,
    average_differences,
    experiment_name,
    largest_average_difference,
    log_identity,
    parse_logs,
)
from pcl.report.results import (
    DATASET_SIZES,
    DATASETS,
    PROTOCOLS,
    TIERS,
    empty_results,
    read_results,
    summarise,
    table2_label,
)
from pcl.report.tables import TABLE2, PaperTable, read_paper_table
from pcl.resources import REPO_ROOT, resource_path

DEFAULT_TOLERANCES = REPO_ROOT / "config" / "tolerances.yaml"
DEFAULT_DEVIATIONS = REPO_ROOT / "config" / "expected_deviations.yaml"

RULES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "paper": {"rule": str, "table": str, "protocols": list, "psnr": (int, float), "ssim": (int, float)},
    "released_logs": {"rule": str, "table": str, "average_tolerance": (int, float), "paper_tolerance": str},
    "finite": {"rule": str},
    "released_models": {
        "rule": str,
        "psnr_per_image": (int, float),
        "ssim_per_image": (int, float),
        "nlsn_seed_spread_db": (int, float),
        "nlsn_seed_spread_ssim": (int, float),
    },
}
"""Keys each rule needs (all of them, nothing else) and their YAML types."""

TABLES: dict[str, str] = {"table2": TABLE2.paper_file}
"""Tables a rule or a deviation may name -> paper CSV file name."""
CHECK_METRICS = ("psnr", "ssim")
_SLACK = 1e-9
"""Float slack on numeric tolerances: 28.43 - 28.42 is 0.00999999999999801 in binary."""

OK, MISS, EXPECTED, STALE = "ok", "miss", "expected", "stale"


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Deviation:
    """One documented paper-vs-data difference (an entry of expected_deviations.yaml)."""

    tier: str
    table: str
    row: str
    dataset: str
    metric: str
    reason: str

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.tier, self.table, self.row, self.dataset, self.metric)


def _load_yaml(path: Path) -> dict:
    path = Path(path)
    data = read_yaml(path, what="config file", missing_hint="pass the right path or restore it from the repository")
    if not isinstance(data, dict):
        raise PCLError(f"{path}: expected a mapping with keys 'version' and a list/mapping body")
    if data.get("version") != 1:
        raise PCLError(f"{path}: key 'version' must be 1 (found {data.get('version')!r})")
    return data


def load_tolerances(path: Path) -> dict[str, dict]:
    """Validated per-tier rules from tolerances.yaml (tier -> rule mapping)."""
    data = _load_yaml(path)
    extra = set(data) - {"version", "tiers"}
    if extra:
        raise PCLError(f"{path}: unknown top-level key {sorted(extra)[0]!r}; allowed: version, tiers")
    tiers = data.get("tiers")
    if not isinstance(tiers, dict) or not tiers:
        raise PCLError(f"{path}: key 'tiers' must map tier names to rules")
    for tier, rule in tiers.items():
        where = f"{path}: tiers.{tier}"
        if tier not in TIERS:
            raise PCLError(f"{where}: unknown tier; known tiers: {', '.join(TIERS)}")
        if not isinstance(rule, dict) or rule.get("rule") not in RULES:
            raise PCLError(f"{where}.rule must be one of {', '.join(RULES)}")
        needed = RULES[rule["rule"]]
        if "table3" in rule:
            rule["table3"] = validate_table3_rule(where, rule["table3"])
        for key in rule:
            if key not in needed and key != "table3":
                raise PCLError(f"{where}.{key}: not a key of rule {rule['rule']!r}; allowed: {', '.join(needed)}")
        for key, kind in needed.items():
            if key not in rule:
                raise PCLError(f"{where}.{key}: missing (rule {rule['rule']!r} needs {', '.join(needed)})")
            value = rule[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise PCLError(f"{where}.{key}: {value!r} has the wrong type")
            if kind == (int, float) and not (math.isfinite(value) and value >= 0):
                raise PCLError(f"{where}.{key}: {value!r} must be a finite number >= 0")
        if "table" in rule and rule["table"] not in TABLES:
            raise PCLError(f"{where}.table: {rule['table']!r} is not a known table ({', '.join(TABLES)})")
        if "protocols" in rule:
            bad = [p for p in rule["protocols"] if p not in PROTOCOLS]
            if bad or not rule["protocols"]:
                raise PCLError(f"{where}.protocols: must be a non-empty list of {', '.join(PROTOCOLS)}")
        if rule.get("paper_tolerance", "half_unit") != "half_unit":
            raise PCLError(f"{where}.paper_tolerance: only 'half_unit' (half a unit of the last printed digit) is supported")
    return tiers


def load_deviations(path: Path, paper_dir: Path) -> list[Deviation]:
    """Validated expected deviations; rows must exist in the named paper table."""
    data = _load_yaml(path)
    extra = set(data) - {"version", "deviations"}
    if extra:
        raise PCLError(f"{path}: unknown top-level key {sorted(extra)[0]!r}; allowed: version, deviations")
    entries = data.get("deviations") or []
    if not isinstance(entries, list):
        raise PCLError(f"{path}: key 'deviations' must be a list of entries")
    required = ("table", "row", "dataset", "metric", "reason")
    papers: dict[str, PaperTable] = {}
    out: list[Deviation] = []
    seen: set = set()
    for i, entry in enumerate(entries):
        where = f"{path}: deviations[{i}]"
        if not isinstance(entry, dict):
            raise PCLError(f"{where}: must be a mapping with keys {', '.join(required)} (and optional tier)")
        for key in entry:
            if key not in (*required, "tier"):
                raise PCLError(f"{where}.{key}: unknown key; allowed: tier, {', '.join(required)}")
        for key in required:
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise PCLError(f"{where}.{key}: missing or empty")
        dev = Deviation(str(entry.get("tier", "reported")), entry["table"], entry["row"], entry["dataset"], entry["metric"], entry["reason"].strip())
        if dev.tier not in TIERS:
            raise PCLError(f"{where}.tier: {dev.tier!r} is not one of {', '.join(TIERS)}")
        if dev.table not in TABLES:
            raise PCLError(f"{where}.table: {dev.table!r} is not a known table ({', '.join(TABLES)})")
        if dev.dataset not in DATASETS:
            raise PCLError(f"{where}.dataset: {dev.dataset!r} is not one of {', '.join(DATASETS)}")
        if dev.metric not in CHECK_METRICS:
            raise PCLError(f"{where}.metric: {dev.metric!r} is not one of {', '.join(CHECK_METRICS)}")
        paper = papers.setdefault(dev.table, read_paper_table(Path(paper_dir) / TABLES[dev.table]))
        if dev.row not in paper.labels:
            raise PCLError(f"{where}.row: {dev.row!r} is not a row of {dev.table} ({', '.join(paper.labels)})")
        if dev.key in seen:
            raise PCLError(f"{where}: duplicate entry for {dev.row} {dev.dataset} {dev.metric}; keep one")
        seen.add(dev.key)
        out.append(dev)
    return out


# --- report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckItem:
    """One checked cell."""

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


# --- rules ------------------------------------------------------------------------------------


class _Ledger:
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


def _check_paper_rule(tier: str, rule: dict, rows: pd.DataFrame, paper: PaperTable, ledger: _Ledger, report: CheckReport) -> None:
    scale = TABLE2.scale
    summary = summarise(rows[rows["scale"] == scale])
    other_scales = sorted(int(x) for x in set(rows["scale"].dropna()) - {scale})
    if other_scales:
        report.notes.append(f"tier {tier}: rows at scale {other_scales} not compared ({rule['table']} is x{scale})")
    for rec in summary.to_dict("records"):
        label = table2_label(rec["backbone"], rec["method"], rec["experiment"])
        if label is None or label not in paper.labels:
            report.notes.append(f"tier {tier}: experiment {rec['experiment']} has no row in {rule['table']}; not compared")
            continue
        if rec["protocol"] not in rule["protocols"]:
            report.notes.append(
                f"tier {tier}: {rec['experiment']} {rec['dataset']} protocol {rec['protocol']} not compared "
                f"(the paper row uses {', '.join(rule['protocols'])})"
            )
            continue
        for metric in CHECK_METRICS:
            printed = paper.printed(label, rec["dataset"], metric)
            if not printed:
                continue
            ours = float(rec[metric])
            tol = float(rule[metric])
            n, full = int(rec["n_images"]), DATASET_SIZES[rec["dataset"]]
            base = dict(tier=tier, check="paper", subject=rec["experiment"], row=label, dataset=rec["dataset"], metric=metric,
                        ours=ours, reference=printed, tolerance=f"±{tol:g}")
            if n != full:
                report.items.append(CheckItem(**base, status=MISS, detail=f"partial set: {n}/{full} images"))
                continue
            if not math.isfinite(ours):
                report.items.append(CheckItem(**base, status=MISS, detail="mean is not finite"))
                continue
            status, detail = ledger.judge((tier, rule["table"], label, rec["dataset"], metric), abs(ours - float(printed)) <= tol + _SLACK)
            report.items.append(CheckItem(**base, status=status, detail=detail))


def _check_released_logs(tier: str, rule: dict, rows: pd.DataFrame, paper: PaperTable, logs_dir: Path, ledger: _Ledger, report: CheckReport) -> None:
    logs = parse_logs(logs_dir)
    tol = float(rule["average_tolerance"])
    worst = max((largest_average_difference(p) for p in logs.values()), key=lambda m: abs(m.difference))
    report.notes.append(
        f"tier {tier}: largest |per-image mean - Average line| over {len(logs)} logs = {abs(worst.difference):.1e} "
        f"({worst.log} {worst.dataset} {worst.metric}); tolerance {tol:g}"
    )
    for name, parsed in logs.items():
        backbone, method = log_identity(name)
        label = table2_label(backbone, method)
        # (a) stated averages equal the per-image means
        for m in average_differences(parsed):
            within = abs(m.difference) <= tol
            report.items.append(
                CheckItem(tier, "average-line", name, label, m.dataset, m.metric, m.recomputed, f"{m.stated:.6f}", f"±{tol:g}",
                          OK if within else MISS, "" if within else f"line {m.line}: Average differs from the per-image mean")
            )
        # (b) log averages vs the printed table, within half a unit of the last printed digit
        for blk in parsed.blocks:
            for metric in CHECK_METRICS:
                printed = paper.printed(label, blk.dataset, metric)
                digits = len(printed.split(".", 1)[1]) if "." in printed else 0
                half = Decimal(5).scaleb(-digits - 1)
                stated = to_decimal(blk.stated(metric))
                within = abs(stated - to_decimal(printed)) <= half
                status, detail = ledger.judge((tier, rule["table"], label, blk.dataset, metric), within)
                report.items.append(CheckItem(tier, "paper", name, label, blk.dataset, metric, float(stated), printed, f"±{half}", status, detail))
        # (c) the ingested rows are this log's per-image values
        _check_ingested(tier, name, parsed, rows, report)
    ingested = set(rows["experiment"])
    from_logs = {experiment_name(*log_identity(n)) for n in logs}
    for exp in sorted(ingested - from_logs):
        report.items.append(CheckItem(tier, "ingested", exp, "", "", "", None, "", "", MISS, f"rows of tier {tier} that no log in {logs_dir} produced"))


def _check_ingested(tier: str, name: str, parsed, rows: pd.DataFrame, report: CheckReport) -> None:
    experiment = experiment_name(*log_identity(name))
    mine = rows[(rows["experiment"] == experiment) & (rows["protocol"] == LOG_PROTOCOL)]
    for blk in parsed.blocks:
        sub = mine[mine["dataset"] == blk.dataset]
        expected = {im.name: (im.psnr, im.ssim) for im in blk.images}
        got = {img: (p, s) for img, p, s in zip(sub["image"], sub["psnr"], sub["ssim"])}
        if len(sub) == len(expected) and got.keys() == expected.keys():
            bad = [img for img, v in expected.items() if not all(math.isclose(a, b, rel_tol=0, abs_tol=1e-9) for a, b in zip(v, got[img]))]
            status, detail = (OK, "") if not bad else (MISS, f"values differ from the log for {', '.join(bad[:5])}")
        elif sub.empty:
            status, detail = MISS, f"not ingested; run `pcl ingest-logs` (expects {experiment}/{LOG_PROTOCOL}/{blk.dataset}.csv)"
        else:
            status, detail = MISS, f"{len(sub)} rows vs {len(expected)} images in the log; re-run `pcl ingest-logs`"
        report.items.append(CheckItem(tier, "ingested", experiment, "", blk.dataset, "psnr+ssim", None, name, "1e-09", status, detail))


def normalise_image_name(name: str) -> str:
    """Key for matching image names across sources: lowercase, ``_`` removed (``img_001`` == ``img001``)."""
    return str(name).strip().lower().replace("_", "")


@dataclass(frozen=True)
class LogComparison:
    """Our per-image values for one set against a released log block, after name matching."""

    dataset: str
    pairs: tuple[tuple[str, str, float, float, float, float], ...]
    """(our name, log name, our psnr, log psnr, our ssim, log ssim) per matched image."""
    only_ours: tuple[str, ...]
    only_log: tuple[str, ...]
    ambiguous: tuple[str, ...]
    """Names that collide after normalisation (matched by nobody)."""

    def differences(self, metric: str) -> list[tuple[str, float]]:
        """(our name, ours - log) for every matched image."""
        col = 2 if metric == "psnr" else 4
        return [(p[0], p[col] - p[col + 1]) for p in self.pairs]


def compare_with_log(ours: pd.DataFrame, block) -> LogComparison:
    """Match our rows of one set (columns image, psnr, ssim) with a log block by normalised name."""
    def index(names: list[str]) -> tuple[dict[str, str], set[str]]:
        keys: dict[str, str] = {}
        clashes: set[str] = set()
        for n in names:
            k = normalise_image_name(n)
            if k in keys:
                clashes.add(k)
            keys[k] = n
        return keys, clashes

    ours_by = {str(i): (float(p), float(s)) for i, p, s in zip(ours["image"], ours["psnr"], ours["ssim"])}
    log_by = {im.name: (im.psnr, im.ssim) for im in block.images}
    our_keys, our_clash = index(list(ours_by))
    log_keys, log_clash = index(list(log_by))
    clashes = our_clash | log_clash
    pairs = []
    for key in sorted(set(our_keys) & set(log_keys) - clashes):
        a, b = our_keys[key], log_keys[key]
        pairs.append((a, b, ours_by[a][0], log_by[b][0], ours_by[a][1], log_by[b][1]))
    only_ours = sorted(our_keys[k] for k in set(our_keys) - set(log_keys) - clashes)
    only_log = sorted(log_keys[k] for k in set(log_keys) - set(our_keys) - clashes)
    ambiguous = sorted(n for n in [*ours_by, *log_by] if normalise_image_name(n) in clashes)
    return LogComparison(block.dataset, tuple(pairs), tuple(only_ours), tuple(only_log), tuple(ambiguous))


def _released_log_map(logs_dir: Path) -> dict[str, object]:
    """experiment name (e.g. ``rcan-official``) -> parsed released log."""
    return {experiment_name(*log_identity(name)): parsed for name, parsed in parse_logs(logs_dir).items()}


def _check_released_models(tier: str, rule: dict, rows: pd.DataFrame, logs_dir: Path, report: CheckReport) -> None:
    logs = _released_log_map(logs_dir)
    other = sorted(int(x) for x in set(rows["scale"].dropna()) - {LOG_SCALE})
    if other:
        report.notes.append(f"tier {tier}: rows at scale {other} not compared (the released logs are x{LOG_SCALE})")
    rows = rows[rows["scale"] == LOG_SCALE]
    for (experiment, backbone, method, protocol), sub in rows.groupby(["experiment", "backbone", "method", "protocol"], sort=True):
        parsed = logs.get(experiment)
        label = table2_label(backbone, method, experiment) or ""
        if parsed is None:
            report.notes.append(f"tier {tier}: {experiment} has no released per-image log; shown in the tables, not compared")
            continue
        if protocol != LOG_PROTOCOL:
            report.notes.append(f"tier {tier}: {experiment} protocol {protocol} not compared (the released logs use {LOG_PROTOCOL})")
            continue
        nlsn = backbone == "nlsn"
        tolerances = {
            "psnr": max(float(rule["psnr_per_image"]), float(rule["nlsn_seed_spread_db"]) if nlsn else 0.0),
            "ssim": max(float(rule["ssim_per_image"]), float(rule["nlsn_seed_spread_ssim"]) if nlsn else 0.0),
        }
        for dataset, ds_rows in sub.groupby("dataset", sort=False):
            try:
                block = parsed.block(dataset)
            except KeyError:
                report.notes.append(f"tier {tier}: {experiment} {dataset}: the released log has no such block")
                continue
            cmp = compare_with_log(ds_rows, block)
            _released_items(tier, experiment, label, cmp, len(block.images), tolerances, nlsn, report)


def _released_items(tier: str, experiment: str, label: str, cmp: LogComparison, n_log: int, tolerances: dict,
                    nlsn: bool, report: CheckReport) -> None:
    problems = []
    if cmp.only_ours:
        problems.append(f"{len(cmp.only_ours)} of our images not in the log: {', '.join(cmp.only_ours[:5])}")
    if cmp.only_log:
        problems.append(f"{len(cmp.only_log)} log images not evaluated: {', '.join(cmp.only_log[:5])}")
    if cmp.ambiguous:
        problems.append(f"names that collide after normalisation: {', '.join(cmp.ambiguous[:5])}")
    report.items.append(
        CheckItem(tier, "images", experiment, label, cmp.dataset, "names", None, f"{n_log}", "all matched",
                  MISS if problems else OK, "; ".join(problems) or f"{len(cmp.pairs)}/{n_log} matched")
    )
    if not cmp.pairs:
        return
    basis = " (NLSN: seed spread)" if nlsn else ""
    for metric in CHECK_METRICS:
        diffs = cmp.differences(metric)
        tol = tolerances[metric]
        bad = [(n, d) for n, d in diffs if not abs(d) <= tol + _SLACK]
        worst_name, worst = max(diffs, key=lambda nd: abs(nd[1]) if math.isfinite(nd[1]) else math.inf)
        col = 2 if metric == "psnr" else 4
        ours_mean = math.fsum(p[col] for p in cmp.pairs) / len(cmp.pairs)
        log_mean = math.fsum(p[col + 1] for p in cmp.pairs) / len(cmp.pairs)
        detail = f"max |ours - log| {abs(worst):.2g} ({worst_name}) over {len(diffs)} images"
        if bad:
            detail = f"{len(bad)}/{len(diffs)} images outside ±{tol:g}: " + ", ".join(f"{n} {d:+.4f}" for n, d in bad[:5]) + "; " + detail
        report.items.append(
            CheckItem(tier, "per-image", experiment, label, cmp.dataset, metric, ours_mean, f"{log_mean:.6f}",
                      f"±{tol:g} per image{basis}", MISS if bad else OK, detail)
        )


def _check_finite(tier: str, rows: pd.DataFrame, report: CheckReport, cells: CellsMap | None = None) -> None:
    """Rule ``finite``: every set mean exists and every per-image value is finite.

    With a cells mapping, "exists" means: every experiment that feeds a paper cell has rows for
    every (protocol, dataset) this tier evaluated (the union over its experiments), with the
    benchmark's full image count.  Never compared with the paper.
    """
    if cells is None:
        report.notes.append(f"tier {tier}: no cells mapping given (pcl check --cells); only finiteness checked, not completeness")
    else:
        _check_cells_present(tier, rows, report, cells)
    for (experiment, protocol, dataset), sub in rows.groupby(["experiment", "protocol", "dataset"], sort=True):
        for metric in (*CHECK_METRICS, *computed_optional_metrics(sub)):
            values = sub[metric].astype(float)
            bad = sub["image"][~values.map(math.isfinite)].tolist()
            detail = "" if not bad else f"{len(bad)}/{len(sub)} images not finite: {', '.join(map(str, bad[:5]))}"
            report.items.append(
                CheckItem(tier, "finite", f"{experiment} ({protocol})", "", dataset, metric, None, "", "finite", MISS if bad else OK, detail)
            )


def _check_cells_present(tier: str, rows: pd.DataFrame, report: CheckReport, cells: CellsMap) -> None:
    evaluated = sorted(set(zip(rows["protocol"], rows["dataset"])), key=lambda pd_: (pd_[0], DATASETS.index(pd_[1])))
    counts = rows.groupby(["experiment", "protocol", "dataset"]).size().to_dict()
    for experiment in cells.experiments_with_cells():
        where = cells.describe(experiment)
        for protocol, dataset in evaluated:
            n = int(counts.get((experiment, protocol, dataset), 0))
            full = DATASET_SIZES[dataset]
            if n == 0:
                status, detail = MISS, f"no {tier} result: results/{tier}/{experiment}/{protocol}/{dataset}.csv is missing"
            elif n != full:
                status, detail = MISS, f"partial set: {n}/{full} images"
            else:
                status, detail = OK, f"{n} images"
            report.items.append(CheckItem(tier, "cell", f"{experiment} ({protocol})", where, dataset, "rows", None, "", "present", status, detail))
    unknown = sorted(set(rows["experiment"]) - set(cells.cells))
    if unknown:
        report.notes.append(f"tier {tier}: experiment(s) not in the catalog ({cells.source}): {', '.join(unknown)}; checked for finiteness only")


def run_check(
    results: pd.DataFrame,
    *,
    tolerances_path: Path = DEFAULT_TOLERANCES,
    deviations_path: Path = DEFAULT_DEVIATIONS,
    paper_dir: Path | None = None,
    logs_dir: Path | None = None,
    cells: CellsMap | None = None,
) -> CheckReport:
    """Apply each configured tier's rule to ``results`` (rows as from ``read_results``).

    ``cells`` (``pcl.report.cells.read_cells``) lets rule ``finite`` check that every catalog
    cell has its results; without it only finiteness is checked (and a note says so).
    """
    paper_dir = Path(paper_dir) if paper_dir else resource_path("reference", "paper")
    logs_dir = Path(logs_dir) if logs_dir else resource_path("reference", "released_logs")
    if results is None or "tier" not in results.columns:
        results = empty_results()
    rules = load_tolerances(tolerances_path)
    deviations = load_deviations(deviations_path, paper_dir)
    ledger = _Ledger(deviations)
    report = CheckReport()
    present = list(dict.fromkeys(results["tier"])) if len(results) else []
    checked_tiers = set()
    for tier in TIERS:
        if tier not in rules:
            if tier in present:
                report.notes.append(f"tier {tier}: {int((results['tier'] == tier).sum())} rows but no rule in {tolerances_path}; not checked")
            continue
        rule = rules[tier]
        rows = results[results["tier"] == tier]
        if rows.empty:
            report.notes.append(f"tier {tier}: no rows; no checks")
            continue
        checked_tiers.add(tier)
        if rule["rule"] == "paper":
            _check_paper_rule(tier, rule, rows, read_paper_table(paper_dir / TABLES[rule["table"]]), ledger, report)
        elif rule["rule"] == "released_logs":
            _check_released_logs(tier, rule, rows, read_paper_table(paper_dir / TABLES[rule["table"]]), logs_dir, ledger, report)
        elif rule["rule"] == "released_models":
            _check_released_models(tier, rule, rows, logs_dir, report)
        else:
            _check_finite(tier, rows, report, cells)
        if "table3" in rule:
            check_table3(tier, rule["table3"], rows, paper_dir, report, CheckItem, cells)
    for dev in deviations:
        if dev.key in ledger.occurred or dev.key in ledger.within:
            continue
        why = "no such cell was checked" if dev.tier in checked_tiers else f"tier {dev.tier} not checked"
        report.notes.append(f"expected deviation {dev.table} {dev.row} {dev.dataset} {dev.metric} (tier {dev.tier}) not evaluated: {why}")
    return report


def check_files(
    result_files: list[Path],
    *,
    tolerances_path: Path | None = None,
    deviations_path: Path | None = None,
    paper_dir: Path | None = None,
    logs_dir: Path | None = None,
    cells: CellsMap | None = None,
) -> CheckReport:
    """CLI entry (``pcl check``): read the given result CSVs and run the check.

    Config paths default to the repository's ``config/``; paper tables and logs default to the
    shipped resources.  No files means every configured tier reports "no rows; no checks".
    """
    return run_check(
        read_results(result_files),
        tolerances_path=Path(tolerances_path) if tolerances_path else DEFAULT_TOLERANCES,
        deviations_path=Path(deviations_path) if deviations_path else DEFAULT_DEVIATIONS,
        paper_dir=paper_dir,
        logs_dir=logs_dir,
        cells=cells,
    )
