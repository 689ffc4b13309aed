"""The configuration of ``pcl check``: per-tier rules (tolerances.yaml) and expected deviations.

Why validated strictly: a typo in a tolerance file must not silently turn a check off or widen
it, so every key, type and name (tier, table, row, dataset, metric) is checked against what the
harness knows, and an error names the file and the key.  Documented differences between the paper
and the data live in ``config/expected_deviations.yaml``, never in a widened tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pcl.errors import PCLError
from pcl.metrics.psnr_ssim import PROTOCOLS
from pcl.names import DATASETS, TIERS
from pcl.report.paper import PaperTable, read_paper_table
from pcl.report.specs import TABLE2
from pcl.resources import REPO_ROOT
from pcl.yamlio import read_yaml

DEFAULT_TOLERANCES = REPO_ROOT / "config" / "tolerances.yaml"
DEFAULT_DEVIATIONS = REPO_ROOT / "config" / "expected_deviations.yaml"

RULES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "paper": {"rule": str, "table": str, "protocols": list, "psnr": (int, float), "ssim": (int, float)},
    "released_logs": {"rule": str, "table": str, "average_tolerance": (int, float), "paper_tolerance": str},
    "finite": {"rule": str},
    "learns": {"rule": str, "dataset": str, "protocol": str, "margin_over_bicubic_db": (int, float), "max_drift_db": (int, float)},
    "released_models": {
        "rule": str,
        "psnr_per_image": (int, float),
        "ssim_per_image": (int, float),
        "nlsn_seed_spread_db": (int, float),
        "nlsn_seed_spread_ssim": (int, float),
    },
    "rerun": {"rule": str, "reference_tier": str, "cross_machine_db": (int, float)},
}
"""Keys each rule needs (all of them, nothing else) and their YAML types."""
OPTIONAL_KEYS: dict[str, tuple[str, ...]] = {"learns": ("cross_machine_db", "expected_psnr"), "rerun": ("effects",)}
"""Keys a rule may have besides ``RULES`` (and ``table3``), validated by ``validate_expected``."""

CHECK_TABLES: dict[str, str] = {"table2": TABLE2.paper_file}
"""Tables a rule or a deviation may name -> paper CSV file name."""
CHECK_METRICS: tuple[str, ...] = ("psnr", "ssim")
"""Metrics the PSNR/SSIM rules compare."""
PERCEPTUAL_METRICS: tuple[str, ...] = ("niqe", "lpips")
"""Metrics a rule's optional ``table3`` block compares with Table III."""


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


def validate_table3_rule(where: str, value: object) -> dict[str, float]:
    """The ``table3`` block of a tier rule: tolerances for niqe and/or lpips (finite, >= 0)."""
    if not isinstance(value, dict) or not value or set(value) - set(PERCEPTUAL_METRICS):
        raise PCLError(f"{where}.table3: must map niqe and/or lpips to tolerances, e.g. {{niqe: 0.05, lpips: 0.002}}")
    out = {}
    for key, tol in value.items():
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
            raise PCLError(f"{where}.table3.{key}: {tol!r} must be a finite number >= 0")
        out[key] = float(tol)
    return out


def validate_expected(where: str, rule: dict) -> None:
    """``expected_psnr`` (experiment -> stored PSNR) needs ``cross_machine_db``; both finite numbers."""
    has_tol, has_values = "cross_machine_db" in rule, "expected_psnr" in rule
    if has_values and not has_tol:
        raise PCLError(f"{where}.cross_machine_db: missing (expected_psnr is compared within it); add the measured tolerance")
    if has_tol:
        tol = rule["cross_machine_db"]
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
            raise PCLError(f"{where}.cross_machine_db: {tol!r} must be a finite number >= 0")
    if has_values:
        values = rule["expected_psnr"]
        if not isinstance(values, dict) or not values:
            raise PCLError(f"{where}.expected_psnr: must map experiment names to PSNR values, e.g. {{edsr-s-baseline: 29.85}}")
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise PCLError(f"{where}.expected_psnr.{name}: {value!r} must be a finite number (dB)")


def validate_rerun(where: str, rule: dict) -> None:
    """Rule ``rerun``: a known reference tier and ``effects`` as [first, second] experiment pairs."""
    if rule.get("rule") != "rerun":
        return
    if rule.get("reference_tier") not in TIERS:
        raise PCLError(f"{where}.reference_tier: {rule.get('reference_tier')!r} is not a tier; known tiers: {', '.join(TIERS)}")
    effects = rule.get("effects", [])
    pairs_ok = isinstance(effects, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(e, str) and e for e in p) for p in effects)
    if not pairs_ok:
        raise PCLError(f"{where}.effects: must be a list of [first, second] experiment names, e.g. "
                       "[[edsr-s-pcl-l1-w100-a0.1, edsr-s-control-l1]]")


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
        optional = OPTIONAL_KEYS.get(rule["rule"], ())
        for key in rule:
            if key not in needed and key != "table3" and key not in optional:
                raise PCLError(f"{where}.{key}: not a key of rule {rule['rule']!r}; allowed: {', '.join((*needed, *optional))}")
        validate_expected(where, rule)
        validate_rerun(where, rule)
        for key, kind in needed.items():
            if key not in rule:
                raise PCLError(f"{where}.{key}: missing (rule {rule['rule']!r} needs {', '.join(needed)})")
            value = rule[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise PCLError(f"{where}.{key}: {value!r} has the wrong type")
            if kind == (int, float) and not (math.isfinite(value) and value >= 0):
                raise PCLError(f"{where}.{key}: {value!r} must be a finite number >= 0")
        if "table" in rule and rule["table"] not in CHECK_TABLES:
            raise PCLError(f"{where}.table: {rule['table']!r} is not a known table ({', '.join(CHECK_TABLES)})")
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
        if dev.table not in CHECK_TABLES:
            raise PCLError(f"{where}.table: {dev.table!r} is not a known table ({', '.join(CHECK_TABLES)})")
        if dev.dataset not in DATASETS:
            raise PCLError(f"{where}.dataset: {dev.dataset!r} is not one of {', '.join(DATASETS)}")
        if dev.metric not in CHECK_METRICS:
            raise PCLError(f"{where}.metric: {dev.metric!r} is not one of {', '.join(CHECK_METRICS)}")
        paper = papers.setdefault(dev.table, read_paper_table(Path(paper_dir) / CHECK_TABLES[dev.table]))
        if dev.row not in paper.labels:
            raise PCLError(f"{where}.row: {dev.row!r} is not a row of {dev.table} ({', '.join(paper.labels)})")
        if dev.key in seen:
            raise PCLError(f"{where}: duplicate entry for {dev.row} {dev.dataset} {dev.metric}; keep one")
        seen.add(dev.key)
        out.append(dev)
    return out
