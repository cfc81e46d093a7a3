#!/usr/bin/env bash
# Coordinators on Raft (part of make bench).
#   1. Placements committed through Raft: PLACEMENT_RUNS runs (3 by default)
#      of `hako-cluster-bench scheduler` (1,000 simulated nodes, PLACEMENTS
#      tasks in batches of 5,000), each through Raft to three coordinators'
#      stores (--raft 3: three replicas in one process, mutual TLS on
#      loopback; goal >= 20,000/s) and at once after it with one coordinator,
#      so that both see the same moment of a shared machine; where a batch's
#      commit went, and the log entry's size. PLACEMENT_RUNS=0 skips it.
#   2. Failover: three coordinators on loopback
# (mutual TLS, the default raft_election_timeout of 750 ms unless ELECTION is
# set), the leader killed with kill -9 TRIALS times: the time until a new
# leader answers `hako cluster service ls` with the state (goal p99 <= 2 s;
# floor: the election timeout, elections being drawn between it and twice
# it). The killed coordinator is restarted between trials. Loopback only;
# everything lives in a temp dir and is removed at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${HAKO_BIN_DIR:-$REPO/.build/release}
TRIALS=${TRIALS:-10}
ELECTION=${ELECTION:-750ms}
PLACEMENT_RUNS=${PLACEMENT_RUNS:-3}
PLACEMENTS=${PLACEMENTS:-200000}
H=$BIN/hako
W=$(mktemp -d /tmp/hako-bench-raft-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
load() { cut -d' ' -f1 /proc/loadavg; }

if [ "$PLACEMENT_RUNS" -gt 0 ]; then
  BENCH=$BIN/hako-cluster-bench
  if [ ! -x "$BENCH" ]; then
    echo "== building hako-cluster-bench (release)"
    (cd "$REPO" && swift build -c release --static-swift-stdlib --product hako-cluster-bench 2>&1 | tail -1)
    BENCH=$REPO/.build/release/hako-cluster-bench
  fi
  : > "$W/placements.txt"
  for run in $(seq 1 "$PLACEMENT_RUNS"); do
    echo "== placements through Raft to 3 coordinators, then one coordinator: $PLACEMENTS tasks in batches of 5,000, run $run of $PLACEMENT_RUNS (load $(load))"
    rm -rf "$W"/sched-*
    "$BENCH" scheduler --nodes 1000 --tasks "$PLACEMENTS" --batch 5000 --raft 3 "$W/sched-raft.db" | tee "$W/raft.txt"
    "$BENCH" scheduler --nodes 1000 --tasks "$PLACEMENTS" --batch 5000 "$W/sched-one.db" | tee "$W/one.txt"
    rate() { sed -n 's/^placements_per_s=\([0-9]*\).*/\1/p' "$1"; }
    cpu() { sed -n 's/^placements_per_cpu_s=\([0-9]*\).*/\1/p' "$1"; }
    echo "$(rate "$W/raft.txt") $(cpu "$W/raft.txt") $(rate "$W/one.txt") $(cpu "$W/one.txt") $(load)" >> "$W/placements.txt"
    sed -n 's/^per_batch_ms: //p' "$W/raft.txt" > "$W/split-$run.txt"
    sed -n 's/^entry_bytes=\([0-9]*\).*/\1/p' "$W/raft.txt" > "$W/entry.txt"
  done
  echo
  printf '| run | placements/s through Raft, 3 coordinators | per CPU s | one coordinator, right after | per CPU s | Raft / one | load after | where a batch went (ms) |\n|---|---|---|---|---|---|---|---|\n'
  n=0
  while read -r raft raftcpu one onecpu l; do
    n=$((n + 1))
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$raft" "$raftcpu" "$one" "$onecpu" \
      "$(awk -v a="$raft" -v b="$one" 'BEGIN { if (b > 0) printf "%.2f", a / b }')" "$l" "$(cat "$W/split-$n.txt" 2>/dev/null)"
  done < "$W/placements.txt"
  median() { sort -n | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }
  printf '| median | %s | %s | %s | %s | | | goal >= 20,000/s through Raft; log entry of a batch: %s B |\n' \
    "$(awk '{print $1}' "$W/placements.txt" | median)" "$(awk '{print $2}' "$W/placements.txt" | median)" \
    "$(awk '{print $3}' "$W/placements.txt" | median)" "$(awk '{print $4}' "$W/placements.txt" | median)" "$(cat "$W/entry.txt")"
  echo
fi
[ "$TRIALS" -gt 0 ] || exit 0
BASE=$((20000 + RANDOM % 20000))
peers="\"1@127.0.0.1:$((BASE + 11))\", \"2@127.0.0.1:$((BASE + 12))\", \"3@127.0.0.1:$((BASE + 13))\""
for i in 1 2 3; do
  cat > "$W/c$i.toml" <<TOML
data_dir = "$W/c$i"
listen = "127.0.0.1:$((BASE + i))"
raft_id = $i
raft_address = "127.0.0.1:$((BASE + 10 + i))"
raft_peers = [$peers]
raft_election_timeout = "$ELECTION"
TOML
done
"$H" cluster init --config "$W/c1.toml" --credentials "$W/admin" >/dev/null
cp -a "$W/c1" "$W/c2"; cp -a "$W/c1" "$W/c3"
echo "127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 3))" > "$W/admin/coordinator"
declare -A PID
start() { "$H" coordinator --config "$W/c$1.toml" 2>>"$W/c$1.log" & PID[$1]=$!; PIDS+=($!); }
for i in 1 2 3; do start $i; done
# The credentials right after the command's two words (after the image they would be the container's command).
c() { local a=$1 b=$2; shift 2; "$H" cluster "$a" "$b" --credentials "$W/admin" "$@"; }
for _ in $(seq 1 100); do c service ls -q >/dev/null 2>&1 && break; sleep 0.1; done
c service create --no-resolve-image --name web --replicas 3 busybox sleep 1 >/dev/null
echo "== coordinators on Raft: leader kill -9 -> a new leader answering service ls ($TRIALS trials, election timeout $ELECTION)"
: > "$W/times.txt"
for t in $(seq 1 "$TRIALS"); do
  # By the leader's client port (BASE + i): on loopback the coordinators
  # that never led show the leader's address (their own is guessed beside
  # their Raft host), so the ID column can name several leaders.
  port=$(c coordinator ls | awk '$4 == "leader" {print $2}' | head -n1 | sed 's/.*://')
  [ -n "$port" ] || { echo "no leader before trial $t"; exit 1; }
  l=$((port - BASE))
  kill -9 "${PID[$l]}"; wait "${PID[$l]}" 2>/dev/null || true
  t0=$(date +%s.%N)
  ok=0
  for _ in $(seq 1 200); do
    if c service ls --format json 2>/dev/null | grep -q '"name":"web"'; then ok=1; break; fi
    sleep 0.02
  done
  t1=$(date +%s.%N)
  [ $ok = 1 ] || { echo "trial $t: no new leader within 10 s"; exit 1; }
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }' >> "$W/times.txt"
  # Where the time went: the kill -> the new leader's "leading" line (Raft's
  # election, the leader's first commit and its store loaded), then -> the
  # CLI's answer (clients finding it).
  led=$(grep -h "info coordinator: leading (term" "$W"/c*.log | sort | tail -n1 | awk '{print $1}')
  tl=$(date -d "$led" +%s.%N 2>/dev/null || echo "$t1")
  awk -v a="$t0" -v b="$t1" -v l="$tl" 'BEGIN { printf "%.2f s (leading after %.2f s, answering %.2f s later)\n", b - a, l - a, b - l }' | tee -a "$W/split.txt"
  start "$l"
  for _ in $(seq 1 100); do [ "$(c coordinator ls | awk '$5 == "yes"' | wc -l)" = 3 ] && break; sleep 0.1; done
done
sorted=$(sort -n "$W/times.txt")
p50=$(echo "$sorted" | awk '{a[NR]=$1} END { i=int((NR+1)/2); print a[i] }')
p99=$(echo "$sorted" | awk '{a[NR]=$1} END { i=int(NR*0.99+0.999); if (i<1) i=1; if (i>NR) i=NR; print a[i] }')
echo
printf '| Raft figure | hako | goal | floor |\n|---|---|---|---|\n'
lead50=$(sed 's/.*leading after \([0-9.]*\) s.*/\1/' "$W/split.txt" | sort -n | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }')
ans50=$(sed 's/.*answering \([0-9.]*\) s later.*/\1/' "$W/split.txt" | sort -n | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }')
printf '| leader kill -9 -> new leader answering service ls (%s trials) | p50 %s s, p99 %s s (p50 %s s to the new leader leading, %s s more to the answer) | p99 <= 2 s | election timeout %s (drawn between it and twice it) |\n' \
  "$TRIALS" "$p50" "$p99" "$lead50" "$ans50" "$ELECTION"
