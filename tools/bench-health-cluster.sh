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
NET=10.216.0
. "$HERE/lib-cluster.sh"
cleanup() {
  local status=$?
  [ $status -ne 0 ] && cl_dump_logs bench-health-cluster $status
  cl_cleanup
}
trap cleanup EXIT

R=$W/rootfs; mkdir -p "$R/bin" "$R/tmp"
cp /bin/busybox "$R/bin/"; for a in sh sleep test touch rm; do ln -s busybox "$R/bin/$a"; done
tar -C "$R" -cf "$W/bb.tar" .

cl_underlay
mkdir -p "$W/co"
cat > "$W/co.toml" <<TOML
data_dir = "$W/co"
listen = "$NET.1:4270"
[scheduler]
cpu_weight = 0
memory_weight = 0
TOML
"$BIN/hako" cluster init --config "$W/co.toml" --credentials "$W/co/admin" >/dev/null
export HAKO_CLUSTER_CREDENTIALS=$W/co/admin
c() { ul "$BIN/hako" cluster "$@"; }
cl_start_underlay_coordinator "$W/co.toml" "$W/co.log"
wait_for 10 c node ls
for i in 1 2 3; do
  cl_node_ns $i
  cl_agent_config $i node$i
  HAKO_ROOT=$W/n$i/root HAKO_RUN_ROOT=$W/n$i/run "$BIN/hako" import "$W/bb.tar" bench:hc >/dev/null
  cl_start_agent $i "$(c token -q)" "$NET.1:4270"
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
  cl_node $i exec "$cid" rm /tmp/ok
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
