#!/usr/bin/env bash
# Stops the one-node SLURM cluster of workflow/ci/slurm-up.sh: cancels its jobs, stops the daemons
# that slurm-up.sh started (named by their pid files under $PCL_SLURM_DIR, nothing else) and
# removes the configuration it wrote. Idempotent: a cluster that is not up is left as it is.
# The logs stay in $PCL_SLURM_DIR (kept for a failed test's diagnosis; the next slurm-up clears them).
set -euo pipefail

STATE=${PCL_SLURM_DIR:-/run/pcl-slurm}
TIMEOUT=${PCL_SLURM_TIMEOUT:-60}
MARKER="# written by pcl workflow/ci/slurm-up.sh"

say() { echo "slurm-down: $*" >&2; }

[[ $(id -u) -eq 0 ]] || { say "error: run as root"; exit 1; }
[[ -d $STATE ]] || { say "nothing to do ($STATE does not exist)"; exit 0; }
exec 9>"$STATE/lock"
flock -w "$TIMEOUT" 9 || { say "error: another slurm-up/slurm-down holds $STATE/lock"; exit 1; }

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

if pid_of slurmctld >/dev/null; then
  # Jobs first, while slurmd is there to end them: nothing of a test may outlive the cluster.
  if timeout 10 squeue -h -o %i 2>/dev/null | grep -q .; then
    timeout 10 scancel -u "$(id -un)" >/dev/null 2>&1 || true
    deadline=$((SECONDS + TIMEOUT))
    while timeout 5 squeue -h -t PENDING,RUNNING,COMPLETING,CONFIGURING -o %i 2>/dev/null | grep -q . &&
      ((SECONDS < deadline)); do
      sleep 0.2
    done
  fi
fi

stop slurmd
stop slurmctld
stop munged

for file in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  if [[ -f $file ]] && grep -qxF "$MARKER" "$file"; then
    rm -f "$file"
  fi
done
say "down"
