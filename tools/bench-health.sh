#!/usr/bin/env bash
# Health check cost (part of make bench), issue 15:
#   1. CPU time of N containers (default 50) running sleep with a 1 s `true`
#      check (Docker's CMD-SHELL form: /bin/sh -c true) against the same
#      containers without one, over the same window (goal: the checks cost
#      <= 2 % of one core). Counted: each monitor's own time and its reaped
#      children's (/proc/PID/stat): the probes are the monitor's children,
#      and its probe helper (hako-probe, a live child: docs/architecture.md,
#      the monitor) is added, so this is all a check costs.
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

TICK=$(getconf CLK_TCK)
# The monitor's probe helper (its live child named hako-probe), if any.
helper_of() { # monitor pid
  local c
  for c in $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
    [ "$(cat "/proc/$c/comm" 2>/dev/null)" = hako-probe ] && echo "$c"
  done
  return 0
}
# CPU seconds so far of every monitor, with its reaped children (the probes)
# and its live probe helper.
cpu_now() {
  local ticks=0 pid t h
  for lock in "$HAKO_RUN_ROOT"/containers/*/monitor.lock; do
    pid=$(cat "$lock")
    # Fields 14-17 of /proc/PID/stat (after the command's closing parenthesis): utime stime cutime cstime.
    t=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13 + $14 + $15}')
    ticks=$((ticks + t))
    for h in $(helper_of "$pid"); do
      t=$(sed 's/.*) //' "/proc/$h/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}')
      ticks=$((ticks + ${t:-0}))
    done
  done
  echo $((ticks * 1000000000 / TICK))
}

measure() { # label, then run flags
  local label=$1; shift
  for i in $(seq "$N"); do "$SETBIN/hako" run -d --network none "$@" bench:health sleep 3600 >/dev/null; done
  sleep 3
  local a b
  a=$(cpu_now); sleep "$WINDOW"; b=$(cpu_now)
  awk -v d=$((b - a)) -v w="$WINDOW" -v l="$SET-$label" 'BEGIN { printf "%s %.4f\n", l, d / 1e9 / w }' >> "$W/cpu"
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
row() { # set, its name in the table
  local without with pss_monitor pss healthy
  without=$(cpu "$1-without"); with=$(cpu "$1-with")
  read -r _ pss_monitor pss healthy <<<"$(grep "^$1 " "$W/pss")"
  printf '| %s | %.2f %% | %.2f %% (%d healthy) | **%.2f %%** | %d KiB | %d KiB |\n' "$2" \
    "$(awk -v x="$without" 'BEGIN { print x * 100 }')" "$(awk -v x="$with" 'BEGIN { print x * 100 }')" "$healthy" \
    "$(awk -v a="$with" -v b="$without" 'BEGIN { print (a - b) * 100 }')" "$pss_monitor" "$pss"
}
printf '\n| %d containers, %d s | CPU without a check | with a 1 s `true` check | the checks'"'"' cost (goal <= 2 %%) | PSS: the monitor | PSS per container, monitor + probe helper (goal <= 512 KiB) |\n|---|---|---|---|---|---|\n' "$N" "$WINDOW"
row new "$BIN"
if [ -n "$BASELINE" ]; then
  row old "$BASELINE"
  awk -v nw="$(cpu new-with)" -v nwo="$(cpu new-without)" -v ow="$(cpu old-with)" -v owo="$(cpu old-without)" \
    'BEGIN { if (ow - owo > 0) printf "\nthe checks'"'"' cost, %s / %s: %.2f\n", "new", "baseline", (nw - nwo) / (ow - owo) }'
fi
