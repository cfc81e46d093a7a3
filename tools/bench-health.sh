#!/usr/bin/env bash
# Health check cost (part of make bench), issue 15:
#   1. CPU time of N containers (default 50) running sleep with a 1 s `true`
#      check (Docker's CMD-SHELL form: /bin/sh -c true) against the same
#      containers without one, over the same window (goal: the checks cost
#      <= 2 % of one core). Counted in nanoseconds: each monitor's own time
#      (/proc/PID/schedstat) and its container's cgroup's (cpuacct.usage, or
#      cpu.stat on cgroup v2): the probe helper (hako-probe:
#      docs/architecture.md, the monitor) and every probe are born there,
#      and the container's own `sleep` costs nothing, so this is all a check
#      costs. (A probe of the fallback path, forked outside the cgroups, is
#      not all counted; none is taken here.)
#      And the CPU a probe costs, in microseconds: the checks' CPU over the
#      probes run in the window (each container's pid namespace counts them:
#      its last pid, the probes being its only new processes), which the
#      machine's load disturbs less than the share of a core.
#   2. hako-monitor PSS with the checks on, its probe helper's added (goal:
#      <= 512 KiB per container).
# BASELINE_BIN_DIR=<dir of other binaries> (e.g. main's) measures those too,
# right after, in the same run, and prints both with their ratio.
# Everything lives under a temp dir, private data roots and cgroup parents of
# its own, and is removed at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${HAKO_BIN_DIR:-$REPO/.build/release}
BASELINE=${BASELINE_BIN_DIR:-}
N=${N_MON:-50}
WINDOW=${WINDOW:-20}

W=$(mktemp -d /tmp/hako-bench-health.XXXXXX)
# use SET BIN: the data root, run root and cgroup parent of one set of binaries.
use() {
    SET=$1 SETBIN=$2
    export HAKO_ROOT=$W/$SET/root HAKO_RUN_ROOT=$W/$SET/run HAKO_CGROUP_PARENT=hako-bench-health-$$-$SET
    export HAKO_MONITOR=$SETBIN/hako-monitor
}
cleanup() {
    set +e
    for set in new old; do
        [ -d "$W/$set" ] || continue
        if [ $set = new ]; then use new "$BIN"; else use old "$BASELINE"; fi
        ids=$("$SETBIN/hako" ps -aq --no-trunc 2>/dev/null)
        [ -n "$ids" ] && "$SETBIN/hako" rm -f $ids >/dev/null 2>&1
        for d in /sys/fs/cgroup/*/"$HAKO_CGROUP_PARENT" /sys/fs/cgroup/"$HAKO_CGROUP_PARENT"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
    done
    rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/rootfs/bin"
cp /bin/busybox "$W/rootfs/bin/"
for a in sh true sleep; do ln -s busybox "$W/rootfs/bin/$a"; done
tar -C "$W/rootfs" -cf "$W/rootfs.tar" .

# The monitor's probe helper (its live child named hako-probe), if any.
helper_of() { # monitor pid
  local c
  for c in $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
    [ "$(cat "/proc/$c/comm" 2>/dev/null)" = hako-probe ] && echo "$c"
  done
  return 0
}
# The last pid of the pid namespace of the container of monitor $1 (read by a
# process of that namespace: one more pid, which the difference takes away).
last_pid_of() {
  local init
  init=$(cut -d' ' -f1 "/proc/$1/task/$1/children" 2>/dev/null)
  [ -n "$init" ] && nsenter -t "$init" -p -- cat /proc/sys/kernel/ns_last_pid 2>/dev/null || echo 0
}
# CPU nanoseconds of container $1's cgroup: its processes, the probe helper
# and every probe (born there), counted by the kernel in ns (the clock ticks of
# /proc/PID/stat are 10 ms, a probe ~0.5 ms).
cgroup_cpu_ns() {
  local v1=/sys/fs/cgroup/cpuacct/$HAKO_CGROUP_PARENT/$1/cpuacct.usage v2=/sys/fs/cgroup/$HAKO_CGROUP_PARENT/$1/cpu.stat
  if [ -r "$v1" ]; then cat "$v1"; elif [ -r "$v2" ]; then awk '$1 == "usage_usec" { print $2 * 1000 }' "$v2"; else echo 0; fi
}
# CPU nanoseconds so far of every monitor (its own: schedstat) and of its
# container's cgroup (the helper and the probes); then the sum of the
# containers' last pids.
cpu_now() {
  local ns=0 pids=0 lock pid id
  for lock in "$HAKO_RUN_ROOT"/containers/*/monitor.lock; do
    pid=$(cat "$lock"); id=$(basename "$(dirname "$lock")")
    pids=$((pids + $(last_pid_of "$pid")))
    ns=$((ns + $(cut -d' ' -f1 "/proc/$pid/schedstat") + $(cgroup_cpu_ns "$id")))
  done
  echo "$ns $pids"
}

measure() { # label, then run flags
  local label=$1; shift
  for i in $(seq "$N"); do "$SETBIN/hako" run -d --network none "$@" bench:health sleep 3600 >/dev/null; done
  sleep 3
  local a b pa pb a0 a1 b0 b1
  # A reading of 50 containers takes seconds on a loaded machine: each
  # container's window runs from its first reading to its second, so the
  # window is taken between the midpoints of the two readings.
  a0=$(date +%s.%N); read -r a pa <<<"$(cpu_now)"; a1=$(date +%s.%N)
  sleep "$WINDOW"
  b0=$(date +%s.%N); read -r b pb <<<"$(cpu_now)"; b1=$(date +%s.%N)
  # Each reading of a last pid took one pid of its own.
  awk -v d=$((b - a)) -v a0="$a0" -v a1="$a1" -v b0="$b0" -v b1="$b1" -v l="$SET-$label" -v p=$((pb - pa - N)) \
    'BEGIN { w = (b0 + b1) / 2 - (a0 + a1) / 2; printf "%s %.4f %d %.2f\n", l, d / 1e9 / w, p, w }' >> "$W/cpu"
}
pss_of() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# Average PSS in KiB: of the monitors alone, and of the monitors with their probe helpers.
pss_avg() {
  local mon=0 all=0 count=0 pid p h
  for lock in "$HAKO_RUN_ROOT"/containers/*/monitor.lock; do
    pid=$(cat "$lock")
    p=$(pss_of "$pid"); mon=$((mon + p)); all=$((all + p))
    for h in $(helper_of "$pid"); do p=$(pss_of "$h"); all=$((all + ${p:-0})); done
    count=$((count + 1))
  done
  [ "$count" -gt 0 ] || count=1
  echo "$((mon / count)) $((all / count))"
}

# One set of binaries: without a check, then with one; PSS and healthy count.
bench_set() { # set, bin dir
  use "$1" "$2"
  mkdir -p "$W/$SET"
  "$SETBIN/hako" import "$W/rootfs.tar" bench:health >/dev/null
  measure without
  "$SETBIN/hako" rm -f $("$SETBIN/hako" ps -aq --no-trunc) >/dev/null
  measure with --health-cmd true --health-interval 1s
  read -r pss_monitor pss <<<"$(pss_avg)"
  echo "$SET $pss_monitor $pss $("$SETBIN/hako" ps -q --filter health=healthy | wc -l)" >> "$W/pss"
  "$SETBIN/hako" rm -f $("$SETBIN/hako" ps -aq --no-trunc) >/dev/null
}

echo "== $N containers without a check, then with a 1 s check, ${WINDOW} s each; load average $(cut -d' ' -f1-3 /proc/loadavg)"
bench_set new "$BIN"
[ -n "$BASELINE" ] && bench_set old "$BASELINE"
echo "== load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

cpu() { awk -v k="$1" '$1 == k {print $2}' "$W/cpu"; }
probes() { awk -v k="$1" '$1 == k {print $3}' "$W/cpu"; }
window() { awk -v k="$1" '$1 == k {print $4}' "$W/cpu"; }
row() { # set, its name in the table
  local without with pss_monitor pss healthy
  without=$(cpu "$1-without"); with=$(cpu "$1-with")
  read -r _ pss_monitor pss healthy <<<"$(grep "^$1 " "$W/pss")"
  printf '| %s | %.2f %% | %.2f %% (%d healthy) | **%.2f %%** | %d | %.0f us | %d KiB | %d KiB |\n' "$2" \
    "$(awk -v x="$without" 'BEGIN { print x * 100 }')" "$(awk -v x="$with" 'BEGIN { print x * 100 }')" "$healthy" \
    "$(awk -v a="$with" -v b="$without" 'BEGIN { print (a - b) * 100 }')" "$(probes "$1-with")" \
    "$(awk -v a="$with" -v b="$without" -v w="$(window "$1-with")" -v p="$(probes "$1-with")" 'BEGIN { print (p > 0 ? (a - b) * w / p * 1e6 : 0) }')" \
    "$pss_monitor" "$pss"
}
printf '\n| %d containers, %d s | CPU without a check | with a 1 s `true` check | the checks'"'"' cost (goal <= 2 %%) | probes | CPU a probe (goal <= %d us) | PSS: the monitor | PSS per container, monitor + probe helper (goal <= 512 KiB) |\n|---|---|---|---|---|---|---|---|\n' "$N" "$WINDOW" "$((20000 / N))"
row new "$BIN"
if [ -n "$BASELINE" ]; then
  row old "$BASELINE"
  awk -v nw="$(cpu new-with)" -v nwo="$(cpu new-without)" -v ow="$(cpu old-with)" -v owo="$(cpu old-without)" \
    -v np="$(probes new-with)" -v op="$(probes old-with)" -v nwin="$(window new-with)" -v owin="$(window old-with)" \
    'BEGIN { if (ow - owo > 0 && np > 0 && op > 0) printf "\nthe checks'"'"' cost, %s / %s: %.2f (a probe: %.2f)\n", "new", "baseline", (nw - nwo) / (ow - owo), ((nw - nwo) * nwin / np) / ((ow - owo) * owin / op) }'
fi
