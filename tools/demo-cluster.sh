#!/usr/bin/env bash
# make demo: a three-node cluster on this machine, step by step with timings:
# a coordinator and three agents, each agent in its own network namespace
# with its own engine root, joined by an underlay bridge in a namespace of its
# own; a registry on the underlay (Debian docker-registry) holding a web image
# pushed with `hako push`; a 3-replica web service spread across the nodes,
# each node pulling the image and running its replica on its own /24 of the
# cluster CIDR with a published port, each replica answering HTTP, and one
# reaching the others across the VXLAN overlay at their own addresses; a node
# killed (kill -9 of its agent and its link down) and its replica back on
# another node; the node healed without a duplicate. Everything is removed at
# the end. Addresses: 10.215.0.0/24 (underlay) and 10.88.0.0/16 (containers),
# only inside the namespaces this script creates.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${HAKO_BIN_DIR:-$HERE/../.build/release}
export HAKO_MONITOR=$BIN/hako-monitor
W=$(mktemp -d /tmp/hako-demo-cluster.XXXXXX)
TAG=hkd$$
NET=10.215.0
. "$HERE/lib-cluster.sh"
cleanup() {
  cl_cleanup
  echo "(torn down: namespaces, containers, cgroups, files)"
}
trap cleanup EXIT
T0=$(date +%s.%N)
step() { printf '\n\033[1m== [%6.2f s] %s\033[0m\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" "$*"; }
c() { printf '$ hako cluster %s\n' "$*"; ul "$BIN/hako" cluster "$@"; }
cq() { ul "$BIN/hako" cluster "$@"; }
node() { cl_node "$@"; }
running() { node $1 ps --format json | grep -c '"Names":"web\.' || true; }
REG=10.215.0.1:5000
IMAGE=$REG/web:demo
# Every engine here (the admin's, for push and the image's platforms; each
# node's, for pulls) reaches the underlay registry over plain HTTP.
engine_json() { mkdir -p "$1"; printf '{"registries": {"insecure": ["%s"]}}\n' "$REG" > "$1/engine.json"; }
# Each running replica: its node's underlay address and published port, from `service ps`.
replicas() {
  cq service ps web --format json | jq -r 'select(.state == "running") | "\(.nodeName) \(.ports[0] // "")"' |
    while read -r node port; do
      hp=${port#*:}; hp=${hp%%-*}
      echo "$node 10.215.0.$((10 + ${node#pi})) $hp"
    done
}
# curl from the underlay namespace to each replica's node address and published port.
answer_all() {
  local ok=0 n=0
  while read -r node addr port; do
    n=$((n + 1))
    if body=$(ul curl -sS --max-time 3 "http://$addr:$port/cgi-bin/index"); then
      ok=$((ok + 1)); printf '  curl http://%s:%s/cgi-bin/index (%s) -> %s\n' "$addr" "$port" "$node" "$body"
    else
      printf '  curl http://%s:%s/cgi-bin/index (%s) -> no answer\n' "$addr" "$port" "$node"
    fi
  done < <(replicas)
  [ "$n" -gt 0 ] && [ "$ok" = "$n" ]
}

step "An underlay: a bridge in namespace $UL (10.215.0.1: the coordinator)"
cl_underlay
cat > "$W/coordinator.toml" <<TOML
data_dir = "$W/coordinator"
listen = "10.215.0.1:4270"
TOML
export HAKO_CLUSTER_CREDENTIALS=$W/coordinator/admin

step "A registry on the underlay ($REG), and the web image pushed to it with hako push"
mkdir -p "$W/registry"
cat > "$W/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $W/registry/storage
http:
  addr: $REG
  secret: hako-demo-only
YAML
# Started directly (not through a shell function), so that $! is the registry itself.
nsenter --net=/run/netns/$UL -- docker-registry serve "$W/registry/config.yml" > "$W/registry/log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do ul bash -c "exec 3<>/dev/tcp/${REG%:*}/${REG#*:}" 2>/dev/null && break; sleep 0.1; done
R=$W/rootfs; mkdir -p "$R/bin" "$R/www"; cp /bin/busybox "$R/bin/"
for a in sh httpd sleep hostname ip cat nc tail printf nslookup; do ln -s busybox "$R/bin/$a"; done
cat > "$R/www/index.cgi" <<'CGI'
#!/bin/sh
echo "Content-Type: text/plain"; echo
set -- $(ip -4 -o addr show eth0)
echo "hello from $(hostname) at $4"
CGI
mkdir -p "$R/www/cgi-bin"; mv "$R/www/index.cgi" "$R/www/cgi-bin/index"; chmod +x "$R/www/cgi-bin/index"
printf 'hello from a hako cluster\n' > "$R/www/index.html"
tar -C "$R" -cf "$W/web.tar" .
export HAKO_ROOT=$W/admin/root HAKO_RUN_ROOT=$W/admin/run
engine_json "$HAKO_ROOT"
"$BIN/hako" import "$W/web.tar" "$IMAGE" >/dev/null
printf '$ hako push %s\n' "$IMAGE"
ul "$BIN/hako" push "$IMAGE"

step "hako cluster init: the CA, the coordinator's and the admin's certificates, the database"
"$BIN/hako" cluster init --config "$W/coordinator.toml"
cl_start_underlay_coordinator "$W/coordinator.toml" "$W/coordinator.log"
wait_for 5 cq node ls || true
step "Three nodes join, each with a single-use token that pins the coordinator's CA"
for i in 1 2 3; do
  cl_node_ns $i
  cl_agent_config $i pi$i "[labels]
zone = \"$([ $i = 3 ] && echo b || echo a)\""
  engine_json "$W/n$i/root"
  token=$(cq token -q)
  echo "pi$i joins with ${token:0:30}…"
  cl_start_agent $i "$token" "$NET.1:4270"
done
for _ in $(seq 100); do [ "$(cq node ls --format json | grep -c '"ready"')" = 3 ] && break; sleep 0.1; done
c node ls
if [ "$(cq node ls --format json | grep -c '"ready"')" != 3 ]; then
  echo "not every node is ready; the agents said:"; tail -n 5 "$W"/n*/agent.log; exit 1
fi

step "A web service from the registry, 3 replicas spread across the nodes, port 80 published on each node"
c service create --name web --replicas 3 --stop-timeout 1 --limit-memory 32m --publish 80 --ingress 8080:80 --wait "$IMAGE" httpd -f -p 80 -h /www
echo '$ hako cluster service inspect web | jq -c {image, platforms, ports, limits}'
cq service inspect web | jq -c '.spec | {image, platforms, ports, limits}'
c service ps web
echo "containers per node (each node's own hako ps): pi1=$(running 1) pi2=$(running 2) pi3=$(running 3)"

step "Each replica answers HTTP on its node's address (its own address is in its node's /24)"
for _ in $(seq 50); do answer_all >/dev/null 2>&1 && break; sleep 0.1; done
answer_all

step "Across the overlay: pi1's replica reaches the others at their own addresses (VXLAN between the nodes)"
one=$(node 1 ps -q | head -1)
for i in 2 3; do
  ip=$(node $i exec "$(node $i ps -q | head -1)" sh -c 'set -- $(ip -4 -o addr show eth0); echo ${4%/*}')
  printf '  pi1 -> %s (pi%s): ' "$ip" "$i"
  node 1 exec "$one" sh -c "printf 'GET /cgi-bin/index HTTP/1.0\r\n\r\n' | nc -w 3 $ip 80 | tail -n 1"
done

step "The routing mesh: port 8080 on every node reaches the replicas, round robin, wherever they run"
for i in 1 2 3 1 2 3; do
  printf '  curl http://10.215.0.%s:8080/cgi-bin/index -> ' "$((10 + i))"
  ul curl -sS --max-time 3 "http://10.215.0.$((10 + i)):8080/cgi-bin/index" || echo "no answer"
done

step "Service names: pi1's replica asks its node's DNS responder for web and web.3"
node 1 exec "$one" sh -c 'nslookup web | grep Address | tail -n +2; nslookup web.3 | grep Address | tail -n +2'

step "pi2 dies: kill -9 of its agent, and its link down"
cl_kill9 "${APIDS[2]}"; cl_link 2 down
t=$(date +%s.%N)
for _ in $(seq 600); do [ $(( $(running 1) + $(running 3) )) -ge 3 ] && break; sleep 0.05; done
printf 'the lost replica runs again on another node after %.2f s (grace period 3 s)\n' "$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
c node ls
c service ps web
echo "containers per node: pi1=$(running 1) pi2=$(running 2) (cut off, still running) pi3=$(running 3)"
for _ in $(seq 50); do [ "$(replicas | wc -l)" = 3 ] && answer_all >/dev/null 2>&1 && break; sleep 0.1; done
answer_all

step "pi2 comes back: it is told its replica is no longer wanted"
cl_link 2 up; cl_start_agent 2
for _ in $(seq 200); do [ "$(running 2)" = 0 ] && break; sleep 0.1; done
c service ps web
echo "containers per node: pi1=$(running 1) pi2=$(running 2) pi3=$(running 3) — no duplicate"

step "What happened, as the coordinator recorded it"
c events | tail -n 25

step "Tear down"
