#!/usr/bin/env bash
# A three-node cluster on this machine, step by step with timings:
# a coordinator and three agents, each agent in its own network namespace
# with its own engine root, joined by an underlay bridge in a namespace of its
# own; a 3-replica web service spread across them; a node killed (kill -9 of
# its agent and its link down) and its replica back on another node; the node
# healed without a duplicate. Everything is removed at the end.
# Addresses: 10.215.0.0/24, inside the namespaces this script creates.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${HAKO_BIN_DIR:-$HERE/../.build/release}
export HAKO_MONITOR=$BIN/hako-monitor
W=$(mktemp -d /tmp/hako-demo-cluster.XXXXXX)
TAG=hkd$$
UL=$TAG-ul
PIDS=(); NETNS=()
cleanup() {
  set +e
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
  for i in 1 2 3; do
    ids=$(HAKO_ROOT=$W/n$i/root HAKO_RUN_ROOT=$W/n$i/run "$BIN/hako" ps -aq --no-trunc 2>/dev/null)
    [ -n "$ids" ] && HAKO_ROOT=$W/n$i/root HAKO_RUN_ROOT=$W/n$i/run "$BIN/hako" rm -f $ids >/dev/null 2>&1
  done
  for c in /sys/fs/cgroup/*/hako-$TAG-*; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
  for n in "${NETNS[@]:-}"; do [ -n "$n" ] && ip netns delete "$n" 2>/dev/null; done
  rm -rf "$W"
  echo "(torn down: namespaces, containers, cgroups, files)"
}
trap cleanup EXIT
T0=$(date +%s.%N)
step() { printf '\n\033[1m== [%6.2f s] %s\033[0m\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" "$*"; }
c() { printf '$ hako cluster %s\n' "$*"; nsenter --net=/run/netns/$UL -- "$BIN/hako" cluster "$@"; }
cq() { nsenter --net=/run/netns/$UL -- "$BIN/hako" cluster "$@"; }
running() { HAKO_ROOT=$W/n$1/root HAKO_RUN_ROOT=$W/n$1/run "$BIN/hako" ps --format json | grep -c '"Names":"web\.' || true; }

step "An underlay: a bridge in namespace $UL (10.215.0.1: the coordinator)"
ip netns add "$UL"; NETNS+=("$UL")
ip -n "$UL" link set lo up; ip -n "$UL" link add br0 type bridge
ip -n "$UL" addr add 10.215.0.1/24 dev br0; ip -n "$UL" link set br0 up
cat > "$W/coordinator.toml" <<TOML
data_dir = "$W/coordinator"
listen = "10.215.0.1:4270"
TOML
export HAKO_CLUSTER_CREDENTIALS=$W/coordinator/admin

step "hako cluster init: the CA, the coordinator's and the admin's certificates, the database"
"$BIN/hako" cluster init --config "$W/coordinator.toml"
nsenter --net=/run/netns/$UL -- "$BIN/hako" coordinator --config "$W/coordinator.toml" 2> "$W/coordinator.log" &
PIDS+=($!)
for _ in $(seq 50); do cq node ls >/dev/null 2>&1 && break; sleep 0.1; done

R=$W/rootfs; mkdir -p "$R/bin" "$R/www"; cp /bin/busybox "$R/bin/"
for a in sh httpd sleep hostname; do ln -s busybox "$R/bin/$a"; done
echo "hello from a hako cluster" > "$R/www/index.html"
tar -C "$R" -cf "$W/web.tar" .
APIDS=()
start_agent() {
  nsenter --net=/run/netns/$TAG-n$1 -- "$BIN/hako" agent --config "$W/n$1/agent.toml" ${2:+--join "$2" 10.215.0.1:4270} 2>> "$W/n$1/agent.log" &
  APIDS[$1]=$!; PIDS+=($!)
}
step "Three nodes join, each with a single-use token that pins the coordinator's CA"
for i in 1 2 3; do
  ns=$TAG-n$i; ip netns add "$ns"; NETNS+=("$ns")
  ip -n "$ns" link set lo up
  ip -n "$ns" link add eth0 type veth peer name ul$i netns "$UL"
  ip -n "$UL" link set ul$i master br0 up
  ip -n "$ns" addr add 10.215.0.$((10 + i))/24 dev eth0; ip -n "$ns" link set eth0 up
  mkdir -p "$W/n$i"
  cat > "$W/n$i/agent.toml" <<TOML
state_dir = "$W/n$i/state"
root = "$W/n$i/root"
run_root = "$W/n$i/run"
cgroup_parent = "hako-$TAG-n$i"
name = "pi$i"
observe_interval = "250ms"
[labels]
zone = "$([ $i = 3 ] && echo b || echo a)"
TOML
  HAKO_ROOT=$W/n$i/root HAKO_RUN_ROOT=$W/n$i/run "$BIN/hako" import "$W/web.tar" web:demo >/dev/null
  token=$(cq token -q)
  echo "pi$i joins with ${token:0:30}…"
  start_agent $i "$token"
done
for _ in $(seq 100); do [ "$(cq node ls --format json | grep -c '"ready"')" = 3 ] && break; sleep 0.1; done
c node ls
if [ "$(cq node ls --format json | grep -c '"ready"')" != 3 ]; then
  echo "not every node is ready; the agents said:"; tail -n 5 "$W"/n*/agent.log; exit 1
fi

step "A web service, 3 replicas, spread across the nodes"
c service create --name web --replicas 3 --stop-timeout 1 --wait web:demo httpd -f -p 8080 -h /www
c service ps web
echo "containers per node (each node's own hako ps): pi1=$(running 1) pi2=$(running 2) pi3=$(running 3)"

step "pi2 dies: kill -9 of its agent, and its link down"
kill -9 "${APIDS[2]}"; ip -n "$TAG-n2" link set eth0 down
t=$(date +%s.%N)
until [ $(( $(running 1) + $(running 3) )) -ge 3 ]; do sleep 0.05; done
printf 'the lost replica runs again on another node after %.2f s (grace period 3 s)\n' "$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
c node ls
c service ps web
echo "containers per node: pi1=$(running 1) pi2=$(running 2) (cut off, still running) pi3=$(running 3)"

step "pi2 comes back: it is told its replica is no longer wanted"
ip -n "$TAG-n2" link set eth0 up; start_agent 2
for _ in $(seq 200); do [ "$(running 2)" = 0 ] && break; sleep 0.1; done
c service ps web
echo "containers per node: pi1=$(running 1) pi2=$(running 2) pi3=$(running 3) — no duplicate"

step "What happened, as the coordinator recorded it"
c events | tail -n 25

step "Tear down"
