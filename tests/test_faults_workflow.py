"""Hostile paths and machines: the workflow's shell commands and the test-cluster scripts.

* Every value a rule hands to its shell is quoted (`{x:q}`), so a `data_root` with a space, a `'`
  or a `;` is one argument and never a command: the bicubic rules run under such a root, write
  there and nowhere else.
* `workflow/ci/slurm-up.sh` changes the machine only with CI=true or an explicit flag, never
  touches a real cluster's slurm.conf, and records every file it replaces or creates so that
  `slurm-down.sh` undoes exactly that, from the record alone (as after a reboot).

The record logic is exercised in temporary folders (PCL_SLURM_RECORD, PCL_SLURM_ETC,
PCL_SLURM_DIR); the real paths stay the defaults and are only compared before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
CI_DIR = REPO / "workflow" / "ci"
FLAG = "--i-know-this-changes-the-machine"
MARKER = "# written by pcl workflow/ci/slurm-up.sh"  # the marker line of workflow/ci/slurm-record.sh
#: Shell fields that are command prefixes, not values: `python -m pcl` (or torchrun) with the
#: checkout on PYTHONPATH, quoted where it is built (workflow/rules/common.smk, PCL).
COMMAND_PREFIXES = {"params.pcl", "params.launch"}


def _tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (the root itself included) with its mode and content hash, or
    {} when ``root`` does not exist: equal before and after means nothing changed there."""
    if not root.exists():
        return {}
    out = {}
    for path in [root, *sorted(root.rglob("*"))] if root.is_dir() and not root.is_symlink() else [root]:
        st = path.lstat()
        if path.is_symlink():
            content = os.readlink(path)
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = None
        out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, content)
    return out


def _bash(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(["bash", *args], env={**base, **env}, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


# ------------------------------------------------------------------------------- rule shell commands


def test_every_value_a_rule_gives_its_shell_is_quoted(workdir: Path, monkeypatch) -> None:
    # Expected: every `{field}` of every shell command carries the `q` spec, except the two
    # command prefixes; Snakemake's QuotedFormatter then shlex-quotes each word (lists word by word).
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    monkeypatch.chdir(workdir)
    with SnakemakeApi(OutputSettings()) as api:
        rules = list(api.workflow(resource_settings=ResourceSettings(), snakefile=workdir / "Snakefile",
                                  workdir=workdir)._workflow.rules)
    checked, unquoted = 0, []
    for rule in rules:
        if not rule.shellcmd:
            continue
        for _, field, spec, _ in string.Formatter().parse(rule.shellcmd):
            if field is None or field in COMMAND_PREFIXES:
                continue
            checked += 1
            if not (spec or "").endswith("q"):
                unquoted.append(f"{rule.name}: {{{field}}}")
    assert checked > 50, checked  # the rules' shells name dozens of paths and values
    assert not unquoted, unquoted


def _hostile_workdir(tmp_path: Path, make_workdir) -> tuple[Path, str]:
    """A workflow folder whose own path has a space and a `'`, whose data root (relative to it) has
    a space and a `;`, and whose Set5 lies under that root (nothing shipped), so the HR folder, the
    prepared LR folder and benchmarks.json all carry those characters."""
    workdir = make_workdir(tmp_path / "it's a work dir")
    data_root = "data dir;touch pwned"
    config_path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["shipped_benchmarks"] = {}
    config_path.write_text(yaml.safe_dump(config))
    shutil.copytree(REPO / "resources" / "benchmarks" / "Set5" / "HR", workdir / data_root / "benchmarks" / "Set5" / "HR")
    return workdir, data_root


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_data_root_with_a_space_and_a_semicolon_runs_the_bicubic_rules_there(tmp_path: Path, make_workdir) -> None:
    # Expected: the run succeeds, its outputs are under the hostile root, and neither the word
    # before the space ("data") nor the command after the `;` ("pwned") appears anywhere: both
    # would, were any path word-split or run by the shell.
    workdir, data_root = _hostile_workdir(tmp_path, make_workdir)
    config = ("--config", f"data_root={data_root}", "tiers=[bicubic]")
    dry = _snakemake(workdir, "-n", *config)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    target = "results/bicubic/bicubic/matlab/Set5.csv"
    proc = _snakemake(workdir, "--cores", "1", *config, "--", target)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    root = workdir / data_root
    found = json.loads((root / "benchmarks.json").read_text())
    assert (workdir / found["Set5"]["hr_dir"]).resolve() == (root / "benchmarks" / "Set5" / "HR").resolve()
    prepared = root / "prepared" / "Set5" / "x4"
    assert (prepared / "prepare.json").is_file()
    assert len(list((prepared / "LR").iterdir())) == 5  # Set5: five images
    rows = (workdir / target).read_text().splitlines()
    assert len(rows) == 1 + 5, rows  # header + one row per Set5 image
    for folder in (workdir, tmp_path):
        names = {p.name for p in folder.iterdir()}
        assert not names & {"data", "dir", "pwned", "it's", "a"}, sorted(names)
    assert not list(tmp_path.rglob("pwned"))


# ------------------------------------------------------------------------------- the CI cluster scripts


def _system_paths() -> dict[str, dict]:
    # not /run/pcl-slurm: a running test cluster writes its logs there
    return {p: _tree(Path(p)) for p in ("/etc/slurm", "/var/lib/pcl-slurm-ci", "/etc/munge")}


def _fake_machine(tmp_path: Path) -> dict[str, str]:
    return {"PCL_SLURM_ETC": str(tmp_path / "etc" / "slurm"), "PCL_SLURM_RECORD": str(tmp_path / "record"),
            "PCL_SLURM_DIR": str(tmp_path / "run")}


def _refusal_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "refusing to change this machine" in lines[0] and FLAG in lines[0] and "CI=true" in lines[0]
    assert "slurm-down.sh" in lines[0]
    return lines[0]


def test_slurm_up_without_ci_or_the_flag_changes_nothing() -> None:
    # Expected: exit 2 and one line naming what would change (the real paths) and how to allow
    # it; no SLURM, munge or record path differs afterwards.
    before = _system_paths()
    line = _refusal_line(_bash([str(CI_DIR / "slurm-up.sh")], {}))
    for thing in ("/etc/slurm/slurm.conf", "/etc/slurm/gres.conf", "/var/lib/pcl-slurm-ci", "/etc/munge/munge.key"):
        assert thing in line, thing
    assert _system_paths() == before


@pytest.mark.parametrize("ci", ["false", "1", "TRUE", ""])
def test_slurm_up_counts_only_ci_true_as_a_ci_machine(ci: str, tmp_path: Path) -> None:
    # Expected: the same refusal for any other CI value. The paths point into a temporary folder
    # that holds a foreign slurm.conf, so that even a broken check would stop before any change.
    env = {**_fake_machine(tmp_path), "CI": ci}
    etc = Path(env["PCL_SLURM_ETC"])
    etc.mkdir(parents=True)
    (etc / "slurm.conf").write_text("ClusterName=production\n")
    before, system = _tree(tmp_path), _system_paths()
    line = _refusal_line(_bash([str(CI_DIR / "slurm-up.sh")], env))
    assert str(etc / "slurm.conf") in line and env["PCL_SLURM_RECORD"] in line
    assert _tree(tmp_path) == before and _system_paths() == system


def test_slurm_up_rejects_an_unknown_argument() -> None:
    before = _system_paths()
    proc = _bash([str(CI_DIR / "slurm-up.sh"), "--yes"], {"CI": "true"})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "'--yes'" in proc.stderr and FLAG in proc.stderr
    assert _system_paths() == before


def test_slurm_up_leaves_a_real_clusters_configuration_alone(tmp_path: Path) -> None:
    # Expected: a slurm.conf without the marker is a real cluster's: exit 2 naming it, before any
    # package, record or runtime folder is made, even with the flag.
    env = _fake_machine(tmp_path)
    etc = Path(env["PCL_SLURM_ETC"])
    etc.mkdir(parents=True)
    (etc / "slurm.conf").write_text("ClusterName=production\n")
    (etc / "gres.conf").write_text("NodeName=gpu01 Name=gpu File=/dev/nvidia0\n")
    before = _tree(tmp_path)
    proc = _bash([str(CI_DIR / "slurm-up.sh"), FLAG], env)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and f"{etc / 'slurm.conf'} exists" in proc.stderr
    assert "real cluster" in proc.stderr
    assert _tree(tmp_path) == before


def _take_over(env: dict[str, str], *files: Path) -> subprocess.CompletedProcess:
    """What slurm-up.sh does before writing its configuration: record (and back up) each file,
    then write it with the marker; run twice, like two slurm-up calls without a slurm-down."""
    script = (f"source {CI_DIR / 'slurm-record.sh'}\n"
              "for f in \"$@\"; do make_dir \"$(dirname \"$f\")\"; take_over \"$f\"; "
              "printf '%s\\nours\\n' \"$MARKER\" >\"$f\"; done\n"
              "for f in \"$@\"; do take_over \"$f\"; done\n")
    return _bash(["-euo", "pipefail", "-c", script, "take_over", *map(str, files)], env)


def test_slurm_down_after_a_reboot_restores_replaced_files_and_removes_created_ones(tmp_path: Path) -> None:
    # Expected: after the takeover and a "reboot" (no runtime folder, no daemons), slurm-down.sh
    # puts back the admin's gres.conf and cgroup.conf byte for byte with their modes, removes the
    # slurm.conf and the folder it created, and deletes its record: the machine's tree equals the
    # one before.
    env = _fake_machine(tmp_path)
    etc = Path(env["PCL_SLURM_ETC"])
    etc.mkdir(parents=True)
    (etc / "gres.conf").write_text("NodeName=n1 Name=gpu File=/dev/nvidia0\n")
    (etc / "gres.conf").chmod(0o640)
    (etc / "cgroup.conf").write_text("ConstrainCores=yes\n")
    (etc / "cgroup.conf").chmod(0o600)
    before = _tree(tmp_path)
    created = etc / "new.d" / "slurm.conf"
    proc = _take_over(env, etc / "gres.conf", etc / "cgroup.conf", created)
    assert proc.returncode == 0, proc.stderr
    actions = (tmp_path / "record" / "actions").read_text().splitlines()
    # one line per change, none for the second takeover (it must not back up our own file)
    assert actions == [f"backup\t{etc / 'gres.conf'}", f"backup\t{etc / 'cgroup.conf'}",
                       f"created-dir\t{etc / 'new.d'}", f"created\t{created}"], actions
    assert (etc / "gres.conf").read_text().startswith(MARKER)

    assert not Path(env["PCL_SLURM_DIR"]).exists()  # as after a reboot: /run is empty
    down = _bash([str(CI_DIR / "slurm-down.sh")], env)
    assert down.returncode == 0, down.stderr
    for line in (f"restored {etc / 'gres.conf'}", f"restored {etc / 'cgroup.conf'}", f"removed {created}",
                 f"removed {etc / 'new.d'}", "down"):
        assert f"slurm-down: {line}" in down.stderr.splitlines(), (line, down.stderr)
    assert _tree(tmp_path) == before

    again = _bash([str(CI_DIR / "slurm-down.sh")], env)
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr
    assert _tree(tmp_path) == before


def test_slurm_down_removes_its_own_configuration_left_without_a_record(tmp_path: Path) -> None:
    # Expected: a slurm.conf with the marker (an earlier run whose record is gone) is removed; a
    # marker-less file beside it stays untouched.
    env = _fake_machine(tmp_path)
    etc = Path(env["PCL_SLURM_ETC"])
    etc.mkdir(parents=True)
    (etc / "slurm.conf").write_text(f"{MARKER}\nClusterName=pcl-ci\n")
    (etc / "cgroup.conf").write_text("ConstrainCores=yes\n")
    Path(env["PCL_SLURM_DIR"]).mkdir()
    keep = _tree(etc / "cgroup.conf")
    down = _bash([str(CI_DIR / "slurm-down.sh")], env)
    assert down.returncode == 0, down.stderr
    assert not (etc / "slurm.conf").exists() and _tree(etc / "cgroup.conf") == keep
    assert not (tmp_path / "record").exists()


def test_slurm_down_keeps_a_created_file_that_someone_else_rewrote(tmp_path: Path) -> None:
    # Expected: slurm-down.sh removes only what still carries its marker; a file it created but
    # that was rewritten since (marker gone) stays byte for byte, and the line says why.
    env = _fake_machine(tmp_path)
    etc = Path(env["PCL_SLURM_ETC"])
    etc.mkdir(parents=True)
    conf = etc / "slurm.conf"
    assert _take_over(env, conf).returncode == 0
    conf.write_text("ClusterName=production\n")
    keep = _tree(conf)
    down = _bash([str(CI_DIR / "slurm-down.sh")], env)
    assert down.returncode == 0, down.stderr
    assert _tree(conf) == keep
    assert f"slurm-down: kept {conf}: it no longer has the line '{MARKER}'" in down.stderr
    assert not (tmp_path / "record").exists()
