#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for testing the cluster profile as users run it.
#
#   sudo bash workflow/ci/slurm-up.sh      # up (idempotent; installs the Debian packages if missing)
#   sudo bash workflow/ci/slurm-down.sh    # down (stops only the daemons this script started)
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
# variable (SLURM_CONF included) from the jobs' environment. A slurm.conf not written by this
# script is never overwritten.
set -euo pipefail

STATE=${PCL_SLURM_DIR:-/run/pcl-slurm}
GPUS=${PCL_SLURM_GPUS:-2}
TIMEOUT=${PCL_SLURM_TIMEOUT:-60}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES=$CONF_DIR/gres.conf
MARKER="# written by pcl workflow/ci/slurm-up.sh"
FAKE_DEVICES=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom)

say() { echo "slurm-up: $*" >&2; }
die() { say "error: $*"; exit 1; }

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

# --- packages -------------------------------------------------------------------------------
PACKAGES=(slurmctld slurmd slurm-client munge)
missing=()
for bin in slurmctld slurmd sbatch squeue scontrol munged munge; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
if ((${#missing[@]})); then
  say "installing ${PACKAGES[*]} (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout 600 apt-get install -y --no-install-recommends "${PACKAGES[@]}" >"${TMPDIR:-/tmp}/pcl-slurm-apt.log" 2>&1; then
    timeout 600 apt-get update >>"${TMPDIR:-/tmp}/pcl-slurm-apt.log" 2>&1 || true
    timeout 600 apt-get install -y --no-install-recommends "${PACKAGES[@]}" >>"${TMPDIR:-/tmp}/pcl-slurm-apt.log" 2>&1 ||
      { tail -n 30 "${TMPDIR:-/tmp}/pcl-slurm-apt.log" >&2; die "apt-get install ${PACKAGES[*]} failed"; }
  fi
fi

mkdir -p "$STATE"
exec 9>"$STATE/lock"  # the daemons are started without it (9>&-): it ends with this script
flock -w "$TIMEOUT" 9 || die "another slurm-up/slurm-down holds $STATE/lock"

# --- already up? ------------------------------------------------------------------------------
if alive "$STATE/slurmctld.pid" slurmctld && alive "$STATE/slurmd.pid" slurmd && ready; then
  say "already up ($(sinfo -h -o '%P %D %T' | tr '\n' ' '))"
  exit 0
fi

if [[ -e $CONF ]] && ! grep -qxF "$MARKER" "$CONF"; then
  die "$CONF exists and was not written by this script; not touching a real cluster's configuration"
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
if ! timeout 10 bash -c 'munge -n | unmunge' >/dev/null 2>&1; then
  install -d -o munge -g munge -m 0700 /etc/munge
  install -d -o munge -g munge -m 0755 /run/munge /var/log/munge /var/lib/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    head -c 1024 /dev/urandom >/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
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
mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d"
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
