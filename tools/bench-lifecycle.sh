#!/usr/bin/env bash
# Container lifecycle benchmark (part of make bench): hako against its peers in the same run.
#   1. `hako run --rm IMAGE /bin/true` vs `crun run` and `runc run` of a bundle
#      with the same busybox rootfs (goal, issue 19: median <= 1.2x crun's run),
#      wall time (hyperfine: ROUNDS alternated rounds of RUNS runs each; the
#      median of the rounds' ratios) and CPU time (every process of a run, the
#      container's own included, counted in a cgroup: what the machine's load
#      disturbs least). BASELINE_BIN_DIR: another build's binaries (main's),
#      measured the same way in the same run.
#   2. hako-monitor memory: PSS per monitor with 50 containers running sleep
#      (goal: <= 512 KiB each), next to a trivial static C and Swift sleeper
#      (MONITORS=0 leaves it out).
# Peers come from ../shared/tools (SHARED_TOOLS to point elsewhere). Everything
# it creates lives under a temp dir (in BENCH_TMP, default /tmp: the data root
# and the bundle, so both runtimes' files are on that file system), a private
# data root and its own cgroup parent, and is removed at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${HAKO_BIN_DIR:-$REPO/.build/release}
SHARED=${SHARED_TOOLS:-}
for c in "$SHARED" "$REPO/../shared/tools" /work/shared/tools; do
  [ -n "$c" ] && [ -x "$c/make-bundle.sh" ] && { SHARED=$(cd "$c" && pwd); break; }
done
[ -x "${SHARED:-}/make-bundle.sh" ] || { echo "bench: peers' tools not found (set SHARED_TOOLS)" >&2; exit 1; }
RUNS=${RUNS:-30}
ROUNDS=${ROUNDS:-5}
N_MON=${N_MON:-50}

W=$(mktemp -d "${BENCH_TMP:-/tmp}/hako-bench.XXXXXX")
export HAKO_ROOT=$W/root HAKO_RUN_ROOT=$W/run HAKO_CGROUP_PARENT=hako-bench-$$
BASE=${BASELINE_BIN_DIR:-}
CG=hako-bench-cpu-$$
cleanup() {
  set +e
  ids=$("$BIN/hako" ps -aq --no-trunc 2>/dev/null)
  [ -n "$ids" ] && "$BIN/hako" rm -f $ids >/dev/null 2>&1
  for s in "${SLEEPERS[@]:-}"; do [ -n "$s" ] && kill "$s" 2>/dev/null; done
  for d in /sys/fs/cgroup/*/"$HAKO_CGROUP_PARENT" /sys/fs/cgroup/*/"$CG"/* /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG"/* /sys/fs/cgroup/"$CG"; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  rm -rf "$W"
}
SLEEPERS=()
trap cleanup EXIT

echo "== building the bundle and the hako image (same busybox rootfs)"
"$SHARED/make-bundle.sh" --rw --tar "$W/rootfs.tar.gz" "$W/bundle" -- /bin/true >/dev/null
"$BIN/hako" import "$W/rootfs.tar.gz" bench:busybox >/dev/null
# The binaries measured start from the page cache a boot leaves: dropped here,
# faulted in by the runs' own execs. How hako's 21 MB of text came into the
# cache moves a run by 1-3 ms on this VM (a file just written by cp or read
# with read() is held in large folios, one faulted in by exec in 4 KiB pages;
# docs/benchmarks.md, "The binary's page cache"); crun's 0.5 MB does not move.
for b in "$BIN/hako" "$BIN/hako-monitor" ${BASE:+"$BASE/hako" "$BASE/hako-monitor"}; do
  dd if="$b" iflag=nocache count=0 status=none
done

hf() { # name command
  hyperfine --style none --warmup 3 --runs "$RUNS" --export-json "$W/$1.json" -n "$1" "$2" >/dev/null 2>&1 \
    || { echo "bench: $1 failed" >&2; return 1; }
  jq -r '.results[0].median*1000' "$W/$1.json"
}

# Rounds of one block each, alternated (hako, the baseline, crun): on a
# shared VM the machine's speed drifts over seconds, and one block each put
# that drift between the figures compared. Each figure is the median of the
# rounds' medians; the ratio is the median of the rounds' own ratios.
echo "== run of /bin/true ($ROUNDS rounds of $RUNS runs each, alternated, hyperfine medians)"
runc_run=$(hf runc "runc run --bundle $W/bundle hako-bench-runc-\$\$ >/dev/null; runc delete -f hako-bench-runc-\$\$ 2>/dev/null; true")
: > "$W/rounds"
for r in $(seq "$ROUNDS"); do
  h=$(hf hako "$BIN/hako run --rm --network none bench:busybox /bin/true")
  b=-; [ -n "$BASE" ] && b=$(hf base "$BASE/hako run --rm --network none bench:busybox /bin/true")
  # crun 1.8 refuses cgroup v1 hybrid hosts; it runs in a view without the cgroup2 mount.
  c=$("$SHARED/cgv1-view.sh" bash -c "$(declare -f hf); W=$W RUNS=$RUNS hf crun 'crun run --bundle $W/bundle hako-bench-crun-\$\$ >/dev/null'")
  echo "$h $b $c" >> "$W/rounds"
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
hako_run=$(awk '{ print $1 }' "$W/rounds" | median)
[ -n "$BASE" ] && base_run=$(awk '{ print $2 }' "$W/rounds" | median)
crun_run=$(awk '{ print $3 }' "$W/rounds" | median)
hako_ratio=$(awk '{ print $1 / $3 }' "$W/rounds" | median)
[ -n "$BASE" ] && base_ratio=$(awk '{ print $2 / $3 }' "$W/rounds" | median)
round_ratios=$(awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 / $3 }' "$W/rounds")

# CPU time per run: the loop runs in a cgroup of its own that also holds the
# containers' cgroups (HAKO_CGROUP_PARENT, crun's cgroupsPath), so the CLI, the
# monitor, the container's set-up and /bin/true are all counted, as crun's
# process, its child and /bin/true are. cgroup v1 cpuacct (ns) or v2 cpu.stat.
CPU_RUNS=${CPU_RUNS:-$RUNS}
ACCT=
for root in /sys/fs/cgroup/cpuacct /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup; do
  if [ -f "$root/cpuacct.usage" ] || [ -f "$root/cgroup.controllers" ]; then ACCT=$root; break; fi
done
[ -n "$ACCT" ] || { echo "bench-lifecycle: no cgroup hierarchy counts CPU time" >&2; exit 1; }
cg_ns() { if [ -f "$ACCT/$CG/cpuacct.usage" ]; then cat "$ACCT/$CG/cpuacct.usage"; else awk '$1 == "usage_usec" {print $2 * 1000}' "$ACCT/$CG/cpu.stat"; fi; }
jq --arg p "/$CG/crun" '.linux.cgroupsPath = $p' "$W/bundle/config.json" > "$W/config.cpu.json"
mkdir -p "$W/bundle-cpu" && ln -s "$W/bundle/rootfs" "$W/bundle-cpu/rootfs" && mv "$W/config.cpu.json" "$W/bundle-cpu/config.json"
cpu_per_run() { # shell loop body (run CPU_RUNS times in the cgroup), optional wrapper
  mkdir -p "$ACCT/$CG"
  local a b
  a=$(cg_ns)
  ${2:-} sh -c 'echo $$ > '"$ACCT/$CG"'/cgroup.procs; for i in $(seq '"$CPU_RUNS"'); do '"$1"' >/dev/null || exit 1; done'
  for _ in $(seq 50); do [ -n "$(cat "$ACCT/$CG/cgroup.procs" 2>/dev/null)" ] || break; sleep 0.1; done  # the last monitor's clean-up
  b=$(cg_ns)
  awk -v d=$((b - a)) -v n="$CPU_RUNS" 'BEGIN { printf "%.2f", d / n / 1e6 }'
}
echo "== CPU time per run ($CPU_RUNS runs each)"
hako_cpu=$(HAKO_CGROUP_PARENT=$CG/hako cpu_per_run "$BIN/hako run --rm --network none bench:busybox /bin/true")
[ -n "$BASE" ] && base_cpu=$(HAKO_CGROUP_PARENT=$CG/hako cpu_per_run "$BASE/hako run --rm --network none bench:busybox /bin/true")
crun_cpu=$(cpu_per_run "crun run --bundle $W/bundle-cpu hako-bench-crun-cpu" "$SHARED/cgv1-view.sh")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\n| run /bin/true | median ms | vs crun | CPU ms per run | vs crun |\n|---|---|---|---|---|\n'
printf '| hako run --rm (overlay + state + monitor) | %.1f | %.2f | %s | %s |\n' "$hako_run" "$hako_ratio" "$hako_cpu" "$(ratio "$hako_cpu" "$crun_cpu")"
[ -n "$BASE" ] && printf '| hako run --rm, %s | %.1f | %.2f | %s | %s |\n' "$BASE" "$base_run" "$base_ratio" "$base_cpu" "$(ratio "$base_cpu" "$crun_cpu")"
printf '| crun run (cgv1-view) | %.1f | 1.00 | %s | 1.00 |\n' "$crun_run" "$crun_cpu"
printf '| runc run | %.1f | %s | | |\n' "$runc_run" "$(ratio "$runc_run" "$crun_run")"
printf '\nhako run --rm / crun run, each round: %s\n' "$round_ratios"
[ "${MONITORS:-1}" = 0 ] && exit 0

echo
echo "== monitor memory: $N_MON containers running sleep"
for i in $(seq "$N_MON"); do "$BIN/hako" run -d --network none bench:busybox sleep 600 >/dev/null; done
sleep 1
pss_of() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
total=0; count=0
for lock in "$HAKO_RUN_ROOT"/containers/*/monitor.lock; do
  pid=$(cat "$lock"); p=$(pss_of "$pid"); total=$((total + p)); count=$((count + 1))
done
mon_avg=$((total / (count > 0 ? count : 1)))
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$(cat "$(ls "$HAKO_RUN_ROOT"/containers/*/monitor.lock | head -1)")/status")

# Reference points, measured the same way in the same run: 50 static C sleepers.
cat > "$W/sleep.c" <<'EOF'
#include <unistd.h>
int main(void) { for (;;) pause(); }
EOF
c_avg=-
if gcc -O2 -o "$W/csleep" "$W/sleep.c" 2>/dev/null; then
  for i in $(seq "$N_MON"); do "$W/csleep" & SLEEPERS+=($!); done
  sleep 0.5
  t=0; for s in "${SLEEPERS[@]}"; do t=$((t + $(pss_of "$s"))); done
  c_avg=$((t / ${#SLEEPERS[@]}))
  kill "${SLEEPERS[@]}" 2>/dev/null; SLEEPERS=()
fi
# The same with a trivial Swift program (static stdlib): what a Swift monitor would start from.
swift_avg=-
printf 'import Glibc\nwhile true { pause() }\n' > "$W/ssleep.swift"
if swiftc -O -static-stdlib -o "$W/ssleep" "$W/ssleep.swift" 2>/dev/null; then
  for i in $(seq "$N_MON"); do "$W/ssleep" & SLEEPERS+=($!); done
  sleep 0.5
  t=0; for s in "${SLEEPERS[@]}"; do t=$((t + $(pss_of "$s"))); done
  swift_avg=$((t / ${#SLEEPERS[@]}))
  kill "${SLEEPERS[@]}" 2>/dev/null; SLEEPERS=()
fi
printf '\n| per-container monitor (%d running) | PSS KiB | goal |\n|---|---|---|\n' "$count"
printf '| hako-monitor (C, glibc, statically linked) | %d | <= 512 |\n' "$mon_avg"
printf '| trivial C sleeper, same count (floor) | %s | |\n' "$c_avg"
printf '| trivial Swift sleeper (static stdlib), same count | %s | |\n' "$swift_avg"
printf '| hako-monitor RSS (one) | %d | |\n' "$rss"
printf '| podman conmon (published, 10 containers) | ~268-480 | |\n'
echo
ls -l "$BIN/hako" "$BIN/hako-monitor" | awk '{printf "binary %s: %.2f MB\n", $9, $5/1e6}'
