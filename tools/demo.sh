#!/usr/bin/env bash
# make demo: the local container lifecycle on a fresh machine, step by step,
# with a private data root and cgroup parent, cleaned up at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${HAKO_BIN_DIR:-$HERE/../.build/release}
W=$(mktemp -d /tmp/hako-demo.XXXXXX)
export HAKO_ROOT=$W/root HAKO_RUN_ROOT=$W/run HAKO_CGROUP_PARENT=hako-demo-$$ HAKO_MONITOR=$BIN/hako-monitor
hako() { "$BIN/hako" "$@"; }
cleanup() {
  set +e
  ids=$(hako ps -aq --no-trunc 2>/dev/null)
  [ -n "$ids" ] && hako rm -f $ids >/dev/null
  hako network prune >/dev/null 2>&1  # the default bridge, the firewall table, IP forwarding as found
  for d in /sys/fs/cgroup/*/"$HAKO_CGROUP_PARENT"; do [ -d "$d" ] && rmdir "$d"; done
  rm -rf "$W"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ hako %s\n' "$*"; hako "$@"; }

step "What this kernel offers"
hako doctor || true

step "The built-in host image: the host's own / as a read-only lower layer"
show run --rm host sh -c 'echo "hello from $(hostname), PID $$"; touch /written-inside; ls /written-inside'
[ -e /written-inside ] && echo "BUG: the write reached the host" || echo "(the host has no /written-inside: writes stay in the container)"

step "A busybox image, imported from a root file system tarball"
R=$W/rootfs; mkdir -p "$R/bin" "$R/etc" "$R/tmp"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
tar -C "$R" -cf "$W/busybox.tar" .
show import "$W/busybox.tar" busybox:demo
show images

step "Isolation, seen from inside"
show run --rm --hostname demo busybox:demo sh -c 'echo "hostname=$(hostname) pid=$$ user=$(id -u)"; ps; ls /dev'

step "A detached container with a restart policy, its logs, exec, pause"
show run -d --name web --restart on-failure:3 busybox:demo sh -c 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.5; done'
sleep 1.2
show ps
show logs --tail 2 web
show exec web sh -c 'echo "exec joined: hostname=$(hostname), PID 1 is $(cat /proc/1/comm)"'
show pause web
show ps
show unpause web

step "Exit codes as Docker's"
set +e
hako run --rm busybox:demo sh -c 'exit 3'; echo "exit 3        -> $?"
hako run --rm busybox:demo no-such-command 2>/dev/null; echo "not found     -> $?"
hako run --rm busybox:demo /etc/passwd 2>/dev/null; echo "not executable -> $?"
hako run --rm no-such-image true 2>/dev/null; echo "no such image -> $?"
set -e

step "Stop (SIGTERM, then SIGKILL after the timeout) and remove"
t0=$(date +%s.%N)
show stop -t 1 web
printf '(stopped in %.2f s)\n' "$(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo 0)"
show ps -a
show rm web
show ps -a
echo
echo "Done: every container, mount and cgroup of this demo is gone."
