#!/usr/bin/env bash
# A real single-node SLURM on this machine runs a tiny study through `freezeframe ablate slurm`
# (the generated sbatch array of `ablate run-cell` tasks, then the report job with
# --dependency=afterok), and its figures are compared with `freezeframe ablate` on the same
# config. Needs root (it starts munged, slurmctld and slurmd) and Debian's slurm-wlm and munge
# (installed if missing). Everything it writes is under $WORK (default: a fresh temp folder);
# the daemons are stopped on exit.
#
#   bash tools/slurm-local.sh [path/to/freezeframe]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
ff=$(realpath "${1:-$repo/target/release/freezeframe}")
WORK=${WORK:-$(mktemp -d /tmp/ff-slurm.XXXXXX)}
mkdir -p "$WORK"
echo "slurm-local: work folder $WORK, binary $ff"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge
fi

# --- munge: the credential daemon SLURM authenticates with -----------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 600 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge
started_munge=no
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
  started_munge=yes
fi

# --- slurm: controller and one node on localhost ----------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
mkdir -p "$WORK/state" "$WORK/spool" "$WORK/log"
export SLURM_CONF="$WORK/slurm.conf"
cat > "$SLURM_CONF" <<EOF
ClusterName=freezeframe-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
stop() {
  [ -f "$WORK/slurmd.pid" ] && kill "$(cat "$WORK/slurmd.pid")" 2>/dev/null || true
  [ -f "$WORK/slurmctld.pid" ] && kill "$(cat "$WORK/slurmctld.pid")" 2>/dev/null || true
  [ "$started_munge" = yes ] && [ -f /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
}
trap stop EXIT
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  sinfo -h -o %t 2>/dev/null | grep -qx idle && break
  sleep 1
done
sinfo

# --- the study: 2 strategies × 2 seeds, a few steps each (the demo's --quick budget) -----------
cat > "$WORK/tiny-study.toml" <<EOF
name = "slurm-tiny"
base = "$repo/configs/calibrated-full.toml"
strategies = ["full", "temporal-only"]
seeds = [0, 1]
[image]
from = "shipped"
[budget]
steps = 6
warmup = 1
batch_size = 2
diag_every = 2
frozen_grad_every = 2
val_every = 3
checkpoint_every = 3
sample_n = 1
sample_steps = 2
[eval]
n = 4
steps = 2
[[claims]]
id = "1"
text = "temporal-only gives too-static videos"
strategy = "temporal-only"
against = ["full"]
metric = "tracked_motion_ratio"
expect = "lower"
EOF
start=$(date +%s)
"$ff" ablate slurm --config "$WORK/tiny-study.toml" --out "$WORK/on-slurm" --partition debug \
  --cpus-per-task "$cpus" --max-parallel 1 --time 00:30:00
bash "$WORK/on-slurm/slurm/submit.sh"
waited=0
while [ -n "$(squeue -h -o %i)" ]; do
  sleep 2
  waited=$((waited + 2))
  if [ "$waited" -gt 1800 ]; then
    squeue; echo "slurm-local: jobs still queued after 30 min" >&2; exit 1
  fi
done
echo "slurm-local: array and report jobs left the queue after $(( $(date +%s) - start )) s"
for f in "$WORK"/on-slurm/slurm/logs/*.out; do echo "== $f"; tail -n 3 "$f"; done
test -f "$WORK/on-slurm/report.html" || { echo "slurm-local: no report: the report job did not run" >&2; exit 1; }

# --- the same study by `ablate` on this machine, and the figures compared ---------------------
"$ff" ablate --config "$WORK/tiny-study.toml" --out "$WORK/local" >/dev/null
python3 - "$WORK/on-slurm/results.json" "$WORK/local/results.json" <<'EOF'
import json, sys
timing = {"step_seconds", "train_seconds", "peak_rss_mib"}
def figures(path):
    r = json.load(open(path))
    runs = {(x["strategy"], x["seed"]): {k: v for k, v in x["values"].items() if k not in timing} for x in r["runs"]}
    return runs, [(v["claim"]["id"], v["outcome"]) for v in r["verdicts"]]
a, b = figures(sys.argv[1]), figures(sys.argv[2])
if a != b:
    sys.exit(f"slurm-local: figures differ\n{a}\n{b}")
print(f"slurm-local: the SLURM study's figures equal ablate's ({len(a[0])} runs, verdicts {a[1]})")
EOF
