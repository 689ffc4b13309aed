#!/usr/bin/env bash
# Undoes workflow/ci/slurm-up.sh: cancels every job of the test cluster (all users'), stops the
# daemons slurm-up.sh started (named by their pid files under $PCL_SLURM_DIR, nothing else), then
# undoes every change of its record ($PCL_SLURM_RECORD, /var/lib/pcl-slurm-ci; see
# slurm-record.sh): files it created are removed, files it replaced are restored from their
# backups, folders it created are removed when empty, and the record goes. The record is on disk,
# so this works after a reboot too (the daemons are then gone already; nothing started at boot).
# Idempotent: with no record and no runtime folder there is nothing to do. Packages it installed
# stay installed, with their boot units disabled; the last line names the command that removes
# them. The logs stay in $PCL_SLURM_DIR (kept for a failed test's diagnosis; the next slurm-up
# clears them; /run is emptied at boot).
set -euo pipefail

STATE=${PCL_SLURM_DIR:-/run/pcl-slurm}
TIMEOUT=${PCL_SLURM_TIMEOUT:-60}
CONF_DIR=${PCL_SLURM_ETC:-/etc/slurm}
# shellcheck source=workflow/ci/slurm-record.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/slurm-record.sh"
export SLURM_CONF=$CONF_DIR/slurm.conf

say() { echo "slurm-down: $*" >&2; }

if [[ ! -d $RECORD && ! -d $STATE ]]; then
  say "nothing to do (neither $RECORD nor $STATE exists)"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then  # only what the caller owns can be undone without root
  for dir in "$RECORD" "$STATE"; do
    [[ ! -e $dir || -w $dir ]] || { say "error: run as root ($dir belongs to root)"; exit 1; }
  done
fi
mkdir -p "$RECORD"
exec 9>"$RECORD/lock"
flock -w "$TIMEOUT" 9 || { say "error: another slurm-up/slurm-down holds $RECORD/lock"; exit 1; }

pid_of() {  # pid_of NAME: the pid in $STATE/NAME.pid when it names a running process NAME
  local file=$STATE/$1.pid pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(<"/proc/$pid/comm") == "$1" ]] || return 1
  echo "$pid"
}

stop() {  # stop NAME: SIGTERM, then SIGKILL after $TIMEOUT seconds
  local pid
  pid=$(pid_of "$1") || { rm -f "$STATE/$1.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + TIMEOUT))
  while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
  if [[ -e /proc/$pid ]]; then
    say "$1 ($pid) still running after ${TIMEOUT} s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/$1.pid"
  say "stopped $1 ($pid)"
}

live_jobs() { timeout 5 squeue -h -t PENDING,RUNNING,COMPLETING,CONFIGURING,SUSPENDED -o %A 2>/dev/null | sort -u; }

if [[ -d $STATE ]] && pid_of slurmctld >/dev/null; then
  # Jobs first, while slurmd is there to end them: nothing of a test may outlive the cluster.
  # Every user's jobs, named one by one (squeue lists all users; scancel as root cancels any).
  mapfile -t jobs < <(live_jobs)
  if ((${#jobs[@]})); then
    say "cancelling ${#jobs[@]} job(s) of $(timeout 5 squeue -h -o %u 2>/dev/null | sort -u | paste -sd, -)"
    timeout 10 scancel -- "${jobs[@]}" >/dev/null 2>&1 || true
    deadline=$((SECONDS + TIMEOUT))
    while [[ -n $(live_jobs) ]] && ((SECONDS < deadline)); do sleep 0.2; done
  fi
fi

if [[ -d $STATE ]]; then
  stop slurmd
  stop slurmctld
  stop munged
fi

undo_record say
# Configuration left by a run without a record (an earlier version of slurm-up.sh kept none).
for file in "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"; do
  if ours "$file"; then rm -f -- "$file" && say "removed $file"; fi
done
rm -rf -- "$RECORD"
say "down"
