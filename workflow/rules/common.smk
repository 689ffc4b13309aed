# Shared definitions: how rules call `pcl`, which datasets exist, where things go.

import json
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(workflow.basedir)
# `python -m pcl` with the checkout first on PYTHONPATH works both in the active venv (where the
# package is installed editable) and in the conda env of a cluster run (dependencies only).
# A command prefix, so rules give it unquoted (`{params.pcl}`); the checkout path in it is quoted
# here. Every other value reaches a shell quoted: `{input:q}`, `{params.x:q}` (lists: word by word).
PCL = f"PYTHONPATH={shlex.quote(str(ROOT))}:${{PYTHONPATH:-}} python -m pcl"
ENV = str(ROOT / "workflow" / "envs" / "pcl.yaml")

SCALE = config["scale"]
DATA = config["data_root"]
TIERS = config["tiers"]
PROTOCOLS = config["protocols"]
TABLE_FILES = expand("reports/tables/table{n}.{ext}", n=[2, 3, 4, 5, 6, 7], ext=["md", "tex", "csv"])
WEIGHTS_STATUS = "reports/weights_status.md"
CELLS = "reports/cells.json"
BENCHMARKS_JSON = f"{DATA}/benchmarks.json"
DIV2K_HR = Path(DATA, "DIV2K", "DIV2K_train_HR")
DIV2K_LR = Path(DATA, "DIV2K", "DIV2K_train_LR_bicubic", f"X{SCALE}")
# Reported only when the DIV2K training set is present (downloaded or placed by hand).
DIV2K_CHECK = (
    [f"{DATA}/prepared/DIV2K/x{SCALE}/lr_comparison.json"]
    if DIV2K_HR.is_dir() and DIV2K_LR.is_dir()
    else []
)


# Tier `released`: the checkpoint registry is read at parse time (like DIV2K above); every
# checkpoint whose file is present is evaluated, absent ones are listed in the status report.
RELEASED_CFG = {
    "checkpoints": "config/checkpoints.yaml",
    "protocols": ["authors"],
    "device": "cpu",
    "precision": "fp32",
    "seed": 0,
    "chop": False,
    "self_ensemble": False,
    **config.get("released", {}),
}
RELEASED_STATUS = "reports/released_status.md"


def released_registry():
    """The parsed checkpoint registry (pcl.released imports only the standard library and yaml)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pcl.released import load_registry

    return load_registry(Path(RELEASED_CFG["checkpoints"]))


def released_present():
    """{experiment: entry} of the checkpoints present now ({} unless tier `released` is on)."""
    if "released" not in TIERS:
        return {}
    from pcl.released import present_checkpoints

    return {e.experiment: e for e in present_checkpoints(released_registry())}


def released_snapshot():
    """Presence, size and mtime of every registered file: a param of the status rule, so that
    placing or removing a checkpoint by hand re-writes the status report."""
    if "released" not in TIERS:
        return ""
    out = []
    for e in released_registry().entries:
        st = e.path.stat() if e.path.is_file() else None
        out.append(f"{e.name}:{st.st_size}:{int(st.st_mtime)}" if st else f"{e.name}:absent")
    return " ".join(out)


RELEASED = released_present()
# Options are lists of words: a rule's shell gives them as `{params.x:q}`, which quotes each word
# on its own, so no value (a path with a space, a `;`) can split an argument or start a command.
RELEASED_OPTIONS = (
    ["--device", str(RELEASED_CFG["device"])]
    + ["--precision", str(RELEASED_CFG["precision"])]
    + ["--seed", str(int(RELEASED_CFG["seed"]))]
    + (["--chop"] if RELEASED_CFG["chop"] else [])
    + (["--self-ensemble"] if RELEASED_CFG["self_ensemble"] else [])
)


def present_benchmarks_at_parse():
    """Benchmark folders present now (shipped or under data/): part of the discovery params,
    so placing a new set by hand re-runs discovery."""
    found = []
    for name in config["benchmarks"]:
        shipped = config["shipped_benchmarks"].get(name)
        if (shipped and Path(shipped).is_dir()) or Path(DATA, "benchmarks", name, "HR").is_dir():
            found.append(name)
    return found


def available_benchmarks():
    """{name: hr_dir} of the benchmarks the discovery checkpoint found (after any download)."""
    path = checkpoints.discover_benchmarks.get().output[0]
    with open(path) as fh:
        return {name: info["hr_dir"] for name, info in json.load(fh).items()}


def benchmark_hr(name):
    """HR folder of a discovered benchmark; a clear error for one a training tier needs but lacks."""
    found = available_benchmarks()
    if name not in found:
        raise ValueError(
            f"benchmark {name} is not present: place its HR images in {DATA}/benchmarks/{name}/HR, run "
            f"`pcl download --dataset {name}`, or set download: {{enabled: true}} in the config "
            f"(training tiers evaluate on training.tiers.<tier>.datasets)"
        )
    return found[name]


def hr_images(wildcards):
    """The HR files of one benchmark: inputs of `prepare`, so an edited image re-runs it."""
    folder = Path(benchmark_hr(wildcards.dataset))
    return sorted(str(p) for p in folder.iterdir() if p.is_file())


def result_inputs(wildcards):
    """Result files that depend on benchmark discovery (tiers bicubic and released)."""
    files = []
    if "bicubic" in TIERS:
        files += expand(
            "results/bicubic/bicubic/{protocol}/{dataset}.csv",
            protocol=PROTOCOLS,
            dataset=list(available_benchmarks()),
        )
    if RELEASED:
        files += expand(
            "results/released/{experiment}/{protocol}/{dataset}.csv",
            experiment=list(RELEASED),
            protocol=RELEASED_CFG["protocols"],
            dataset=list(available_benchmarks()),
        )
    return files


def static_results():
    """Result files known without discovery: the ingested logs (tier reported) and the training
    tiers, whose benchmarks are named in the config (so a dry run lists every training job)."""
    files = ["results/reported"] if "reported" in TIERS else []
    return files + trained_results()


# Training tiers (every configured tier that is not reported, bicubic or released: smoke, mini,
# finetune, scratch, or any tier added to the catalog): the experiment catalog is read when the
# workflow is parsed (only when a training tier is configured), through pcl.train.catalog, which
# validates it first, so a bad entry stops the workflow before any job starts.
TRAINING = config["training"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from pcl.names import OWN_REPORT_TIERS, UNTRAINED_TIERS
TRAIN_TIERS = [t for t in TIERS if t not in UNTRAINED_TIERS]
# Training tiers whose rows go into Tables II-VII, the gains and the paper's verdict: all but the
# study's (catalog `own_report: true`), whose rows feed only `pcl study` and `pcl check`.
PAPER_TRAIN_TIERS = [t for t in TRAIN_TIERS if t not in OWN_REPORT_TIERS]
# Tiers trained and evaluated in groups of runs, one process per group (`group:`, groups.smk); the
# others get one `train` job per run and one `evaluate_trained` job per result file.
GROUPED_TIERS = [t for t in TRAIN_TIERS if TRAINING["tiers"].get(t, {}).get("group")]
SINGLE_JOB_TIERS = [t for t in TRAIN_TIERS if t not in GROUPED_TIERS]
for _tier in GROUPED_TIERS:
    for _key in ("runtime", "mem_mb"):
        if TRAINING["tiers"][_tier][_key] == "auto":
            raise ValueError(f"config: training.tiers.{_tier}.{_key} is auto, which is priced per run; give minutes / MB for its groups or drop `group`")
RUN_ROOT = TRAINING["run_root"]
for _tier in TRAIN_TIERS:
    if _tier not in TRAINING["tiers"]:
        raise ValueError(f"config: tier {_tier} is selected but training.tiers.{_tier} is missing; add it (see config/config.yaml)")


def _load_catalog():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pcl.train.catalog import load_catalog

    return load_catalog(Path(TRAINING["catalog"]))


CATALOG = _load_catalog() if TRAIN_TIERS else None
for _tier in TRAIN_TIERS:
    CATALOG.tier(_tier)  # a configured tier the catalog lacks: one line naming the catalog's tiers


def trained_experiments(tier):
    """The experiments trained at ``tier``: training.tiers.<tier>.experiments, else
    training.experiments; ``all`` = the catalog tier's own list (every experiment by default)."""
    chosen = TRAINING["tiers"][tier].get("experiments", TRAINING["experiments"])
    names = CATALOG.tier_experiments(tier) if chosen == "all" else list(chosen)
    for name in names:
        CATALOG.get(name)  # names the catalog and the similar names on a typo
    return names


TRAINED = {tier: trained_experiments(tier) for tier in TRAIN_TIERS}
if TRAIN_TIERS:
    from pcl.train.seeds import dependency_runs, run_names, run_of

# Runs: one per training seed of an experiment (`seeds:` in the catalog), the first under the
# experiment's name, the others `<name>@seed<N>` (pcl.train.seeds).
TRAINED_RUNS = {tier: [r for n in TRAINED[tier] for r in run_names(CATALOG, tier, n)] for tier in TRAIN_TIERS}
# Runs trained at some tier: the selection plus what it starts from (init / embedding).
TRAINABLE = sorted({r for t in TRAIN_TIERS for n in CATALOG.order(t, TRAINED[t]) for r in run_names(CATALOG, t, n)})
EVALUATED = sorted({r for runs in TRAINED_RUNS.values() for r in runs})


def tier_setting(tier, key, run=None):
    """training.tiers.<tier>.<key>; `runtime: auto` / `mem_mb: auto` of training job `run` come
    from pcl.plan (the numbers `pcl plan` prints for the same configuration)."""
    value = TRAINING["tiers"][tier][key]
    if value == "auto" and key in ("runtime", "mem_mb"):
        if run is None:
            raise ValueError(f"config: training.tiers.{tier}.{key} is auto, which is set per training job only")
        from pcl.plan import job_resources

        return job_resources(config, tier, run, key)
    return value


def trained_results(tiers=None):
    """Result files of the training tiers (default: those of the paper's tables): every selected
    experiment x protocol x dataset."""
    files = []
    for tier in PAPER_TRAIN_TIERS if tiers is None else tiers:
        files += expand(
            "results/{tier}/{experiment}/{protocol}/{dataset}.csv",
            tier=tier,
            experiment=TRAINED_RUNS[tier],
            protocol=tier_setting(tier, "protocols"),
            dataset=tier_setting(tier, "datasets"),
        )
    return files


def run_file(tier, experiment, name="model.safetensors"):
    return f"{RUN_ROOT}/{tier}/{experiment}/{name}"


def evaluated_as(tier, run):
    """`--experiment NAME` of a run's evaluation, with `--train-seed N` when the experiment has
    several seeds at ``tier`` (rows then carry the seed; tables and gains average over seeds).
    A list of words, for `{params.x:q}`."""
    experiment, seed = run_of(CATALOG, tier, run)
    several = len(experiment.seeds(tier)) > 1
    return ["--experiment", experiment.name] + (["--train-seed", str(seed)] if several else [])


def _catalog_path(text):
    """A catalog data path as a workflow path: ``resource:<rel>`` lives under resources/."""
    prefix = "resource:"
    return ROOT / "resources" / text[len(prefix):] if text.startswith(prefix) else Path(text)


DIV2K_MARKER = f"{DATA}/DIV2K/download.json"


def train_inputs(wildcards):
    """What a training job reads: the runs it starts from, and its training images.

    Shipped images (smoke) are listed file by file; a large training set (DIV2K) is named by its
    folders when present, else by the marker of the `download_div2k` rule, which fetches it (or,
    offline, fails naming where to place the archives).  Absent folders that no rule makes are
    left to the trainer, which fails in one line naming the path it needs.
    """
    experiment, _ = run_of(CATALOG, wildcards.tier, wildcards.experiment)
    deps = dependency_runs(CATALOG, wildcards.tier, wildcards.experiment)
    inputs = {f"run_{dep}": run_file(wildcards.tier, run) for dep, run in deps.items()}
    data = experiment.data(wildcards.tier)
    folders = [_catalog_path(data["hr_dir"])]
    if data.get("lr") == "official" and data.get("lr_dir"):
        folders.append(_catalog_path(data["lr_dir"]))
    if all(f.is_dir() for f in folders):
        if str(data["hr_dir"]).startswith("resource:"):
            # the shipped photos the catalog's range selects (1-based, inclusive), file by file
            first, last = data.get("range") or (1, None)
            files = sorted(str(p) for p in folders[0].iterdir() if p.is_file())
            inputs["images"] = files[first - 1 : last]
        else:
            inputs["images"] = [str(f) for f in folders]
    elif {str(f) for f in folders} <= {str(DIV2K_HR), str(DIV2K_LR)}:
        inputs["images"] = [DIV2K_MARKER]
    return inputs


def train_identity(wildcards):
    """Identity of the experiment's fully resolved settings at this tier (pcl.train.config, the
    trainer's own resolution): a param of `train`, so an edit of the catalog re-runs exactly the
    runs it changes (the cells it feeds do not count; the cadence keys do, they change the run's files)."""
    from pcl.train.config import resolve_config, run_identity

    experiment, seed = run_of(CATALOG, wildcards.tier, wildcards.experiment)
    resolved = resolve_config(experiment, wildcards.tier, seed=seed)
    return run_identity(resolved, with_cadence=True)[:16]


def _weights_present():
    """{name: present} of the backbone weight files (pcl.weights imports only the standard library)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pcl.weights import WEIGHTS

    return {name: entry.path.is_file() for name, entry in WEIGHTS.items()}


WEIGHTS_PRESENT = _weights_present()


def metrics_option(tier):
    """`--metrics` of an evaluation of ``tier``: the config's list, without lpips while the AlexNet
    weights are absent (a param: placing the file re-runs the evaluations)."""
    names = config.get("metrics", {}).get(tier, ["psnr", "ssim"])
    if not WEIGHTS_PRESENT["alexnet"]:
        names = [m for m in names if m != "lpips"]
    listed = ",".join(["psnr", "ssim", *[m for m in names if m not in ("psnr", "ssim")]])
    return ["--metrics", listed]


def weights_snapshot():
    """Presence, size and mtime of the backbone weight files: a param of the status rule."""
    from pcl.weights import WEIGHTS

    out = []
    for name, entry in WEIGHTS.items():
        st = entry.path.stat() if entry.path.is_file() else None
        out.append(f"{name}:{st.st_size}:{int(st.st_mtime)}" if st else f"{name}:absent")
    return " ".join(out)


# Figures (`figures:` in the config): the images whose SR outputs are saved, per tier.
FIGURES = config.get("figures", {"images": [], "crop_size": 48, "tiers": []})
FIGURE_DATASETS = sorted({item["dataset"] for item in FIGURES["images"]})
FIGURE_TIERS = [t for t in FIGURES["tiers"] if t in TIERS]


def save_sr_option(tier, experiment, protocol, dataset):
    """`--save-sr DIR --save-sr-images A,B` for the images a figure shows (in the first protocol of
    the tier only: the SR image does not depend on the protocol), else nothing. A list of words."""
    protocols = PROTOCOLS if tier == "bicubic" else (RELEASED_CFG["protocols"] if tier == "released" else tier_setting(tier, "protocols"))
    wanted = tier == "bicubic" or tier in FIGURE_TIERS
    if not wanted or dataset not in FIGURE_DATASETS or protocol != protocols[0]:
        return []
    names = ",".join(item["image"] for item in FIGURES["images"] if item["dataset"] == dataset)
    return ["--save-sr", f"results/{tier}/{experiment}/sr/{dataset}", "--save-sr-images", names]


def figure_image_args():
    """`--image DATASET/IMAGE[@X,Y,SIZE]` of `pcl figures` (the HR folders come from benchmarks.json),
    as a list of words."""
    args = []
    for item in FIGURES["images"]:
        crop = f"@{','.join(str(v) for v in item['crop'])}" if item.get("crop") else ""
        args += ["--image", f"{item['dataset']}/{item['image']}{crop}"]
    return args


# Tables of the trained tiers whose numbers mean something (reports/tables/<tier>.md): mini etc.
TIER_TABLES = [f"reports/tables/{t}.{ext}" for t in PAPER_TRAIN_TIERS if t != "smoke" for ext in ("md", "csv", "tex")]
GAINS_FILES = expand("reports/tables/gains.{ext}", ext=["csv", "md", "tex"])
VERDICT = "reports/verdict.md"


# Fig. 4 (no ground truth): when RealSRSet was placed by hand (`pcl download --dataset RealSRSet`
# says where), the mini tier's baseline and +PCL models are compared on its photos with NIQE.
REAL_DIR = Path(DATA, "RealSRSet")
REAL_MODELS = (
    {"baseline": run_file("mini", "edsr-s-baseline"), "PCL": run_file("mini", "edsr-s-pcl")}
    if REAL_DIR.is_dir() and "mini" in TRAIN_TIERS
    else {}
)
REAL_OPTION = (
    ["--real-dir", str(REAL_DIR), *(w for k, v in REAL_MODELS.items() for w in ("--real-model", f"{k}={v}"))]
    if REAL_MODELS
    else []
)
