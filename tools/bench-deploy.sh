#!/usr/bin/env bash
# Deployment benchmark (part of make bench): what each long-running part of
# hako writes to storage while idle, the SD card's concern on a Pi. Over a
# fixed window (IDLE, default 60 s) it reads write_bytes (bytes sent to the
# block layer) and syscw (write calls, sockets included) from /proc/PID/io of:
#   - the coordinator with one agent connected (heartbeats every second)
#   - the agent with one task's container running (observing it every second)
#   - the agent again with metrics scraped every second
#   - hako-monitor of an idle container (`hako run -d ... sleep`), and podman's
#     conmon of the same kind of container, measured in the same run (the peer)
# Extrapolated to a day. Everything lives in temp dirs and cgroup parents it
# creates, loopback only, removed at the end.
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
IDLE=${IDLE:-60}
export HAKO_MONITOR=$BIN/hako-monitor

W=$(mktemp -d /tmp/hako-bench-deploy.XXXXXX)
TAG=hkd$$
PIDS=()
PODMAN_CTR=
cleanup() {
  set +e
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0; for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  for d in "$W/node" "$W/local"; do
    [ -d "$d/root" ] || continue
    ids=$(HAKO_ROOT=$d/root HAKO_RUN_ROOT=$d/run "$BIN/hako" ps -aq --no-trunc 2>/dev/null)
    [ -n "$ids" ] && HAKO_ROOT=$d/root HAKO_RUN_ROOT=$d/run HAKO_CGROUP_PARENT=hako-$TAG "$BIN/hako" rm -f $ids >/dev/null 2>&1
  done
  [ -n "$PODMAN_CTR" ] && "${PODMAN[@]}" rm -f -t 0 "$PODMAN_CTR" >/dev/null 2>&1
  # Deepest first; podman's conmon may still be leaving its cgroup after
  # `podman rm` returns, so retry for a bounded 10 s.
  for _ in $(seq 100); do
    left=0
    for c in /sys/fs/cgroup/*/hako-$TAG*/*/* /sys/fs/cgroup/*/hako-$TAG*/* /sys/fs/cgroup/*/hako-$TAG*; do
      [ -d "$c" ] || continue
      rmdir "$c" 2>/dev/null || left=1
    done
    [ $left = 0 ] && break
    sleep 0.1
  done
  rm -rf "$W"
}
trap cleanup EXIT
io() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/io"; }
wait_for() { local t=$1; shift; local end=$((SECONDS + t)); until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $end ] && return 1; sleep 0.1; done; }
per_day() { awk -v b="$1" -v s="$IDLE" 'BEGIN { printf "%d", b * 86400 / s }'; }
human() { awk -v b="$1" 'BEGIN { if (b < 1024) printf "%d B", b; else if (b < 1048576) printf "%.1f KiB", b / 1024; else printf "%.1f MiB", b / 1048576 }'; }

# The same busybox rootfs for hako and podman.
R=$W/rootfs; mkdir -p "$R/bin"; cp /bin/busybox "$R/bin/"; ln -s busybox "$R/bin/sleep"; ln -s busybox "$R/bin/sh"
tar -C "$R" -cf "$W/bb.tar" .

PORT=$((20000 + RANDOM % 20000))
mkdir -p "$W/coord" "$W/node"
cat > "$W/coord.toml" <<TOML
data_dir = "$W/coord"
listen = "127.0.0.1:$PORT"
TOML
"$BIN/hako" cluster init --config "$W/coord.toml" >/dev/null
"$BIN/hako" coordinator --config "$W/coord.toml" 2> "$W/coord.log" & CPID=$!; PIDS+=($CPID)
export HAKO_CLUSTER_CREDENTIALS=$W/coord/admin
wait_for 10 "$BIN/hako" cluster node ls
HAKO_ROOT=$W/node/root HAKO_RUN_ROOT=$W/node/run "$BIN/hako" import "$W/bb.tar" bench:bb >/dev/null
MPORT=$((PORT + 1))
cat > "$W/node/agent.toml" <<TOML
state_dir = "$W/node/state"
root = "$W/node/root"
run_root = "$W/node/run"
cgroup_parent = "hako-$TAG-n"
name = "bench-deploy"
metrics_listen = "$MPORT"
TOML
TOKEN=$("$BIN/hako" cluster token -q)
"$BIN/hako" agent --config "$W/node/agent.toml" --join "$TOKEN" "127.0.0.1:$PORT" 2> "$W/node/agent.log" & APID=$!; PIDS+=($APID)
wait_for 10 bash -c "\"$BIN/hako\" cluster node ls | grep -q Ready"
"$BIN/hako" cluster service create --name idle --replicas 1 --stop-timeout 1 --wait bench:bb sleep 3600 >/dev/null

# A container outside the cluster: its monitor alone.
mkdir -p "$W/local"
export HAKO_ROOT=$W/local/root HAKO_RUN_ROOT=$W/local/run HAKO_CGROUP_PARENT=hako-$TAG
"$BIN/hako" import "$W/bb.tar" bench:bb >/dev/null
CID=$("$BIN/hako" run -d --network none bench:bb sleep 3600)
# Its monitor: the hako-monitor holding the container's run dir.
MPID=
for p in $(pgrep -x hako-monitor); do
  ls -l "/proc/$p/fd" 2>/dev/null | grep -q "$W/local/run/containers/$CID" && MPID=$p
done
unset HAKO_ROOT HAKO_RUN_ROOT HAKO_CGROUP_PARENT

PEER=-
# podman with storage of its own under $W (the host's stays untouched); this
# machine's hard RLIMIT_NOFILE is below podman's default, so ask for what it allows.
PODMAN=(podman --root "$W/podman/storage" --runroot "$W/podman/run" --tmpdir "$W/podman/tmp" --storage-driver vfs
        --cgroup-manager cgroupfs --events-backend file --runtime runc)
if command -v podman >/dev/null; then
  "${PODMAN[@]}" import "$W/bb.tar" localhost/bench-deploy:bb >/dev/null 2>&1 || true
  PODMAN_CTR=$("${PODMAN[@]}" run -d --network none --cgroup-parent "/hako-$TAG-podman" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    localhost/bench-deploy:bb sleep 3600 2>"$W/podman.err" || true)
  [ -n "$PODMAN_CTR" ] && PEER=$("${PODMAN[@]}" inspect --format '{{.State.ConmonPid}}' "$PODMAN_CTR" 2>/dev/null || echo -)
  [ "$PEER" = - ] && echo "   (podman did not start a container: $(tail -1 "$W/podman.err"))"
fi

echo "== settling 15 s, then $IDLE s idle (write_bytes and syscw from /proc/PID/io)"
sleep 15
# CPU time (utime + stime, clock ticks) too: an idle process should not spin.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
declare -A W0 C0 T0
for p in $CPID $APID ${MPID:-} $([ "$PEER" != - ] && echo "$PEER"); do W0[$p]=$(io "$p" write_bytes); C0[$p]=$(io "$p" syscw); T0[$p]=$(ticks "$p"); done
sleep "$IDLE"
declare -A WB CW CPU
for p in "${!W0[@]}"; do
  WB[$p]=$(( $(io "$p" write_bytes) - W0[$p] )); CW[$p]=$(( $(io "$p" syscw) - C0[$p] ))
  CPU[$p]=$(awk -v t=$(( $(ticks "$p") - T0[$p] )) -v hz="$HZ" -v s="$IDLE" 'BEGIN { printf "%.2f%%", t / hz / s * 100 }')
done

# The agent once more, now with its metrics scraped every second.
a0=$(io "$APID" write_bytes)
end=$((SECONDS + IDLE / 2))
scrapes=0
while [ $SECONDS -lt $end ]; do curl -sf "http://127.0.0.1:$MPORT/metrics" >/dev/null && scrapes=$((scrapes + 1)); sleep 1; done
scraped_writes=$(( $(io "$APID" write_bytes) - a0 ))
"$BIN/hako" cluster service rm idle >/dev/null

row() { # name pid
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$(human "${WB[$2]}")" "$(human "$(per_day "${WB[$2]}")")" "${CW[$2]}" "${CPU[$2]}"
}
echo
echo "Disk writes while idle over $IDLE s (write_bytes of /proc/PID/io; per day extrapolated). syscw counts every write call, sockets included."
echo
echo "| process | written in ${IDLE} s | per day | write calls | CPU |"
echo "|---|---:|---:|---:|---:|"
row "hako coordinator (1 node, 1 s heartbeats)" "$CPID"
row "hako agent (1 task running, observed every 1 s)" "$APID"
printf '| hako agent, metrics scraped every 1 s (%d scrapes) | %s | %s | | |\n' "$scrapes" "$(human "$scraped_writes")" "$(human "$(per_day $((scraped_writes * 2)))")"
if [ -n "${MPID:-}" ]; then row "hako-monitor (idle container)" "$MPID"; fi
if [ "$PEER" != - ]; then row "podman conmon (idle container, peer)" "$PEER"; fi
if [ -n "${MPID:-}" ] && [ "$PEER" != - ]; then
  echo
  echo "hako-monitor / conmon: write_bytes $(human "${WB[$MPID]}") vs $(human "${WB[$PEER]}"), write calls ${CW[$MPID]} vs ${CW[$PEER]}, CPU ${CPU[$MPID]} vs ${CPU[$PEER]}"
fi
