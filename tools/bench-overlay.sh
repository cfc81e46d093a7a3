#!/usr/bin/env bash
# bench-overlay.sh: hako's VXLAN overlay against the reference overlay built by
# hand (../shared/tools/overlay-sim.sh), measured in the same run.
#
#   throughput  iperf3 container → container across two nodes (TCP, receiver
#               side), alternating hako / reference, IPERF_ROUNDS rounds of
#               IPERF_T seconds; the underlay node → node for scale
#   convergence a node leaves / joins: time until every other node's kernel
#               state is right (hako: reconcile + read back, in-process through
#               netlink; reference: the iproute2 commands a person would run)
#
# hako's nodes (with the overlay table of masquerade and routing mesh on every
# node, where the reference has its nft table on node1 only) are namespaces hkovb-ul, hkovb-n1..3, hkovb-c1..3 with the same
# addresses as overlay-sim's (172.31.250.N underlay, 10.88.N.0/24 subnets, VNI
# 42, MTU 1450), programmed by hako's facility (hako-overlay-bench). All traffic
# stays inside namespaces this script creates; processes are ended by PID.
# Env: IPERF_T (s, default 5), IPERF_ROUNDS (default 5), CONVERGE_ROUNDS (default 20), OVERLAY_SIM.
set -uo pipefail
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SIM=${OVERLAY_SIM:-$REPO/../shared/tools/overlay-sim.sh}
[ -x "$SIM" ] || SIM=/work/shared/tools/overlay-sim.sh
IPERF_T=${IPERF_T:-5}
IPERF_ROUNDS=${IPERF_ROUNDS:-5}
CONVERGE_ROUNDS=${CONVERGE_ROUNDS:-20}
P=hkovb
PIDS=()
SIM_UP=0

log() { echo "[bench-overlay] $*" >&2; }
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	for ns in $P-c1 $P-c2 $P-c3 $P-n1 $P-n2 $P-n3 $P-ul; do
		ip netns list | awk '{print $1}' | grep -qx "$ns" && ip netns del "$ns"
	done
	[ "$SIM_UP" = 1 ] && "$SIM" down >/dev/null 2>&1
}
trap cleanup EXIT
die() { log "ERROR: $*"; exit 1; }
run() { "$@" || die "failed: $*"; }

for n in node1 node2 node3 ctr1 ctr2 ctr3 ovl-underlay $P-ul; do
	ip netns list | awk '{print $1}' | grep -qx "$n" && die "netns $n exists (another overlay-sim or bench running?)"
done

log "building hako-overlay-bench (release)"
(cd "$REPO" && swift build -c release --static-swift-stdlib --product hako-overlay-bench 2>&1 | tail -1) >&2
BENCH=$REPO/.build/release/hako-overlay-bench
[ -x "$BENCH" ] || die "no $BENCH"

# --- hako's three nodes (fixture by iproute2; the overlay by hako) -----------
run ip netns add $P-ul
run ip -n $P-ul link add br-ul type bridge
run ip -n $P-ul link set br-ul up
NODES=()
for N in 1 2 3; do
	run ip netns add $P-n$N; run ip netns add $P-c$N
	ip netns exec $P-n$N sysctl -qw net.ipv4.ip_forward=1
	run ip -n $P-n$N link set lo up; run ip -n $P-c$N link set lo up
	run ip -n $P-n$N link add eth0 type veth peer name ul$N netns $P-ul
	run ip -n $P-ul link set ul$N master br-ul up
	run ip -n $P-n$N addr add 172.31.250.$N/24 dev eth0
	run ip -n $P-n$N link set eth0 up
	run ip -n $P-n$N link add cni0 type bridge
	run ip -n $P-n$N addr add 10.88.$N.1/24 dev cni0
	run ip -n $P-n$N link add veth-c$N mtu 1450 type veth peer name eth0 netns $P-c$N
	run ip -n $P-n$N link set veth-c$N master cni0 up
	run ip -n $P-n$N link set cni0 mtu 1450 up
	run ip -n $P-c$N link set eth0 mtu 1450
	run ip -n $P-c$N addr add 10.88.$N.2/24 dev eth0
	run ip -n $P-c$N link set eth0 up
	run ip -n $P-c$N route add default via 10.88.$N.1
	NODES+=("node$N,172.31.250.$N,10.88.$N.0/24")
done
for N in 1 2 3; do
	out=$("$BENCH" reconcile /run/netns/$P-n$N node$N 42 10.88.0.0/16 "${NODES[@]}") || die "reconcile node$N"
	log "hako node$N: $out"
	# as an agent would: the overlay table on every node (masquerade, the mesh; so conntrack runs, as on the reference's node1)
	peers=$(for M in 1 2 3; do [ $M = $N ] || printf '172.31.250.%s,' $M; done)
	"$BENCH" mesh /run/netns/$P-n$N 10.88.$N.0/24 42 10.88.0.0/16 "${peers%,}" 8080 10.88.1.2:80 || die "mesh node$N"
done
ip netns exec $P-c1 ping -c 1 -W 2 -q 10.88.2.2 >/dev/null || die "hako overlay: ctr1 cannot reach ctr2"

# --- the reference ----------------------------------------------------------
log "reference: $SIM up"
"$SIM" up >&2 || die "overlay-sim up failed"
SIM_UP=1
ip netns exec ctr1 ping -c 1 -W 2 -q 10.88.2.2 >/dev/null || die "reference overlay: ctr1 cannot reach ctr2"

# iperf3 server_ns server_ip client_ns -> Gbit/s
iperf() {
	ip netns exec "$1" timeout $((IPERF_T + 30)) iperf3 -s -1 -B "$2" -p 5201 >/dev/null 2>&1 &
	local spid=$!
	PIDS+=("$spid")
	sleep 0.4
	local json bps
	json=$(ip netns exec "$3" timeout $((IPERF_T + 20)) iperf3 -c "$2" -p 5201 -t "$IPERF_T" -J 2>/dev/null)
	wait "$spid" 2>/dev/null
	bps=$(jq -r '.end.sum_received.bits_per_second // empty' <<<"$json" 2>/dev/null)
	[ -n "$bps" ] && awk -v b="$bps" 'BEGIN{printf "%.2f", b/1e9}' || echo NaN
}
median() { tr ' ' '\n' | grep -v NaN | sort -g | awk '{a[NR]=$1} END{ if (NR==0) print "NaN"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f", (a[NR/2]+a[NR/2+1])/2 }'; }

log "hako:      $(ip -n $P-n1 -d -o link show hako.vx42 | grep -o 'vxlan id.*' | cut -c1-160)"
log "reference: $(ip -n node1 -d -o link show flannel.42 | grep -o 'vxlan id.*' | cut -c1-160)"
H=(); R=(); U=()
for ((i = 1; i <= IPERF_ROUNDS; i++)); do
	# alternate who goes first: the machine is shared and its speed drifts
	if ((i % 2)); then h=$(iperf $P-c2 10.88.2.2 $P-c1); r=$(iperf ctr2 10.88.2.2 ctr1)
	else r=$(iperf ctr2 10.88.2.2 ctr1); h=$(iperf $P-c2 10.88.2.2 $P-c1); fi
	u=$(iperf $P-n2 172.31.250.2 $P-n1)
	log "round $i: hako $h, reference $r, underlay $u Gbit/s"
	H+=("$h"); R+=("$r"); U+=("$u")
done
hm=$(echo "${H[*]}" | median); rm_=$(echo "${R[*]}" | median); um=$(echo "${U[*]}" | median)

# --- convergence --------------------------------------------------------------
MEMBERS=()
for N in 1 2 3; do MEMBERS+=("/run/netns/$P-n$N=${NODES[$((N-1))]}"); done
conv=$("$BENCH" converge "$CONVERGE_ROUNDS" 42 10.88.0.0/16 "${MEMBERS[@]}") || die "converge"
hl=$(awk '/^leave/ {print $3 " / " $5}' <<<"$conv"); hj=$(awk '/^join/ {print $3 " / " $5}' <<<"$conv")

# The reference's way: the iproute2 commands for node3 leaving / joining, on nodes 1 and 2.
ref_change() { # del|add
	local t0 t1 N
	t0=$(date +%s%N)
	for N in 1 2; do
		if [ "$1" = del ]; then
			ip -n node$N route del 10.88.3.0/24 via 10.88.3.0 dev flannel.42 onlink
			ip -n node$N neigh del 10.88.3.0 dev flannel.42
			bridge -n node$N fdb del 02:88:00:00:00:03 dev flannel.42 dst 172.31.250.3 self
		else
			ip -n node$N neigh replace 10.88.3.0 lladdr 02:88:00:00:00:03 dev flannel.42 nud permanent
			bridge -n node$N fdb append 02:88:00:00:00:03 dev flannel.42 dst 172.31.250.3 self permanent
			ip -n node$N route replace 10.88.3.0/24 via 10.88.3.0 dev flannel.42 onlink
		fi
	done
	t1=$(date +%s%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b-a)/1e6}'
}
RL=(); RJ=()
for ((i = 1; i <= 5; i++)); do RL+=("$(ref_change del)"); RJ+=("$(ref_change add)"); done
rl=$(echo "${RL[*]}" | median); rj=$(echo "${RJ[*]}" | median)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 > 0) printf "%.2f", a/b; else print "NaN" }'; }
fmt() { awk -v v="$1" 'BEGIN{printf "%.2f", v}'; }
hlm=$(awk '{print $1}' <<<"$hl"); hjm=$(awk '{print $1}' <<<"$hj")
echo "| overlay ($(uname -r), iperf3 -t $IPERF_T, median of $IPERF_ROUNDS) | hako | reference (overlay-sim) | hako / reference (time: lower is better) |"
echo "|---|---|---|---|"
echo "| container → container across nodes, Gbit/s | $hm | $rm_ | $(ratio "$hm" "$rm_") (goal ≥ 0.95) |"
echo "| underlay node → node, Gbit/s | $um | | overlay/underlay: hako $(ratio "$hm" "$um"), reference $(ratio "$rm_" "$um") |"
echo "| a node leaves: entries gone on the 2 others, ms (median / max of $CONVERGE_ROUNDS) | $(fmt "$hlm") / $(fmt "$(awk '{print $3}' <<<"$hl")") | $rl (iproute2, 6 commands) | $(ratio "$hlm" "$rl") (goal ≤ 1000 ms) |"
echo "| a node joins: entries right on the 2 others, ms | $(fmt "$hjm") / $(fmt "$(awk '{print $3}' <<<"$hj")") | $rj (iproute2, 6 commands) | $(ratio "$hjm" "$rj") |"
