#!/usr/bin/env bash
# Coordinators on Raft, the cluster's side (part of make bench), issue 14.
# Beside tools/bench-raft.sh (leader kill -9 -> a new leader answering):
#   1. three coordinators joined with coordinator tokens (mutual TLS,
#      loopback) and 10 simulated nodes (hako-cluster-bench agents: the real
#      agent code, an in-memory runtime, real mutual TLS) with a service of
#      1,000 tasks: each coordinator's RSS when idle (goal <= 30 MB), beside
#      one coordinator alone with the same nodes and tasks in the same run;
#   2. the same three idle for IDLE seconds (default 120): the bytes each
#      coordinator wrote to storage (/proc/PID/io write_bytes), extrapolated
#      to 10 minutes (goal ~0); the writes while the 1,000 tasks were placed
#      show that the measure sees writes;
#   3. CHANGES (default 10,000) changes committed one after another (a node's
#      label: one store batch, one Raft entry each): every 1,000, each
#      coordinator's Raft directory (log segments and snapshots) and its
#      database; goal: bounded (snapshots every 1,024 entries, 128 kept
#      behind), not growing with the changes;
#   4. a Pi lost with the leader: three Pis in network namespaces
#      (tools/lib-cluster.sh), each a coordinator and an agent, a 3-replica
#      service one per Pi; in each of TRIALS trials the leading coordinator
#      and its Pi's agent are killed (kill -9) and its link goes down in the
#      same second; the time until the lost replica runs on another Pi, by the
#      other Pis' own `hako ps` (goal p99 <= 6 s; floor: an election, 0.75 to
#      1.5 s with the default timeout, then the grace period, 3 s, which a
#      new leader starts afresh for every node). The Pi comes back between trials.
# Everything lives in namespaces, temp dirs and cgroup parents it creates, and
# is removed at the end. Addresses: loopback, and 10.217.0.0/24 inside its own
# namespaces.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${HAKO_BIN_DIR:-$REPO/.build/release}
TRIALS=${TRIALS:-10}
IDLE=${IDLE:-120}
CHANGES=${CHANGES:-10000}
export HAKO_MONITOR=$BIN/hako-monitor

if [ -z "${HAKO_CLUSTER_BENCH:-}" ]; then
  echo "== building hako-cluster-bench (release)"
  (cd "$REPO" && swift build -c release --static-swift-stdlib --product hako-cluster-bench 2>&1 | tail -1)
fi
BENCH=${HAKO_CLUSTER_BENCH:-$REPO/.build/release/hako-cluster-bench}

W=$(mktemp -d /tmp/hako-bench-ha.XXXXXX)
TAG=hka$$
NET=10.217.0
. "$HERE/lib-cluster.sh"
cleanup() {
  local status=$?
  [ $status -ne 0 ] && cl_dump_logs bench-ha $status
  cl_cleanup
}
trap cleanup EXIT
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
wbytes() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
pct() { sort -n "$1" | awk -v q="$2" '{a[NR]=$1} END { i=int(NR*q+0.999); if (i<1) i=1; if (i>NR) i=NR; print a[i] }'; }
echo "load average at the start: $(load)"

# ------------------------------------------- 1. memory with 10 nodes, 1,000 tasks
BASE=$((20000 + RANDOM % 20000))
H() { "$BIN/hako" "$@"; }
# Coordinator i on loopback: client port BASE+i, Raft BASE+10+i.
loop_config() { # i dir
  cat > "$2/c$1.toml" <<TOML
data_dir = "$2/c$1"
listen = "127.0.0.1:$((BASE + $1))"
raft_id = $1
raft_address = "127.0.0.1:$((BASE + 10 + $1))"
TOML
}
declare -A LPID
start_loop() { # i dir [options]
  local i=$1 d=$2; shift 2
  "$BIN/hako" coordinator --config "$d/c$i.toml" "$@" 2>> "$d/c$i.log" &
  LPID[$d.$i]=$!; PIDS+=($!)
}
ready_nodes() { H cluster node ls --format json | grep -c '"ready"'; }
# The service of 1,000 tasks on 10 simulated nodes, against the coordinators of $1 (credentials in $1/admin).
load_cluster() { # dir leader-address
  "$BENCH" agents --coordinator "$2" --credentials "$1/admin" --state "$1/sim" --nodes 10 > "$1/sim.log" 2>&1 &
  SIM=$!; PIDS+=($SIM)
  wait_for 60 bash -c "[ \$(HAKO_CLUSTER_CREDENTIALS=$1/admin $BIN/hako cluster node ls --format json | grep -c '\"ready\"') -eq 10 ]"
  H cluster service create --no-resolve-image --name sim --replicas 1000 --wait --timeout 180s sim:latest >/dev/null
}

echo "== one coordinator, 10 simulated nodes, 1,000 tasks (the same run's baseline)"
ONE=$W/one; mkdir -p "$ONE"
cat > "$ONE/c1.toml" <<TOML
data_dir = "$ONE/c1"
listen = "127.0.0.1:$((BASE + 30))"
TOML
H cluster init --config "$ONE/c1.toml" --credentials "$ONE/admin" >/dev/null
export HAKO_CLUSTER_CREDENTIALS=$ONE/admin
start_loop 1 "$ONE"
wait_for 10 H cluster node ls
load_cluster "$ONE" "127.0.0.1:$((BASE + 30))"
sleep 15
one_rss=$(rss "${LPID[$ONE.1]}")
kill "$SIM" "${LPID[$ONE.1]}"; wait "$SIM" "${LPID[$ONE.1]}" 2>/dev/null || true

echo "== three coordinators (joined with coordinator tokens, loopback), 10 simulated nodes, 1,000 tasks"
HA=$W/ha; mkdir -p "$HA"
for i in 1 2 3; do loop_config $i "$HA"; done
H cluster init --config "$HA/c1.toml" --credentials "$HA/admin" >/dev/null
export HAKO_CLUSTER_CREDENTIALS=$HA/admin
start_loop 1 "$HA"
wait_for 10 H cluster node ls
for i in 2 3; do
  start_loop $i "$HA" --join "$(H cluster token --role coordinator -q)" "127.0.0.1:$((BASE + 1))"
  wait_for 30 bash -c "[ \$(HAKO_CLUSTER_CREDENTIALS=$HA/admin $BIN/hako cluster coordinator ls --format json | grep -c '\"reachable\":true') -ge $i ]"
done
echo "127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 3))" > "$HA/admin/coordinator"
leader=$(H cluster coordinator ls --format json | jq -r 'select(.leader == true) | .address' | head -n1)
[ -n "$leader" ] || { echo "no leader among the three coordinators" >&2; exit 1; }
echo "   leader: $leader"
for i in 1 2 3; do b0[$i]=$(wbytes "${LPID[$HA.$i]}"); done
t0=$(now)
load_cluster "$HA" "$leader"
place_s=$(since "$t0")
sleep 2
for i in 1 2 3; do busy[$i]=$(( $(wbytes "${LPID[$HA.$i]}") - b0[$i] )); done
sleep 15
for i in 1 2 3; do ha_rss[$i]=$(rss "${LPID[$HA.$i]}"); done

# ------------------------------------------------------------- 2. idle writes
echo "   idle for $IDLE s (disk writes from /proc/PID/io of each coordinator; load $(load))"
for i in 1 2 3; do w0[$i]=$(wbytes "${LPID[$HA.$i]}"); done
sleep "$IDLE"
for i in 1 2 3; do
  idle[$i]=$(( $(wbytes "${LPID[$HA.$i]}") - w0[$i] ))
  per10[$i]=$(awk -v b="${idle[$i]}" -v s="$IDLE" 'BEGIN { printf "%d", b * 600 / s }')
  ha_rss_idle[$i]=$(rss "${LPID[$HA.$i]}")
done

# ------------------------------------------------------- 3. log and snapshots
echo "== $CHANGES changes committed one after another (a node's label), sizes every 1,000 (load $(load))"
sizes() { # the Raft directory and the database (with its WAL) of each coordinator, in kB
  local i out=
  for i in 1 2 3; do
    out+="$(du -sk "$HA/c$i/raft" | cut -f1) $(cat "$HA/c$i"/cluster.db* | wc -c | awk '{ printf "%d", $1 / 1024 }') "
  done
  echo "$out"
}
echo "0 $(sizes)" > "$W/sizes.txt"
t0=$(now)
done_changes=0
while [ $done_changes -lt "$CHANGES" ]; do
  n=$(( CHANGES - done_changes < 1000 ? CHANGES - done_changes : 1000 ))
  "$BENCH" changes --coordinator "$leader" --credentials "$HA/admin" --node sim-0 --count $n --from $done_changes >> "$W/changes.log"
  done_changes=$((done_changes + n))
  echo "$done_changes $(sizes)" | tee -a "$W/sizes.txt" | awk '{ printf "   %5d changes: raft dirs %s, %s, %s kB; databases %s, %s, %s kB\n", $1, $2, $4, $6, $3, $5, $7 }'
done
changes_s=$(since "$t0")
rate=$(awk -v n="$CHANGES" -v s="$changes_s" 'BEGIN { printf "%d", n / s }')
# The largest Raft directory of any coordinator after the first 2,000 changes, and at the end.
raft_max=$(awk '$1 >= 2000 { for (i = 2; i <= 6; i += 2) if ($i > m) m = $i } END { print m + 0 }' "$W/sizes.txt")
raft_min=$(awk '$1 >= 2000 { for (i = 2; i <= 6; i += 2) if (m == "" || $i < m) m = $i } END { print m + 0 }' "$W/sizes.txt")
raft_end=$(tail -n1 "$W/sizes.txt" | awk '{ print $2 ", " $4 ", " $6 }')
db_end=$(tail -n1 "$W/sizes.txt" | awk '{ print $3 ", " $5 ", " $7 }')
snaps=$(for i in 1 2 3; do ls "$HA/c$i/raft" | grep -c '^snapshot-.*meta$' || true; done | paste -sd/)
segs=$(for i in 1 2 3; do ls "$HA/c$i/raft" | grep -c -E '^[0-9]+-[0-9]+$|^open-' || true; done | paste -sd/)
for i in 1 2 3; do kill "${LPID[$HA.$i]}" 2>/dev/null; done
kill "$SIM" 2>/dev/null; wait 2>/dev/null || true

# --------------------------------------------------- 4. a Pi lost with the leader
echo "== a Pi lost with the leader: 3 Pis in network namespaces, each a coordinator and an agent; $TRIALS trials (load $(load))"
R=$W/rootfs; mkdir -p "$R/bin"; cp /bin/busybox "$R/bin/"; ln -s busybox "$R/bin/sleep"; ln -s busybox "$R/bin/sh"
tar -C "$R" -cf "$W/bb.tar" .
cl_underlay
export HAKO_CLUSTER_CREDENTIALS=$W/pis/admin
c() { ul "$BIN/hako" cluster "$@"; }
for i in 1 2 3; do
  cl_node_ns $i
  # The Pis share this machine: placement by spread alone (their sampled loads differ).
  cl_coordinator_config $i '[scheduler]
cpu_weight = 0
memory_weight = 0'
  cl_agent_config $i node$i
  HAKO_ROOT=$W/n$i/root HAKO_RUN_ROOT=$W/n$i/run "$BIN/hako" import "$W/bb.tar" bench:bb >/dev/null
done
H cluster init --config "$W/c1.toml" --credentials "$HAKO_CLUSTER_CREDENTIALS" >/dev/null
cl_start_coordinator 1
wait_for 10 c node ls
reachable() { c coordinator ls --format json 2>/dev/null | grep -c '"reachable":true' || true; }
for i in 2 3; do
  cl_start_coordinator $i --join "$(c token --role coordinator -q)" "$(cl_addr 1):4270"
  wait_for 30 bash -c "[ \$(nsenter --net=/run/netns/$UL -- $BIN/hako cluster coordinator ls --format json | grep -c '\"reachable\":true') -ge $i ]"
done
cl_coordinators 3 > "$HAKO_CLUSTER_CREDENTIALS/coordinator"
for i in 1 2 3; do cl_start_agent $i "$(c token -q)" "$(cl_addr 1):4270"; done
all_ready() { [ "$(c node ls --format json | grep -c '"ready"')" -eq 3 ]; }
wait_for 30 all_ready
running_on() { cl_node $1 ps --format json | grep -c '"Names":"fo\.' || true; }
one_each() { for i in 1 2 3; do [ "$(running_on $i)" -eq 1 ] || return 1; done; }
c service create --no-resolve-image --name fo --replicas 3 --stop-timeout 1 --wait bench:bb sleep 3600 >/dev/null
: > "$W/pi.txt"; : > "$W/pi-split.txt"
set +e
for t in $(seq "$TRIALS"); do
  wait_for 30 one_each || { c service scale fo=0 --wait >/dev/null; c service scale fo=3 --wait >/dev/null; wait_for 30 one_each; } ||
    { echo "trial $t: replicas not spread one per Pi" >&2; continue; }
  L=$(cl_leader)
  [ -n "$L" ] || { echo "trial $t: no leader" >&2; sleep 1; continue; }
  others=$(for i in 1 2 3; do [ $i != $L ] && echo $i; done)
  # The CLI asks the coordinators it knows in order, 3 s for one that does not answer: the lost Pi last.
  export HAKO_COORDINATOR=$(for i in $others $L; do printf '%s:4270,' "$(cl_addr $i)"; done | sed 's/,$//')
  t0=$(now)
  cl_kill9 "${CPIDS[$L]}"; cl_kill9 "${APIDS[$L]}"; cl_link $L down
  ok=0
  for _ in $(seq 600); do
    n=0; for i in $others; do n=$((n + $(running_on $i))); done
    [ $n -ge 3 ] && { ok=1; break; }
    sleep 0.05
  done
  dt=$(since "$t0")
  [ $ok = 1 ] || { echo "trial $t: no replacement within 30 s" >&2; continue; }
  echo "$dt" >> "$W/pi.txt"
  # Where the time went: the kill -> the new leader's "leading" line -> its "node$L … → down" line.
  logged() { # the newest line of the other coordinators' logs matching $1: seconds after the kill
    local at; at=$(for i in $others; do grep -h "$1" "$W/c$i.log"; done | sort | tail -n1 | awk '{print $1}')
    awk -v a="$t0" -v b="$(date -d "$at" +%s.%N 2>/dev/null || echo 0)" 'BEGIN { d = b - a; if (d < 0) print "-"; else printf "%.2f", d }'
  }
  lead_s=$(logged "info coordinator: leading (term")
  down_s=$(logged "info coordinator: node node$L .* → down")
  echo "$lead_s $down_s" >> "$W/pi-split.txt"
  echo "   trial $t (pi$L, the leader): replacement running after $dt s (a new leader leading after $lead_s s, node$L down after $down_s s)"
  cl_link $L up; cl_start_coordinator $L; cl_start_agent $L
  unset HAKO_COORDINATOR
  wait_for 30 bash -c "[ \$(nsenter --net=/run/netns/$UL -- $BIN/hako cluster coordinator ls --format json | grep -c '\"reachable\":true') -eq 3 ]" ||
    echo "   (coordinator $L not back within 30 s)" >&2
  wait_for 30 all_ready || echo "   (not every node ready again within 30 s)" >&2
  wait_for 30 bash -c "[ \$(HAKO_ROOT=$W/n$L/root HAKO_RUN_ROOT=$W/n$L/run nsenter --net=/run/netns/$TAG-n$L -- $BIN/hako ps -q | wc -l) -eq 0 ]" ||
    echo "   (pi$L still runs its old replica)" >&2
  # Spread again for the next trial.
  c service scale fo=0 --wait >/dev/null; c service scale fo=3 --wait >/dev/null
done
set -e
# The last scale's old replicas may still be stopping.
wait_for 30 bash -c "[ \$(for i in 1 2 3; do HAKO_ROOT=$W/n\$i/root HAKO_RUN_ROOT=$W/n\$i/run nsenter --net=/run/netns/$TAG-n\$i -- $BIN/hako ps -q; done | wc -l) -eq 3 ]" || true
dup=0; for i in 1 2 3; do dup=$((dup + $(running_on $i))); done
[ -s "$W/pi.txt" ] || { echo "no trial completed" >&2; exit 1; }
echo "load average at the end: $(load)"

echo
printf '| coordinators on Raft | hako | goal | same run |\n|---|---|---|---|\n'
printf '| a Pi lost with the leader (coordinator and agent kill -9, link down, the same second) -> its replica running on another Pi (%s trials) | p50 %s s, p99 %s s, max %s s | p99 <= 6 s | p50: a new leader leading after %s s, the lost node declared down after %s s (the new leader starts the grace period of every node at once: 3 s) |\n' \
  "$(wc -l < "$W/pi.txt")" "$(pct "$W/pi.txt" 0.5)" "$(pct "$W/pi.txt" 0.99)" "$(pct "$W/pi.txt" 1)" \
  "$(awk '$1 != "-" {print $1}' "$W/pi-split.txt" | sort -n | awk '{a[NR]=$1} END { print (NR ? a[int((NR+1)/2)] : "-") }')" \
  "$(awk '$2 != "-" {print $2}' "$W/pi-split.txt" | sort -n | awk '{a[NR]=$1} END { print (NR ? a[int((NR+1)/2)] : "-") }')"
printf '| replicas of fo running after the last trial (3 expected, no duplicate) | %s | 3 | |\n' "$dup"
printf '| each coordinator'"'"'s RSS, 3 coordinators, 10 nodes + 1,000 tasks, idle | %s, %s, %s MB (after %s s idle: %s, %s, %s MB) | <= 30 MB | one coordinator alone, the same nodes and tasks: %s MB |\n' \
  "$(mb "${ha_rss[1]}")" "$(mb "${ha_rss[2]}")" "$(mb "${ha_rss[3]}")" "$IDLE" "$(mb "${ha_rss_idle[1]}")" "$(mb "${ha_rss_idle[2]}")" "$(mb "${ha_rss_idle[3]}")" "$(mb "$one_rss")"
printf '| 1,000 tasks placed through Raft and reported running (10 nodes) | %s s | | |\n' "$place_s"
printf '| each coordinator'"'"'s disk writes, %s s idle -> per 10 min | %s, %s, %s B -> %s, %s, %s B | ~0 | while placing the 1,000 tasks: %s, %s, %s kB (the measure sees writes) |\n' \
  "$IDLE" "${idle[1]}" "${idle[2]}" "${idle[3]}" "${per10[1]}" "${per10[2]}" "${per10[3]}" "$((busy[1] / 1024))" "$((busy[2] / 1024))" "$((busy[3] / 1024))"
printf '| %s changes committed one after another: each coordinator'"'"'s Raft directory (log + snapshots) | %s–%s kB from 2,000 changes on; at the end %s kB (%s snapshots, %s segments) | bounded | databases at the end %s kB; %s changes/s |\n' \
  "$CHANGES" "$raft_min" "$raft_max" "$raft_end" "$snaps" "$segs" "$db_end" "$rate"
