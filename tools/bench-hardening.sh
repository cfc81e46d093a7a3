#!/usr/bin/env bash
# Hardening benchmark (part of make bench): what the default isolation costs at start.
#   `hako run --rm IMAGE /bin/true` with the default profile (Docker's 14
#   capabilities, the default seccomp filter from its cache, the device filter,
#   masked paths) vs `--security-opt seccomp=unconfined --cap-add ALL`
#   (goals: wall time <= 1.1x; CPU time of the run's processes <= 1.05x,
#   issue 19). Also: the default profile with a cold filter cache, resource
#   limits, and --userns auto, each against the same unconfined baseline; and a
#   run making 400k system calls, to show what the filter costs per call.
# Everything lives under a temp dir, a private data root and its own cgroup parent.
set -euo pipefail
# In a network namespace of its own: the default bridge its containers (or
# its agent's tasks) are put on, their veth pairs, the nftables table and IP
# forwarding go with the namespace, and the host's network is never touched.
if [ -z "${HAKO_BENCH_OWN_NETNS:-}" ]; then
  exec env HAKO_BENCH_OWN_NETNS=1 unshare --net -- bash "$0" "$@"
fi
ip link set lo up
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${HAKO_BIN_DIR:-$REPO/.build/release}
RUNS=${RUNS:-20}
ROUNDS=${ROUNDS:-3}

W=$(mktemp -d /tmp/hako-bench-hard.XXXXXX)
chmod 711 "$W"  # --userns auto: the container's own user walks the data root
export HAKO_ROOT=$W/root HAKO_RUN_ROOT=$W/run HAKO_CGROUP_PARENT=hako-bench-hard-$$ HAKO_MONITOR=$BIN/hako-monitor
cleanup() {
  set +e
  ids=$("$BIN/hako" ps -aq --no-trunc 2>/dev/null)
  [ -n "$ids" ] && "$BIN/hako" rm -f $ids >/dev/null 2>&1
  for d in /sys/fs/cgroup/*/"$HAKO_CGROUP_PARENT"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT

echo "== a busybox image"
mkdir -p "$W/rootfs"/{bin,etc,tmp,proc,sys,dev}
cp /bin/busybox "$W/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$W/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$W/rootfs/etc/passwd"
tar -C "$W/rootfs" --numeric-owner -cf "$W/rootfs.tar" .
"$BIN/hako" import "$W/rootfs.tar" bench:busybox >/dev/null

H="$BIN/hako run --rm"
declare -A CMD=(
  [baseline]="$H --security-opt seccomp=unconfined --cap-add ALL bench:busybox /bin/true"
  [default]="$H bench:busybox /bin/true"
  [limits]="$H --cpus 0.5 -m 64m --pids-limit 100 bench:busybox /bin/true"
  [userns]="$H --userns auto bench:busybox /bin/true"
  [sysbase]="$H --security-opt seccomp=unconfined --cap-add ALL bench:busybox dd if=/dev/zero of=/dev/null bs=1 count=200000"
  [sysdefault]="$H bench:busybox dd if=/dev/zero of=/dev/null bs=1 count=200000"
)
ORDER=(baseline default cold limits userns sysbase sysdefault)
declare -A SAMPLES
hf() { # name command [prepare]
  local prep=()
  [ -n "${3:-}" ] && prep=(--prepare "$3")
  hyperfine -N --style none --warmup 3 --runs "$RUNS" "${prep[@]}" --export-json "$W/$1.json" -n "$1" "$2" >/dev/null 2>&1 \
    || { echo "bench: $1 failed" >&2; return 1; }
  jq -r '.results[0].times[]' "$W/$1.json"
}
# Rounds interleave the variants so that a busy machine weighs on all alike.
for r in $(seq "$ROUNDS"); do
  echo "== round $r of $ROUNDS ($RUNS runs each)"
  for n in baseline default limits userns sysbase sysdefault; do SAMPLES[$n]+=" $(hf "$n" "${CMD[$n]}" | tr '\n' ' ')"; done
  SAMPLES[cold]+=" $(hf cold "${CMD[default]}" "rm -rf $HAKO_ROOT/seccomp" | tr '\n' ' ')"
done

# CPU time of every process of a run (CLI, monitor, container), which a busy
# machine disturbs far less than wall time: perf's task-clock, A and B alternating.
CPU_RUNS=${CPU_RUNS:-30}
echo "== CPU time, $CPU_RUNS alternating runs each"
: > "$W/cpu-default"; : > "$W/cpu-baseline"
for i in $(seq "$CPU_RUNS"); do
  for n in default baseline; do
    perf stat -x, -e task-clock ${CMD[$n]} 2>&1 >/dev/null | awk -F, '/task-clock/ {print $1}' >> "$W/cpu-$n"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) * 1000}'; }
declare -A MED
for n in "${ORDER[@]}"; do MED[$n]=$(echo "${SAMPLES[$n]}" | median); done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '\n| hako run --rm /bin/true | median ms | vs unconfined | goal |\n|---|---|---|---|\n'
printf '| seccomp=unconfined, --cap-add ALL (baseline) | %.1f | 1.00 | |\n' "${MED[baseline]}"
printf '| default profile (14 caps, seccomp, device filter, masks) | %.1f | %s | <= 1.10 |\n' "${MED[default]}" "$(ratio "${MED[default]}" "${MED[baseline]}")"
printf '| default profile, filter cache emptied before each run | %.1f | %s | |\n' "${MED[cold]}" "$(ratio "${MED[cold]}" "${MED[baseline]}")"
printf '| --cpus 0.5 -m 64m --pids-limit 100 | %.1f | %s | |\n' "${MED[limits]}" "$(ratio "${MED[limits]}" "${MED[baseline]}")"
printf '| --userns auto (idmapped layers) | %.1f | %s | |\n' "${MED[userns]}" "$(ratio "${MED[userns]}" "${MED[baseline]}")"
CPU_DEFAULT=$(tr '\n' ' ' < "$W/cpu-default" | median | awk '{print $1/1000}')
CPU_BASE=$(tr '\n' ' ' < "$W/cpu-baseline" | median | awk '{print $1/1000}')
printf '\n| hako run --rm /bin/true, CPU time of all its processes | median ms | vs unconfined | goal |\n|---|---|---|---|\n'
printf '| seccomp=unconfined, --cap-add ALL | %.1f | 1.00 | |\n' "$CPU_BASE"
printf '| default profile | %.1f | %s | <= 1.05 |\n' "$CPU_DEFAULT" "$(ratio "$CPU_DEFAULT" "$CPU_BASE")"
printf '\n| 400k system calls (dd bs=1 count=200000) | median ms | vs unconfined |\n|---|---|---|\n'
printf '| seccomp=unconfined, --cap-add ALL | %.1f | 1.00 |\n' "${MED[sysbase]}"
printf '| default profile (a tree over ranges of syscall numbers) | %.1f | %s |\n' "${MED[sysdefault]}" "$(ratio "${MED[sysdefault]}" "${MED[sysbase]}")"
