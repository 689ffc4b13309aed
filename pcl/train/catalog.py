"""The experiment catalog (``config/experiments.yaml``): every training run the paper's tables need.

Why a catalog: Tables II and IV-VII are regenerated from runs, and each cell must be traceable
to exactly one experiment whose complete recipe (backbone, method settings, schedule,
initialisation, budget per tier) is written down once.  The file is validated against
``workflow/schemas/experiments.schema.json`` (JSON Schema draft 2020-12) and then by code
(name pattern, references between experiments, method settings through
``MethodConfig.from_dict``, model keywords through the model factory, one experiment per table
cell), so a bad entry stops *before* anything runs, with a message naming the key.

Resolution per tier: an experiment names a ``recipe`` (default ``released-nlsn`` for NLSN,
``released-rcan`` otherwise); ``recipes.<recipe>.<tier>`` gives the schedule, gradient clipping,
loss scale, augmentation and initialisation; ``tiers.<tier>`` gives the data, the budget and the
model keywords per backbone; the experiment's own ``tiers.<tier>`` block overrides any of them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


from pcl.errors import PCLError
from pcl.yamlio import read_yaml

METHODS: tuple[str, ...] = ("baseline", "pcl", "pcl-released", "control", "pcl-fixed")
#: Methods that train with the PCL objective (and therefore have method settings).
PCL_METHODS: frozenset[str] = frozenset({"pcl", "pcl-released", "pcl-fixed"})
#: Semantics each PCL method requires of its method settings.
METHOD_SEMANTICS: dict[str, str] = {"pcl": "paper", "pcl-fixed": "paper", "pcl-released": "released"}
#: Row labels per table (paper tables, resources/reference/paper/table*.csv).
TABLE_ROWS: dict[int, tuple[str, ...]] = {
    2: ("EDSR-S", "EDSR-S+PCL", "EDSR-L", "EDSR-L+PCL", "RCAN", "RCAN+PCL", "HAN", "HAN+PCL", "NLSN", "NLSN+PCL"),
    3: ("EDSR", "EDSR+PCL", "RCAN", "RCAN+PCL", "NLSN", "NLSN+PCL"),
    4: ("config1", "config2", "config3", "config4", "config5"),
    5: ("EDSR-S", "EDSR-S+PCL", "EDSR-S+PCL-F"),
    6: ("pos0-neg0", "pos1-neg0", "pos0-neg1", "pos1-neg1"),
    7: ("alpha0.01", "alpha0.1", "alpha0.25", "alpha0.5", "alpha1", "alpha5"),
}
BUDGET_KEYS: tuple[str, ...] = (
    "iterations", "batch", "lr_patch", "log_every", "checkpoint_every", "validate_every", "validation_images",
    "validation_dataset", "workers", "precision", "channels_last", "compile",
)
#: Where the default catalog and its schema live (the CLI passes paths explicitly).
DEFAULT_CATALOG = Path("config/experiments.yaml")
SCHEMA_FILE = Path("workflow/schemas/experiments.schema.json")


def _repo_root() -> Path:
    from pcl.resources import REPO_ROOT

    return REPO_ROOT


@dataclass(frozen=True)
class Cell:
    """A table cell an experiment feeds: ``table`` (2-7) and its ``row`` label."""

    table: int
    row: str


@dataclass
class Experiment:
    """One catalog entry.  Per-tier values come from :meth:`budget`, :meth:`model_kwargs`,
    :meth:`schedule`, :meth:`init`, :meth:`data` and :meth:`resolve` (everything at once)."""

    name: str
    backbone: str
    method: str
    description: str
    method_settings: dict[str, Any] | None
    recipe: str
    cells: list[Cell]
    embedding_from: str | None
    seed: int
    overrides: dict[str, dict[str, Any]]
    catalog: "Catalog" = field(repr=False)
    only_tiers: tuple[str, ...] | None = None
    """Tiers that may train it (None = every tier): a study's grid stays out of smoke/finetune/scratch."""

    # ------------------------------------------------------------------ per tier

    def _tier(self, tier: str) -> dict[str, Any]:
        return self.catalog.tier(tier)

    def _recipe(self, tier: str) -> dict[str, Any]:
        self.catalog.tier(tier)
        return self.catalog.recipes[self.recipe][tier]

    def _override(self, tier: str) -> dict[str, Any]:
        return self.overrides.get(tier, {})

    def budget(self, tier: str) -> dict[str, Any]:
        """Iterations, batch, LR patch, logging / checkpoint / validation cadence, workers, precision."""
        return {**self._tier(tier)["budget"], **self._override(tier).get("budget", {})}

    def model_kwargs(self, tier: str) -> dict[str, Any]:
        """Keyword overrides for ``build_model(backbone, ...)`` at this tier ({} = paper configuration)."""
        base = dict(self._tier(tier).get("model_kwargs", {}).get(self.backbone, {}))
        return {**base, **self._override(tier).get("model_kwargs", {})}

    def schedule(self, tier: str) -> dict[str, Any]:
        """The learning-rate schedule mapping (``pcl.train.schedules.Schedule.from_dict``)."""
        return {**self._recipe(tier)["schedule"], **self._override(tier).get("schedule", {})}

    def init(self, tier: str) -> Any:
        """``scratch``, ``official`` or a mapping {checkpoint: NAME} / {path: FILE} / {experiment: NAME}."""
        return copy.deepcopy(self._override(tier).get("init", self._recipe(tier).get("init", "scratch")))

    def data(self, tier: str) -> dict[str, Any]:
        return {**self._tier(tier)["data"], **self._override(tier).get("data", {})}

    def method_config(self, tier: str):
        """The validated ``MethodConfig`` of a PCL experiment at ``tier`` (None for L1-only methods)."""
        from pcl.method import MethodConfig

        settings = self.resolved_method_settings(tier)
        return None if settings is None else MethodConfig.from_dict(settings)

    def resolved_method_settings(self, tier: str) -> dict[str, Any] | None:
        if self.method not in PCL_METHODS:
            return None
        return {**(self.method_settings or {}), **self._override(tier).get("method_settings", {})}

    def seeds(self, tier: str) -> list[int]:
        """Training seeds at ``tier``, one run each: the experiment's ``tiers.<tier>.seeds``, else the
        catalog tier's ``seeds``, else its own ``seed``.

        Why a list per tier: the paper's gains are small enough that one run per experiment cannot
        tell them from seed noise, so a cluster tier can ask for several; the first seed's run keeps
        the experiment's own name (``pcl.names.run_name``), and tables and gains average the seeds.
        """
        seeds = self._override(tier).get("seeds", self._tier(tier).get("seeds"))
        return [int(s) for s in seeds] if seeds else [self.seed]

    def depends_on(self, tier: str) -> list[str]:
        """Experiments whose run directories (same tier) must be complete before this one starts."""
        deps = []
        if self.embedding_from:
            deps.append(self.embedding_from)
        init = self.init(tier)
        if isinstance(init, Mapping) and "experiment" in init:
            deps.append(str(init["experiment"]))
        return deps

    def resolve(self, tier: str) -> dict[str, Any]:
        """Every setting of this experiment at ``tier`` as plain data (the run's config.yaml core)."""
        recipe = self._recipe(tier)
        override = self._override(tier)
        tier_block = self._tier(tier)
        return {
            "experiment": self.name,
            "tier": tier,
            "backbone": self.backbone,
            "method": self.method,
            "recipe": self.recipe,
            "seed": self.seeds(tier)[0],
            "model_kwargs": self.model_kwargs(tier),
            "method_settings": self.resolved_method_settings(tier),
            "schedule": self.schedule(tier),
            "grad_clip": override.get("grad_clip", recipe.get("grad_clip")),
            "loss_scale": override.get("loss_scale", recipe.get("loss_scale", "backbone")),
            "augment": override.get("augment", recipe.get("augment", "released")),
            "init": self.init(tier),
            "embedding_from": self.embedding_from,
            "vgg_pretrained": bool(override.get("vgg_pretrained", tier_block.get("vgg_pretrained", True))),
            "data": self.data(tier),
            "budget": self.budget(tier),
            "cells": [{"table": c.table, "row": c.row} for c in self.cells],
        }


@dataclass
class Catalog:
    """The parsed catalog: ``experiments`` by name, ``tiers`` and ``recipes`` as validated mappings."""

    path: Path
    experiments: dict[str, Experiment]
    tiers: dict[str, dict[str, Any]]
    recipes: dict[str, dict[str, Any]]
    seed: int

    def get(self, name: str) -> Experiment:
        if name not in self.experiments:
            close = [n for n in self.experiments if name.split("-")[0] in n][:8]
            hint = f" (similar: {', '.join(close)})" if close else ""
            raise PCLError(f"unknown experiment {name!r} in {self.path}{hint}; `pcl train --list` shows them all")
        return self.experiments[name]

    def tier(self, tier: str) -> dict[str, Any]:
        if tier not in self.tiers:
            raise PCLError(f"unknown training tier {tier!r}; valid tiers: {', '.join(self.tiers)}")
        return self.tiers[tier]

    def tier_experiments(self, tier: str) -> list[str]:
        """The experiments ``tier`` trains by default: its ``experiments`` list, else every experiment."""
        listed = self.tier(tier).get("experiments")
        if listed:
            return list(listed)
        return [n for n, e in self.experiments.items() if e.only_tiers is None or tier in e.only_tiers]

    def by_cell(self, table: int, row: str) -> Experiment | None:
        for experiment in self.experiments.values():
            if Cell(table, row) in experiment.cells:
                return experiment
        return None

    def order(self, tier: str, names: list[str] | None = None) -> list[str]:
        """Experiment names with every dependency before its dependents (stable otherwise)."""
        names = list(self.experiments) if names is None else list(names)
        done: list[str] = []

        def visit(name: str, stack: tuple[str, ...]) -> None:
            if name in done:
                return
            if name in stack:
                raise PCLError(f"{self.path}: experiments {' -> '.join(stack + (name,))} depend on each other")
            for dep in self.get(name).depends_on(tier):
                visit(dep, stack + (name,))
            done.append(name)

        for name in names:
            visit(name, ())
        return done

    def describe(self, tier: str | None = None) -> str:
        """A plain-text listing for ``pcl train --list``."""
        lines = []
        header = f"{'experiment':22s} {'backbone':8s} {'method':13s} {'cells':58s} notes"
        lines.append(header)
        lines.append("-" * len(header))
        names = self.tier_experiments(tier) if tier else list(self.experiments)
        for e in (self.experiments[n] for n in names):
            cells = ", ".join(f"T{c.table}:{c.row}" for c in e.cells) or "-"
            notes = []
            if e.embedding_from:
                notes.append(f"embedding from {e.embedding_from}")
            if tier:
                b = e.budget(tier)
                s = e.schedule(tier)
                notes.append(f"{b['iterations']} it, batch {b['batch']}, LR patch {b['lr_patch']}, "
                             f"{s['type']} lr {s['lr']:g}, init {_init_text(e.init(tier))}")
                if e.method in PCL_METHODS:
                    notes.append(_weight_text(e, tier))
            lines.append(f"{e.name:22s} {e.backbone:8s} {e.method:13s} {cells:58s} {'; '.join(notes)}")
        scope = f" (tier {tier}: {len(names)})" if tier else ""
        lines.append(f"{len(self.experiments)} experiments in {self.path}{scope}; tiers: {', '.join(self.tiers)}")
        return "\n".join(lines)


def _weight_text(e: Experiment, tier: str) -> str:
    """The term's nominal weight: alpha, tau, the L1's scale (docs/method_choices.md, "Weight of the term")."""
    from pcl.models import model_defaults

    config = e.method_config(tier)
    scale = e.resolve(tier)["loss_scale"]
    factor = float(scale) if scale != "backbone" else float(
        {**model_defaults(e.backbone), **e.model_kwargs(tier)}.get("rgb_range", 1.0))
    shown = f"backbone (x{factor:g})" if scale == "backbone" else f"{factor:g}"
    warmup = f", warm-up {config.embedding_warmup} it ({config.warmup_mode})" if config.embedding_warmup else ""
    return (f"alpha {config.weight:g}, tau {config.tau:g}, loss_scale {shown}, "
            f"alpha/loss_scale {config.weight / factor:.3g}{warmup}")


def _init_text(init: Any) -> str:
    if isinstance(init, Mapping):
        (key, value), = init.items()
        return f"{key} {value}"
    return str(init)


# ---------------------------------------------------------------------------- loading


def load_catalog(path: str | Path | None = None, *, schema: str | Path | None = None) -> Catalog:
    """Read, schema-validate and cross-check the catalog; PCLError naming the key on any problem."""
    path = Path(path) if path is not None else _default_path(DEFAULT_CATALOG)
    schema_path = Path(schema) if schema is not None else _default_path(SCHEMA_FILE)
    data = read_yaml(path, what="experiment catalog", missing_hint="pass --catalog or restore config/experiments.yaml")
    validate_schema(data, schema_path, source=str(path))
    catalog = Catalog(path=path, experiments={}, tiers=data["tiers"], recipes=data["recipes"], seed=int(data.get("seed", 0)))
    for name, entry in data["experiments"].items():
        catalog.experiments[name] = _experiment(catalog, name, entry)
    _cross_check(catalog)
    return catalog


def _default_path(relative: Path) -> Path:
    """Relative to the working directory when present there, else to the repository."""
    return relative if relative.exists() else _repo_root() / relative


def validate_schema(data: Any, schema_path: Path, *, source: str) -> None:
    """Validate against the JSON schema; the error names the key path (a.b.c) and the problem."""
    import jsonschema

    try:
        schema = json.loads(Path(schema_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PCLError(f"catalog schema {schema_path} not found; restore workflow/schemas/experiments.schema.json") from None
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return
    error = _most_specific(errors[0])
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    more = f" (+{len(errors) - 1} more problems)" if len(errors) > 1 else ""
    raise PCLError(f"{source}: schema error at {where}: {_short(error.message)}{more}")


def _most_specific(error):
    """Descend into anyOf/oneOf/if-then branches to the deepest sub-error (names the real key)."""
    while error.context:
        error = max(error.context, key=lambda e: len(e.absolute_path))
    return error


def _short(message: str) -> str:
    return message if len(message) < 300 else message[:297] + "..."


def _experiment(catalog: Catalog, name: str, entry: Mapping[str, Any]) -> Experiment:
    backbone, method = entry["backbone"], entry["method"]
    return Experiment(
        name=name,
        backbone=backbone,
        method=method,
        description=str(entry.get("description", "")).strip(),
        method_settings=dict(entry["method_settings"]) if entry.get("method_settings") is not None else None,
        recipe=entry.get("recipe", "released-nlsn" if backbone == "nlsn" else "released-rcan"),
        cells=[Cell(int(c["table"]), str(c["row"])) for c in entry.get("cells", [])],
        embedding_from=entry.get("embedding_from"),
        seed=int(entry.get("seed", catalog.seed)),
        overrides={k: dict(v) for k, v in (entry.get("tiers") or {}).items()},
        catalog=catalog,
        only_tiers=tuple(entry["only_tiers"]) if entry.get("only_tiers") else None,
    )


def _fail(catalog: Catalog, key: str, message: str) -> PCLError:
    return PCLError(f"{catalog.path}: {key}: {message}")


def _cross_check(catalog: Catalog) -> None:
    """The checks a schema cannot express; every message names the key."""
    seen: dict[Cell, str] = {}
    built: set[tuple[str, str]] = set()
    for recipe, block in catalog.recipes.items():
        missing = [t for t in catalog.tiers if t not in block]
        if missing:
            raise _fail(catalog, f"recipes.{recipe}", f"no block for tier(s) {', '.join(missing)}")
    for name, e in catalog.experiments.items():
        key = f"experiments.{name}"
        from pcl.models.registry import backbone_names

        if e.backbone not in backbone_names():
            raise _fail(catalog, f"{key}.backbone", f"{e.backbone!r} is not a registered backbone ({', '.join(backbone_names())})")
        prefix = f"{e.backbone}-{e.method}"
        if not (name == prefix or name.startswith(prefix + "-")):
            raise _fail(catalog, key, f"name must follow <backbone>-<method>[-<variant>], i.e. start with {prefix!r}")
        if e.recipe not in catalog.recipes:
            raise _fail(catalog, f"{key}.recipe", f"unknown recipe {e.recipe!r}; defined: {', '.join(catalog.recipes)}")
        if e.method in PCL_METHODS and e.method_settings is None:
            raise _fail(catalog, key, f"method {e.method!r} needs method_settings (at least a preset)")
        if e.method not in PCL_METHODS and e.method_settings is not None:
            raise _fail(catalog, f"{key}.method_settings", f"method {e.method!r} trains with L1 only; remove method_settings")
        if (e.method == "pcl-fixed") != (e.embedding_from is not None):
            raise _fail(catalog, f"{key}.embedding_from",
                        "required for method pcl-fixed (the experiment whose embedding is frozen) and only there")
        if e.embedding_from is not None:
            source = catalog.experiments.get(e.embedding_from)
            if source is None:
                raise _fail(catalog, f"{key}.embedding_from", f"unknown experiment {e.embedding_from!r}")
            if source.method not in ("pcl",):
                raise _fail(catalog, f"{key}.embedding_from", f"{e.embedding_from!r} is not a PCL (paper) run with a trained embedding")
        for cell in e.cells:
            if cell in seen:
                raise _fail(catalog, f"{key}.cells", f"table {cell.table} row {cell.row!r} is already fed by {seen[cell]!r}")
            seen[cell] = name
        for tier in catalog.tiers:
            init = e.init(tier)
            if isinstance(init, Mapping) and "experiment" in init and init["experiment"] not in catalog.experiments:
                raise _fail(catalog, f"{key}.tiers.{tier}.init.experiment", f"unknown experiment {init['experiment']!r}")
            if e.method in PCL_METHODS:
                try:
                    config = e.method_config(tier)
                except PCLError as exc:
                    raise _fail(catalog, f"{key}.method_settings", f"(tier {tier}) {exc}") from None
                want = METHOD_SEMANTICS[e.method]
                if config.semantics != want:
                    raise _fail(catalog, f"{key}.method_settings",
                                f"method {e.method!r} needs {want!r} semantics, the settings give {config.semantics!r}")
            try:
                from pcl.train.schedules import Schedule

                Schedule.from_dict(e.schedule(tier))
            except PCLError as exc:
                raise _fail(catalog, f"{key} (tier {tier}) schedule", str(exc)) from None
            kwargs = e.model_kwargs(tier)
            signature = (e.backbone, json.dumps(kwargs, sort_keys=True))
            if signature not in built:
                try:
                    _check_model_kwargs(e.backbone, kwargs)
                except PCLError as exc:
                    raise _fail(catalog, f"{key}.tiers.{tier}.model_kwargs", str(exc)) from None
                built.add(signature)
    for tier in catalog.tiers:
        for name in catalog.tiers[tier].get("experiments") or []:
            if name not in catalog.experiments:
                raise _fail(catalog, f"tiers.{tier}.experiments", f"unknown experiment {name!r}")
            only = catalog.experiments[name].only_tiers
            if only is not None and tier not in only:
                raise _fail(catalog, f"tiers.{tier}.experiments", f"{name!r} is limited to tier(s) {', '.join(only)} "
                            f"(its only_tiers); add {tier} there or drop it from the list")
        catalog.order(tier, catalog.tier_experiments(tier))
        for name in catalog.tier_experiments(tier):
            for dep in catalog.get(name).depends_on(tier):
                if dep not in catalog.tier_experiments(tier):
                    raise _fail(catalog, f"tiers.{tier}.experiments",
                                f"{name!r} starts from {dep!r}, which the tier does not list; add it")
        for name, e in catalog.experiments.items():
            unknown = sorted((set(e.overrides) | set(e.only_tiers or ())) - set(catalog.tiers))
            if unknown:
                raise _fail(catalog, f"experiments.{name}.tiers/only_tiers", f"unknown tier(s) {', '.join(unknown)}; tiers: {', '.join(catalog.tiers)}")



def _check_model_kwargs(backbone: str, kwargs: Mapping[str, Any]) -> None:
    """Keyword names against the factory; values by building the (reduced) model on the CPU.

    Why not the meta device: it imports torch's reference-op machinery (seconds), and every
    ``pcl train`` loads the catalog.  Empty keywords are the paper configuration, valid by definition.
    """
    from pcl.models import build_model, model_defaults

    unknown = sorted(set(kwargs) - set(model_defaults(backbone)))
    if unknown:
        raise PCLError(f"unknown keyword(s) {', '.join(unknown)} for model {backbone!r}; "
                       f"valid keywords: {', '.join(model_defaults(backbone))}")
    if kwargs:
        build_model(backbone, **kwargs)
