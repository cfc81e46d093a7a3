#!/usr/bin/env bash
# Cluster health replacement (part of make bench), issue 15: three real agents
# in network namespaces on an underlay bridge; a 2-replica service with a
# check (`test -f /tmp/ok`, INTERVAL, RETRIES); in each of TRIALS trials one
# replica's check file is removed, and the time is taken until a replacement
# runs healthy (two healthy tasks, the sick one not among them), as
# `service ps` shows it. Printed: median and max against interval x retries
# (the floor: the check cannot be declared unhealthy sooner), and how many
# replacements landed on another node than the sick task's.
# Everything lives in namespaces, temp dirs and cgroup parents it creates, and
# is removed at the end. Addresses: 10.216.0.0/24 inside its own namespaces.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${HAKO_BIN_DIR:-$REPO/.build/release}
TRIALS=${TRIALS:-10}
INTERVAL=${INTERVAL:-1}
RETRIES=${RETRIES:-2}
export HAKO_MONITOR=$BIN/hako-monitor

W=$(mktemp -d /tmp/hako-bench-hcl.XXXXXX)
TAG=hkh$$
UL=$TAG-ul
PIDS=()
NETNS=()
cleanup() {
  local status=$?
  set +e
  if [ $status -ne 0 ]; then
    echo "bench-health-cluster: failed (status $status); the daemons said:" >&2
    for f in "$W"/*.log "$W"/n*/agent.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 8 "$f" >&2; }; done
  fi
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
  for i in 1 2 3; do
    [ -d "$W/n$i/root" ] || continue
    in=(); [ -e "/run/netns/$TAG-n$i" ] && in=(nsenter --net=/run/netns/$TAG-n$i --)
    ids=$(HAKO_ROOT=$W/n$i/root HAKO_RUN_ROOT=$W/n$i/run "${in[@]}" "$BIN/hako" ps -aq --no-trunc 2>/dev/null)
    [ -n "$ids" ] && HAKO_ROOT=$W/n$i/root HAKO_RUN_ROOT=$W/n$i/run "${in[@]}" "$BIN/hako" rm -f $ids >/dev/null 2>&1
  done
  for c in /sys/fs/cgroup/*/hako-$TAG-*; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
  for n in "${NETNS[@]:-}"; do [ -n "$n" ] && ip netns delete "$n" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT
wait_for() { # seconds command...
  local t=$1; shift
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $end ] && return 1; sleep 0.1; done
}
now() { date +%s.%N; }

R=$W/rootfs; mkdir -p "$R/bin" "$R/tmp"
cp /bin/busybox "$R/bin/"; for a in sh sleep test touch rm; do ln -s busybox "$R/bin/$a"; done
tar -C "$R" -cf "$W/bb.tar" .

ip netns add "$UL"; NETNS+=("$UL")
ip -n "$UL" link set lo up
ip -n "$UL" link add br0 type bridge; ip -n "$UL" addr add 10.216.0.1/24 dev br0; ip -n "$UL" link set br0 up
mkdir -p "$W/co"
cat > "$W/co.toml" <<TOML
data_dir = "$W/co"
listen = "10.216.0.1:4270"
[scheduler]
cpu_weight = 0
memory_weight = 0
TOML
"$BIN/hako" cluster init --config "$W/co.toml" --credentials "$W/co/admin" >/dev/null
export HAKO_CLUSTER_CREDENTIALS=$W/co/admin
c() { nsenter --net=/run/netns/$UL -- "$BIN/hako" cluster "$@"; }
nsenter --net=/run/netns/$UL -- "$BIN/hako" coordinator --config "$W/co.toml" 2> "$W/co.log" & PIDS+=($!)
wait_for 10 c node ls
for i in 1 2 3; do
  ns=$TAG-n$i; ip netns add "$ns"; NETNS+=("$ns")
  ip -n "$ns" link set lo up
  ip -n "$ns" link add eth0 type veth peer name ul$i netns "$UL"
  ip -n "$UL" link set ul$i master br0 up
  ip -n "$ns" addr add 10.216.0.$((10 + i))/24 dev eth0; ip -n "$ns" link set eth0 up
  mkdir -p "$W/n$i"
  cat > "$W/n$i/agent.toml" <<TOML
state_dir = "$W/n$i/state"
root = "$W/n$i/root"
run_root = "$W/n$i/run"
cgroup_parent = "hako-$TAG-n$i"
name = "node$i"
observe_interval = "250ms"
TOML
  HAKO_ROOT=$W/n$i/root HAKO_RUN_ROOT=$W/n$i/run "$BIN/hako" import "$W/bb.tar" bench:hc >/dev/null
  nsenter --net=/run/netns/$ns -- "$BIN/hako" agent --config "$W/n$i/agent.toml" --join "$(c token -q)" 10.216.0.1:4270 2>> "$W/n$i/agent.log" & PIDS+=($!)
done
wait_for 20 bash -c "[ \$(nsenter --net=/run/netns/$UL -- $BIN/hako cluster node ls --format json | grep -c '\"ready\"') -eq 3 ]"

echo "== health: $TRIALS trials of a replica's check made to fail (interval ${INTERVAL}s x retries $RETRIES) -> a replacement running healthy"
c service create --no-resolve-image --name hc --replicas 2 --max-replicas-per-node 1 --restart-delay 0s --stop-timeout 1 \
  --health-cmd "test -f /tmp/ok" --health-interval "${INTERVAL}s" --health-retries "$RETRIES" \
  --wait --timeout 60s bench:hc sh -c "touch /tmp/ok; exec sleep 3600" >/dev/null
healthy_ids() { c service ps hc --format json | jq -r 'select(.state == "running" and .desired == "running" and .health == "healthy") | .id'; }
: > "$W/times.txt"; moved=0
set +e
for t in $(seq "$TRIALS"); do
  wait_for 60 bash -c "[ \$(nsenter --net=/run/netns/$UL -- $BIN/hako cluster service ps hc --format json | jq -r 'select(.state == \"running\" and .health == \"healthy\") | .id' | wc -l) -eq 2 ]" \
    || { echo "trial $t: not two healthy replicas" >&2; continue; }
  task=$(c service ps hc --format json | jq -c 'select(.state == "running" and .health == "healthy")' | head -1)
  id=$(echo "$task" | jq -r .id); cid=$(echo "$task" | jq -r .containerID); node=$(echo "$task" | jq -r .nodeName)
  i=${node#node}
  t0=$(now)
  HAKO_ROOT=$W/n$i/root HAKO_RUN_ROOT=$W/n$i/run nsenter --net=/run/netns/$TAG-n$i -- "$BIN/hako" exec "$cid" rm /tmp/ok
  ok=0
  while [ "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print (b - a < 60) }')" = 1 ]; do
    ids=$(healthy_ids)
    if [ "$(echo "$ids" | grep -c .)" -eq 2 ] && ! echo "$ids" | grep -qx "$id"; then ok=1; break; fi
    sleep 0.05
  done
  dt=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
  [ $ok = 1 ] || { echo "trial $t: no healthy replacement in 60 s" >&2; continue; }
  new=$(c service ps hc --format json | jq -r --arg old "$id" 'select(.state == "running" and .health == "healthy" and .id != $old and .slot == '"$(echo "$task" | jq .slot)"') | .nodeName')
  [ -n "$new" ] && [ "$new" != "$node" ] && moved=$((moved + 1))
  echo "$dt" >> "$W/times.txt"
  echo "   trial $t ($node -> ${new:-?}): $dt s"
done
set -e
n=$(wc -l < "$W/times.txt")
[ "$n" -gt 0 ] || { echo "no trial completed" >&2; exit 1; }
med=$(sort -n "$W/times.txt" | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else printf "%.3f", (a[NR/2] + a[NR/2+1]) / 2 }')
max=$(sort -n "$W/times.txt" | tail -1)
floor=$(awk -v i="$INTERVAL" -v r="$RETRIES" 'BEGIN { printf "%.1f", i * r }')
echo
printf '| cluster health figure | hako | floor | ratio |\n|---|---|---|---|\n'
printf '| check made to fail -> replacement running healthy (%s trials; %s of them on another node) | median %s s, max %s s | interval x retries %s s | %sx (median) |\n' \
  "$n" "$moved" "$med" "$max" "$floor" "$(awk -v a="$med" -v b="$floor" 'BEGIN { printf "%.2f", a / b }')"
