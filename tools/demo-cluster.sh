#!/usr/bin/env bash
# make demo: a three-Pi cluster on this machine, step by step with timings.
# Each "Pi" is a network namespace running a coordinator and an agent, with
# its own engine root; the Pis are joined by an underlay bridge in a namespace
# of its own, which also holds a registry (Debian docker-registry) and the
# admin's CLI. The first coordinator is made with `cluster init`, the other two
# join it with coordinator tokens and the three replicate the cluster's state
# with Raft; three agents join with node tokens. A web image pushed with
# `hako push`; a 3-replica web service spread across the Pis, each pulling the
# image and running its replica on its own /24 of the cluster CIDR with a
# published port, each replica answering HTTP, one reaching the others across
# the VXLAN overlay, the routing mesh and service names. Then the leading
# coordinator is killed (kill -9): a new leader, the service still at its
# count and its containers untouched; then the rest of that Pi dies (its agent
# killed, its link down) and its replica runs again on another Pi; the Pi
# comes back (its coordinator catches up) without a duplicate. Everything is
# removed at the end. Addresses: 10.215.0.0/24 (underlay) and 10.88.0.0/16
# (containers), only inside the namespaces this script creates.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${HAKO_BIN_DIR:-$HERE/../.build/release}
export HAKO_MONITOR=$BIN/hako-monitor
W=$(mktemp -d /tmp/hako-demo-cluster.XXXXXX)
TAG=hkd$$
NET=10.215.0
. "$HERE/lib-cluster.sh"
cleanup() {
  local status=$?
  [ $status -ne 0 ] && cl_dump_logs demo-cluster $status
  cl_cleanup
  echo "(torn down: namespaces, containers, cgroups, files)"
}
trap cleanup EXIT
T0=$(now)
step() { printf '\n\033[1m== [%6.2f s] %s\033[0m\n' "$(since "$T0")" "$*"; }
c() { printf '$ hako cluster %s\n' "$*"; ul "$BIN/hako" cluster "$@"; }
cq() { ul "$BIN/hako" cluster "$@"; }
node() { cl_node "$@"; }
running() { node $1 ps --format json | grep -c '"Names":"web\.' || true; }
# The containers of web running on every Pi, by id (each Pi's own hako ps).
containers() { for i in 1 2 3; do node $i ps -q --no-trunc --filter name=web.; done | sort; }
REG=$NET.1:5000
IMAGE=$REG/web:demo
# Every engine here (the admin's, for push and the image's platforms; each
# node's, for pulls) reaches the underlay registry over plain HTTP.
engine_json() { mkdir -p "$1"; printf '{"registries": {"insecure": ["%s"]}}\n' "$REG" > "$1/engine.json"; }
# Each running replica: its node's underlay address and published port, from `service ps`.
replicas() {
  cq service ps web --format json | jq -r 'select(.state == "running") | "\(.nodeName) \(.ports[0] // "")"' |
    while read -r node port; do
      hp=${port#*:}; hp=${hp%%-*}
      echo "$node $(cl_addr "${node#pi}") $hp"
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
reachable() { cq coordinator ls --format json 2>/dev/null | grep -c '"reachable":true' || true; }

step "An underlay: a bridge in namespace $UL ($NET.1: the registry and the admin), and three Pis on it"
cl_underlay
for i in 1 2 3; do
  cl_node_ns $i
  echo "pi$i: namespace $TAG-n$i, $(cl_addr $i)/24"
done

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
wait_for 10 ul bash -c "exec 3<>/dev/tcp/${REG%:*}/${REG#*:}"
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

# The three Pis share this machine: their measured loads are one load sampled
# at different moments, so placement here is by spread alone.
for i in 1 2 3; do
  cl_coordinator_config $i '[scheduler]
cpu_weight = 0
memory_weight = 0'
done
export HAKO_CLUSTER_CREDENTIALS=$W/admin/credentials

step "hako cluster init on pi1: the CA, the coordinator's and the admin's certificates, the database"
"$BIN/hako" cluster init --config "$W/c1.toml" --credentials "$HAKO_CLUSTER_CREDENTIALS"
cl_start_coordinator 1
wait_for 10 cq node ls

step "pi2 and pi3 run coordinators too: each joins with a single-use coordinator token (Raft over mutual TLS)"
for i in 2 3; do
  token=$(cq token --role coordinator -q)
  printf '$ hako coordinator --config c%s.toml --join %s… %s:4270   (on pi%s)\n' "$i" "${token:0:30}" "$(cl_addr 1)" "$i"
  cl_start_coordinator $i --join "$token" "$(cl_addr 1):4270"
  wait_for 30 bash -c "[ \$(nsenter --net=/run/netns/$UL -- $BIN/hako cluster coordinator ls --format json | grep -c '\"reachable\":true') -ge $i ]" ||
    { echo "coordinator $i did not join; it said:"; tail -n 5 "$W/c$i.log"; exit 1; }
done
# The admin's credentials named pi1 alone: the leader names the others, and
# the CLI keeps them, the leader first (it is asked first next time).
cq service ls >/dev/null
echo "the admin's CLI learned all three: $(cat "$HAKO_CLUSTER_CREDENTIALS/coordinator")"
c coordinator ls

step "Three agents join, one on each Pi, each with a single-use node token that pins the cluster's CA"
for i in 1 2 3; do
  cl_agent_config $i pi$i "[labels]
zone = \"$([ $i = 3 ] && echo b || echo a)\""
  engine_json "$W/n$i/root"
  token=$(cq token -q)
  echo "pi$i joins with ${token:0:30}…"
  cl_start_agent $i "$token" "$(cl_addr 1):4270"
done
wait_for 20 bash -c "[ \$(nsenter --net=/run/netns/$UL -- $BIN/hako cluster node ls --format json | grep -c '\"ready\"') = 3 ]" || true
c node ls
if [ "$(cq node ls --format json | grep -c '"ready"')" != 3 ]; then
  echo "not every node is ready; the agents said:"; tail -n 5 "$W"/n*/agent.log; exit 1
fi

step "A web service from the registry, 3 replicas spread across the Pis, port 80 published on each Pi"
c service create --name web --replicas 3 --stop-timeout 1 --limit-memory 32m --publish 80 --ingress 8080:80 --wait "$IMAGE" httpd -f -p 80 -h /www
echo '$ hako cluster service inspect web | jq -c {image, platforms, ports, limits}'
cq service inspect web | jq -c '.spec | {image, platforms, ports, limits}'
c service ps web
echo "containers per Pi (each Pi's own hako ps): pi1=$(running 1) pi2=$(running 2) pi3=$(running 3)"

step "Each replica answers HTTP on its Pi's address (its own address is in its Pi's /24)"
for _ in $(seq 50); do answer_all >/dev/null 2>&1 && break; sleep 0.1; done
answer_all

step "Across the overlay: pi1's replica reaches the others at their own addresses (VXLAN between the Pis)"
one=$(node 1 ps -q | head -1)
for i in 2 3; do
  ip=$(node $i exec "$(node $i ps -q | head -1)" sh -c 'set -- $(ip -4 -o addr show eth0); echo ${4%/*}')
  printf '  pi1 -> %s (pi%s): ' "$ip" "$i"
  node 1 exec "$one" sh -c "printf 'GET /cgi-bin/index HTTP/1.0\r\n\r\n' | nc -w 3 $ip 80 | tail -n 1"
done

step "The routing mesh: port 8080 on every Pi reaches the replicas, round robin, wherever they run"
for i in 1 2 3 1 2 3; do
  printf '  curl http://%s:8080/cgi-bin/index -> ' "$(cl_addr $i)"
  ul curl -sS --max-time 3 "http://$(cl_addr $i):8080/cgi-bin/index" || echo "no answer"
done

step "Service names: pi1's replica asks its Pi's DNS responder for web and web.3"
node 1 exec "$one" sh -c 'nslookup web | grep Address | tail -n +2; nslookup web.3 | grep Address | tail -n +2'

L=$(cl_leader)
[ -n "$L" ] || { echo "no coordinator leads"; exit 1; }
step "The leading coordinator, on pi$L, is killed (kill -9)"
before=$(containers)
cl_kill9 "${CPIDS[$L]}"
t=$(now)
wait_for 10 bash -c "nsenter --net=/run/netns/$UL -- $BIN/hako cluster service ls -q | grep -q ." ||
  { echo "no new leader answers within 10 s"; exit 1; }
echo "a new leader answers after $(since "$t") s (election timeout 750 ms, drawn between it and twice it)"
c coordinator ls
c service ls
sleep 1.5
after=$(containers)
echo "containers per Pi: pi1=$(running 1) pi2=$(running 2) pi3=$(running 3); $( [ -n "$before" ] && [ "$before" = "$after" ] && echo "the same $(echo "$before" | wc -l) containers as before: none stopped, none added" || echo "the containers changed")"

step "Then the rest of pi$L dies: kill -9 of its agent, and its link down (two coordinators of three remain)"
cl_kill9 "${APIDS[$L]}"; cl_link $L down
others=$(for i in 1 2 3; do [ $i != $L ] && echo $i; done)
# The CLI saved the new leader first when it found it: pi$L, cut off, is
# not asked first.
echo "(the admin's CLI asks in this order: $(cat "$HAKO_CLUSTER_CREDENTIALS/coordinator"))"
t=$(now)
moved=0
for _ in $(seq 600); do
  n=0; for i in $others; do n=$((n + $(running $i))); done
  [ $n -ge 3 ] && { moved=1; break; }
  sleep 0.05
done
[ $moved = 1 ] || { echo "the lost replica did not run again within 30 s"; exit 1; }
echo "the lost replica runs again on another Pi after $(since "$t") s (grace period 3 s)"
c node ls
c service ps web
echo "containers per Pi: $(for i in 1 2 3; do printf 'pi%s=%s ' $i "$(running $i)"; done)(pi$L cut off, its old replica still running)"
for _ in $(seq 50); do [ "$(replicas | wc -l)" = 3 ] && answer_all >/dev/null 2>&1 && break; sleep 0.1; done
answer_all

step "pi$L comes back: its coordinator catches up, its agent is told its replica is no longer wanted"
cl_link $L up; cl_start_coordinator $L; cl_start_agent $L
wait_for 20 bash -c "[ \$(nsenter --net=/run/netns/$UL -- $BIN/hako cluster coordinator ls --format json | grep -c '\"reachable\":true') = 3 ]" || true
for _ in $(seq 200); do [ "$(running $L)" = 0 ] && break; sleep 0.1; done
c coordinator ls
c service ps web
echo "containers per Pi: pi1=$(running 1) pi2=$(running 2) pi3=$(running 3) — no duplicate"

step "What happened, as the cluster recorded it"
c events | tail -n 25

step "Tear down"
