# tools/lib-cluster.sh: the multi-node cluster on one machine that the demo
# and the cluster benches share. Sourced, not run:
#
#   BIN=… W=$(mktemp -d …) TAG=hkx$$ NET=10.2xx.0
#   . "$HERE/lib-cluster.sh"
#   trap cl_cleanup EXIT
#
# Node i (1, 2, 3…) is a network namespace $TAG-n$i (a Pi) whose eth0 is a
# veth on the underlay bridge, br0 in the namespace $UL, at NET.(10+i)/24; the
# bridge itself is NET.1 (a single coordinator, a registry, the admin's CLI).
# A node's engine root, run root and agent state are under $W/n$i, its cgroup
# parent hako-$TAG-n$i. With several coordinators, coordinator i runs in node
# i's namespace (client port 4270, Raft 4271) with its data in $W/c$i.
# Every address is inside namespaces made here; cl_cleanup ends the processes
# started here (PIDS), removes the nodes' containers, their cgroup parents,
# the namespaces and $W.
: "${BIN:?}" "${W:?}" "${TAG:?}" "${NET:?}"
UL=$TAG-ul
PIDS=()   # every daemon started (ended by cl_cleanup)
NETNS=()  # every namespace made (deleted by cl_cleanup)
APIDS=()  # APIDS[i]: node i's agent
CPIDS=()  # CPIDS[i]: coordinator i (several coordinators)

cl_addr() { echo "$NET.$((10 + $1))"; }

# Bounded waits: wait_for SECONDS COMMAND...
wait_for() {
  local t=$1; shift
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do [ $SECONDS -ge $end ] && return 1; sleep 0.1; done
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# In the underlay's namespace (where the bridge, the registry and the admin are).
ul() { nsenter --net="/run/netns/$UL" -- "$@"; }
# Node i's own hako: its engine root, in its namespace (its bridge, its firewall).
cl_node() { local i=$1; shift; HAKO_ROOT=$W/n$i/root HAKO_RUN_ROOT=$W/n$i/run nsenter --net="/run/netns/$TAG-n$i" -- "$BIN/hako" "$@"; }

cl_underlay() {
  ip netns add "$UL"; NETNS+=("$UL")
  ip -n "$UL" link set lo up; ip -n "$UL" link add br0 type bridge
  ip -n "$UL" addr add "$NET.1/24" dev br0; ip -n "$UL" link set br0 up
}

# Node i's namespace, wired to the underlay, and its directory.
cl_node_ns() {
  local i=$1 ns=$TAG-n$1
  ip netns add "$ns"; NETNS+=("$ns")
  ip -n "$ns" link set lo up
  ip -n "$ns" link add eth0 type veth peer name "ul$i" netns "$UL"
  ip -n "$UL" link set "ul$i" master br0 up
  ip -n "$ns" addr add "$(cl_addr "$i")/24" dev eth0; ip -n "$ns" link set eth0 up
  mkdir -p "$W/n$i"
}

# Node i's link on the underlay: down is a Pi cut off (or dead).
cl_link() { ip -n "$TAG-n$1" link set eth0 "$2"; }

# Node i's agent.toml: cl_agent_config I NAME [MORE TOML LINES]
cl_agent_config() {
  cat > "$W/n$1/agent.toml" <<TOML
state_dir = "$W/n$1/state"
root = "$W/n$1/root"
run_root = "$W/n$1/run"
cgroup_parent = "hako-$TAG-n$1"
name = "$2"
observe_interval = "250ms"
${3:-}
TOML
}

# Node i's agent, in its namespace: cl_start_agent I [TOKEN COORDINATOR] (a join, the first time).
cl_start_agent() {
  local i=$1
  if [ -n "${2:-}" ]; then
    nsenter --net="/run/netns/$TAG-n$i" -- "$BIN/hako" agent --config "$W/n$i/agent.toml" --join "$2" "$3" 2>> "$W/n$i/agent.log" &
  else
    nsenter --net="/run/netns/$TAG-n$i" -- "$BIN/hako" agent --config "$W/n$i/agent.toml" 2>> "$W/n$i/agent.log" &
  fi
  APIDS[$i]=$!; PIDS+=($!)
}

# kill -9 of a daemon started here, and its exit collected.
cl_kill9() { { kill -9 "$1"; wait "$1"; } 2>/dev/null || true; }

# A single coordinator on the underlay bridge: cl_start_underlay_coordinator CONFIG LOG (its pid in CPID).
cl_start_underlay_coordinator() {
  nsenter --net="/run/netns/$UL" -- "$BIN/hako" coordinator --config "$1" 2> "$2" &
  CPID=$!; PIDS+=($!)
}

# Coordinator i's configuration (one of several, on node i): cl_coordinator_config I [MORE TOML LINES]
cl_coordinator_config() {
  cat > "$W/c$1.toml" <<TOML
data_dir = "$W/c$1"
listen = "$(cl_addr "$1"):4270"
raft_id = $1
raft_address = "$(cl_addr "$1"):4271"
${2:-}
TOML
}

# Coordinator i in node i's namespace: cl_start_coordinator I [--join TOKEN ADDR | other options]
cl_start_coordinator() {
  local i=$1; shift
  nsenter --net="/run/netns/$TAG-n$i" -- "$BIN/hako" coordinator --config "$W/c$i.toml" "$@" 2>> "$W/c$i.log" &
  CPIDS[$i]=$!; PIDS+=($!)
}

# Several coordinators' client addresses, comma-separated (the CLI's --coordinator list): cl_coordinators N
cl_coordinators() { local i out=; for i in $(seq 1 "$1"); do out+="${out:+,}$(cl_addr "$i"):4270"; done; echo "$out"; }

# The coordinator that leads (its node's number), as `coordinator ls` says; empty if none does.
cl_leader() {
  ul "$BIN/hako" cluster coordinator ls --format json 2>/dev/null |
    jq -r 'select(.leader == true) | .address' | head -n1 |
    sed -n "s/^${NET//./\\.}\.\([0-9]*\):4270$/\1/p" | awk '{ print $1 - 10 }'
}

# What the daemons said last, on a failure: cl_dump_logs NAME STATUS
cl_dump_logs() {
  echo "$1: failed (status $2); the daemons said:" >&2
  for f in "$W"/*.log "$W"/n*/agent.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 8 "$f" >&2; }; done
}

cl_cleanup() {
  set +e
  local p d i n c ids in
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
  for d in "$W"/n*/; do
    [ -d "$d/root" ] || continue
    i=$(basename "$d"); i=${i#n}; in=()
    [ -e "/run/netns/$TAG-n$i" ] && in=(nsenter --net="/run/netns/$TAG-n$i" --)
    ids=$(HAKO_ROOT=$d/root HAKO_RUN_ROOT=$d/run "${in[@]}" "$BIN/hako" ps -aq --no-trunc 2>/dev/null)
    [ -n "$ids" ] && HAKO_ROOT=$d/root HAKO_RUN_ROOT=$d/run "${in[@]}" "$BIN/hako" rm -f $ids >/dev/null 2>&1
  done
  for c in /sys/fs/cgroup/*/hako-"$TAG"-*; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
  for n in "${NETNS[@]:-}"; do [ -n "$n" ] && ip netns delete "$n" 2>/dev/null; done
  rm -rf "$W"
}
