#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for testing the cluster profile as users run it.
#
#   sudo CI=true bash workflow/ci/slurm-up.sh   # up (idempotent; installs the Debian packages if missing)
#   sudo bash workflow/ci/slurm-down.sh         # down: undoes what slurm-up.sh did (after a reboot too)
#
# It changes the machine, so it runs only with CI=true (a throw-away CI machine) or with
# --i-know-this-changes-the-machine; otherwise it says what it would change and exits 2.
# What it changes (docs/cluster.md §8): the packages slurmctld, slurmd, slurm-client, munge when
# missing (installed without starting their services; the boot units the installation enables are
# disabled again), /etc/slurm/slurm.conf and /etc/slurm/gres.conf (a file already there is backed
# up first), a munge key only when none exists, and the daemons slurmctld, slurmd (and munged when
# munge does not work yet), started directly as root, never at boot. Every change is recorded in
# $PCL_SLURM_RECORD (/var/lib/pcl-slurm-ci, slurm-record.sh) for slurm-down.sh.
#
# Node `localhost` (127.0.0.1) with this machine's CPUs and memory (`slurmd -C`), partitions `cpu`
# (default) and `gpu`, and PCL_SLURM_GPUS fake GPUs (gres `gpu` backed by /dev/null, /dev/zero, ...):
# SLURM schedules them like real ones (`--gpus=N`, CUDA_VISIBLE_DEVICES=0..N-1 in the job) and
# nothing can use them. Memory is checked against the node size but not consumed (CR_Core), so
# jobs that each ask for most of the node still run side by side.
#
# No accounting database: `sacct` has nothing to report, so Snakemake must be told
# `--slurm-status-command squeue`; finished jobs stay visible to squeue for MinJobAge seconds.
# Evidence of every job: the controller log and the job completion log (one line per job, with
# its partition, state and resources), both under $PCL_SLURM_DIR.
#
# The configuration must be /etc/slurm/slurm.conf: the Snakemake job step removes every SLURM_*
# variable (SLURM_CONF included) from the jobs' environment ($PCL_SLURM_ETC moves it for tests of
# this script only). A slurm.conf not written by this script is never touched: a machine that has
# one belongs to a real cluster.
set -euo pipefail

FLAG=--i-know-this-changes-the-machine
STATE=${PCL_SLURM_DIR:-/run/pcl-slurm}
GPUS=${PCL_SLURM_GPUS:-2}
TIMEOUT=${PCL_SLURM_TIMEOUT:-60}
CONF_DIR=${PCL_SLURM_ETC:-/etc/slurm}
CONF=$CONF_DIR/slurm.conf
GRES=$CONF_DIR/gres.conf
MUNGE_KEY=/etc/munge/munge.key
POLICY=/usr/sbin/policy-rc.d
FAKE_DEVICES=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom)
# shellcheck source=workflow/ci/slurm-record.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/slurm-record.sh"
export SLURM_CONF=$CONF  # this script's own sinfo/scontrol and the daemons it starts

say() { echo "slurm-up: $*" >&2; }
die() { say "error: $*"; exit 1; }
refuse() { say "$*"; exit 2; }

allowed=false
[[ ${CI:-} == true ]] && allowed=true
for arg in "$@"; do
  case $arg in
    "$FLAG") allowed=true ;;
    *) refuse "unknown argument '$arg': the only one is $FLAG" ;;
  esac
done
$allowed || refuse "refusing to change this machine (set CI=true on a throw-away CI machine, or pass $FLAG): it would install slurmctld slurmd slurm-client munge if missing (boot units disabled), write $CONF and $GRES (existing ones backed up to $RECORD), create $MUNGE_KEY if absent, and start slurmctld, slurmd and munged as root; workflow/ci/slurm-down.sh undoes it"
if [[ -e $CONF || -L $CONF ]] && ! ours "$CONF"; then
  refuse "$CONF exists and was not written by this script: this machine belongs to a real cluster; nothing changed (run the SLURM tests on a machine without one)"
fi
[[ $(id -u) -eq 0 ]] || die "run as root (the daemons run as root on this test node)"
((GPUS >= 0 && GPUS <= ${#FAKE_DEVICES[@]})) || die "PCL_SLURM_GPUS must be 0..${#FAKE_DEVICES[@]}"

alive() {  # alive PIDFILE NAME: the pid file names a running process called NAME
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(<"/proc/$pid/comm") == "$2" ]]
}

node_state() { timeout 5 sinfo -h -N -n localhost -o %T 2>/dev/null | head -n1 || true; }

ready() {
  timeout 5 scontrol ping 2>/dev/null | grep -q "is UP" || return 1
  case $(node_state) in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac
}

mkdir -p "$RECORD" "$STATE"
exec 9>"$RECORD/lock"  # the daemons are started without it (9>&-): it ends with this script
flock -w "$TIMEOUT" 9 || die "another slurm-up/slurm-down holds $RECORD/lock"
mkdir -p "$RECORD"  # again: a slurm-down that held the lock removes the record folder at its end

# --- packages -------------------------------------------------------------------------------
# Debian's packages enable their services at boot and start them on installation. Installed here
# with a policy-rc.d that forbids the start (unless the machine has its own policy), then every
# unit the installation enabled is disabled again (and stopped, if systemd started it anyway):
# this script starts the daemons itself, and nothing of it comes back after a reboot.
PACKAGES=(slurmctld slurmd slurm-client munge)
UNITS=(slurmctld slurmd munge)
missing=()
for bin in slurmctld slurmd sbatch squeue scontrol munged munge; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
apt_log=${TMPDIR:-/tmp}/pcl-slurm-apt.log
apt_install() { timeout 600 apt-get install -y --no-install-recommends "${PACKAGES[@]}" >>"$apt_log" 2>&1; }
if ((${#missing[@]})); then
  say "installing ${PACKAGES[*]} (missing: ${missing[*]}); log: $apt_log"
  new_packages=()
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed || new_packages+=("$package")
  done
  for package in "${new_packages[@]}"; do record installed "$package"; done
  if [[ ! -e $POLICY ]]; then
    record created "$POLICY"
    printf '#!/bin/sh\n%s\nexit 101\n' "$MARKER" >"$POLICY"
    chmod 0755 "$POLICY"
  fi
  export DEBIAN_FRONTEND=noninteractive
  : >"$apt_log"
  ok=true
  if ! apt_install; then
    timeout 600 apt-get update >>"$apt_log" 2>&1 || true
    apt_install || ok=false
  fi
  if ours "$POLICY"; then rm -f "$POLICY"; fi
  $ok || { tail -n 30 "$apt_log" >&2; die "apt-get install ${PACKAGES[*]} failed"; }
  for unit in "${UNITS[@]}"; do
    recorded installed "$unit" || continue  # a package that was there before: its units are the admin's
    if [[ -d /run/systemd/system ]] && systemctl is-active --quiet "$unit" 2>/dev/null; then
      systemctl stop "$unit" && record stopped-unit "$unit"
    fi
    if [[ $(systemctl is-enabled "$unit" 2>/dev/null) == enabled ]]; then
      systemctl disable --quiet "$unit" 2>/dev/null && record disabled-unit "$unit"
    elif [[ -x /etc/init.d/$unit ]] && command -v update-rc.d >/dev/null && ls /etc/rc[2-5].d/S??"$unit" >/dev/null 2>&1; then
      update-rc.d "$unit" disable >/dev/null 2>&1 && record disabled-unit "$unit"
    fi
  done
fi

# --- already up? ------------------------------------------------------------------------------
if alive "$STATE/slurmctld.pid" slurmctld && alive "$STATE/slurmd.pid" slurmd && ready; then
  say "already up ($(sinfo -h -o '%P %D %T' | tr '\n' ' '))"
  exit 0
fi

# A half-started cluster of an earlier call: stop what it left (only our own pid files).
for daemon in slurmd slurmctld; do
  if alive "$STATE/$daemon.pid" "$daemon"; then
    kill "$(<"$STATE/$daemon.pid")" || true
    deadline=$((SECONDS + TIMEOUT))
    while alive "$STATE/$daemon.pid" "$daemon" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$STATE/$daemon.pid" "$daemon"; then kill -KILL "$(<"$STATE/$daemon.pid")" || true; fi
  fi
done

# --- munge ------------------------------------------------------------------------------------
# A working munge (the machine's own, or one this script started earlier) is used as it is.
if ! timeout 10 bash -c 'munge -n | unmunge' >/dev/null 2>&1; then
  make_dir /etc/munge -o munge -g munge -m 0700
  for dir in /run/munge /var/log/munge /var/lib/munge; do make_dir "$dir" -o munge -g munge -m 0755; done
  if [[ ! -s $MUNGE_KEY ]]; then  # the munge package makes one; without it, this script does
    if [[ -e $MUNGE_KEY || -L $MUNGE_KEY ]]; then take_over "$MUNGE_KEY"; else record created-key "$MUNGE_KEY"; fi
    (umask 077 && head -c 1024 /dev/urandom >"$MUNGE_KEY")
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
  fi
  rm -f /run/munge/munged.pid
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid 9>&-
  deadline=$((SECONDS + TIMEOUT))
  until [[ -s /run/munge/munged.pid ]] || ((SECONDS >= deadline)); do sleep 0.1; done
  [[ -s /run/munge/munged.pid ]] || die "munged did not start"
  cp /run/munge/munged.pid "$STATE/munged.pid"
  timeout 10 bash -c 'munge -n | unmunge' >/dev/null 2>&1 || die "munge does not work (munged started, but unmunge fails)"
fi

# --- configuration ----------------------------------------------------------------------------
node=$(slurmd -C | head -n1)
[[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
# keep CPUs, Boards, SocketsPerBoard, CoresPerSocket, ThreadsPerCore and RealMemory; name our own
hardware=$(tr ' ' '\n' <<<"$node" | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' ')
gres_node=""
((GPUS > 0)) && gres_node="Gres=gpu:$GPUS"

rm -rf "$STATE/ctld" "$STATE/d"
mkdir -p "$STATE/ctld" "$STATE/d"
make_dir "$CONF_DIR" -m 0755
take_over "$CONF"
take_over "$GRES"
: >"$STATE/slurmctld.log"
: >"$STATE/slurmd.log"
: >"$STATE/jobcomp.log"

cat >"$CONF" <<EOF
$MARKER
ClusterName=pcl-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
KillWait=10
InactiveLimit=0
Waittime=0
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.log
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 $hardware $gres_node State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
EOF

{
  echo "$MARKER"
  for ((i = 0; i < GPUS; i++)); do echo "NodeName=localhost Name=gpu File=${FAKE_DEVICES[$i]}"; done
} >"$GRES"

# --- daemons ----------------------------------------------------------------------------------
started=${EPOCHREALTIME/./}
failed() {
  say "$1"
  tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
  exit 1
}
rm -f "$STATE/slurmctld.pid" "$STATE/slurmd.pid"
slurmctld -i 9>&- || failed "slurmctld did not start"
slurmd -N localhost 9>&- || failed "slurmd did not start"
deadline=$((SECONDS + TIMEOUT))
until ready; do
  ((SECONDS < deadline)) || failed "the node did not become idle within ${TIMEOUT} s (state: $(node_state))"
  sleep 0.2
  for daemon in slurmctld slurmd; do  # a daemon that wrote its pid file and is gone has failed
    if [[ -s $STATE/$daemon.pid ]] && ! alive "$STATE/$daemon.pid" "$daemon"; then
      failed "$daemon stopped (its log says why)"
    fi
  done
  case $(node_state) in
    down* | drain* | fail*) timeout 5 scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
  esac
done
alive "$STATE/slurmctld.pid" slurmctld || die "slurmctld pid file $STATE/slurmctld.pid names no slurmctld"
alive "$STATE/slurmd.pid" slurmd || die "slurmd pid file $STATE/slurmd.pid names no slurmd"
ms=$(((${EPOCHREALTIME/./} - started) / 1000))
say "up in $((ms / 1000)).$(printf %03d $((ms % 1000))) s: $(sinfo -h -o '%P %D %T %G' | tr '\n' ' ')"
