#!/usr/bin/env bash
# A real one-node SLURM cluster on localhost with fake GPUs, for the workflow's SLURM test.
#
#   tests/slurm/cluster.sh install   apt-get install slurm-wlm munge (Debian/Ubuntu, root)
#   tests/slurm/cluster.sh start     write /etc/slurm/{slurm,gres}.conf, start munged, slurmctld, slurmd;
#                                    wait until the node is idle
#   tests/slurm/cluster.sh stop      cancel this cluster's jobs, stop the daemons it started by PID
#
# Settings (environment): SRLM_SLURM_DIR (state, logs, job completion log; default /tmp/srlm-slurm),
# SRLM_SLURM_CPUS (16), SRLM_SLURM_MEM_MB (16000), SRLM_SLURM_GPUS (8), SRLM_SLURM_PARTITION (ci).
# The client tools only read /etc/slurm/slurm.conf inside jobs (the executor strips SLURM_CONF from the
# job step's environment), so the config goes there; start refuses to overwrite a config it did not write.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${SRLM_SLURM_DIR:-/tmp/srlm-slurm}
CPUS=${SRLM_SLURM_CPUS:-16}
MEM=${SRLM_SLURM_MEM_MB:-16000}
GPUS=${SRLM_SLURM_GPUS:-8}
GPUTYPE=fake
PARTITION=${SRLM_SLURM_PARTITION:-ci}
NODE=$(hostname -s)
CONF=/etc/slurm/slurm.conf
MARK="# srlm-repro CI cluster"

die() { echo "cluster.sh: $*" >&2; exit 1; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s; complain on timeout
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "cluster.sh: timed out waiting for $what (logs in $STATE)" >&2
      return 1
    fi
    sleep 0.5
  done
}

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

do_install() {
  [[ $EUID -eq 0 ]] || die "install needs root"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

render() {  # render TEMPLATE DEST
  sed -e "s|@HOST@|$NODE|g; s|@NODE@|$NODE|g; s|@STATE@|$STATE|g; s|@CPUS@|$CPUS|g; s|@MEM@|$MEM|g" \
    -e "s|@GPUS@|$GPUS|g; s|@LASTGPU@|$((GPUS - 1))|g; s|@GPUTYPE@|$GPUTYPE|g; s|@PARTITION@|$PARTITION|g" \
    -e "s|@PORT@|${SRLM_SLURM_PORT:-6817}|g; s|@DPORT@|${SRLM_SLURM_DPORT:-6818}|g" "$1" >"$2"
}

start() {
  [[ $EUID -eq 0 ]] || die "start needs root (slurmd runs jobs as their users)"
  for bin in munged slurmctld slurmd sbatch; do
    command -v "$bin" >/dev/null || die "$bin not found: run '$0 install' first"
  done
  if [[ -e $CONF ]] && ! grep -q "^$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; refusing to replace a real cluster's config"
  fi
  alive "$STATE/slurmctld.pid" && die "already running (state in $STATE); run '$0 stop' first"
  [[ $STATE == /*/* ]] || die "SRLM_SLURM_DIR must be an absolute path below a directory, not '$STATE'"
  rm -rf "$STATE"
  mkdir -p "$STATE"/{ctld,d,fake-gpu} /etc/slurm
  for ((i = 0; i < GPUS; i++)); do ln -s /dev/null "$STATE/fake-gpu/nvidia$i"; done
  render "$HERE/slurm.conf.in" "$CONF"
  render "$HERE/gres.conf.in" /etc/slurm/gres.conf

  # munge: reuse a running daemon, else start one as the munge user and remember its PID.
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$STATE/munged.pid"
    wait_for 10 munged sh -c 'munge -n </dev/null | unmunge' || exit 1
  fi
  slurmctld
  wait_for 20 slurmctld scontrol ping || exit 1
  slurmd
  wait_for 30 "node $NODE idle" sh -c "sinfo -h -n $NODE -o %t | grep -qx idle" || exit 1
  echo "cluster.sh: node $NODE idle ($CPUS CPUs, $MEM MB, $GPUS fake GPUs, partition $PARTITION); state in $STATE"
}

stop() {
  if alive "$STATE/slurmctld.pid"; then
    scancel --partition "$PARTITION" 2>/dev/null || true
    wait_for 20 "jobs to end" sh -c '[ -z "$(squeue -h -o %i)" ]' || true  # the daemons stop anyway
  fi
  for daemon in slurmd slurmctld munged; do
    local pidfile=$STATE/$daemon.pid pid
    if alive "$pidfile"; then
      pid=$(cat "$pidfile")
      kill "$pid"
      wait_for 15 "$daemon to exit" sh -c "! kill -0 $pid" || { kill -KILL "$pid" 2>/dev/null || true; }
    fi
    rm -f "$pidfile"
  done
  if [[ -e $CONF ]] && grep -q "^$MARK" "$CONF"; then rm -f "$CONF" /etc/slurm/gres.conf; fi
  echo "cluster.sh: stopped"
}

case ${1:-} in
  install) do_install ;;
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 install|start|stop" ;;
esac
