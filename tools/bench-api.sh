#!/usr/bin/env bash
# Docker Engine API benchmark (part of make bench): hako system service against
# dockerd and podman's service, measured in the same run.
#   1. Idle RSS of each service (goal: hako <= 10 MB, below both). dockerd runs
#      only inside a network namespace of this script's own, with
#      --iptables=false --bridge=none and a temporary data and exec root, and is
#      stopped by its PID; it never runs a container.
#   2. `docker run --rm IMAGE true` through hako's socket next to `hako run --rm`
#      (goal: <= 1.5x) and next to the same client through podman's service.
#   3. `docker-compose up -d` of a two-service project until both run, through
#      hako's socket and through podman's.
# Everything lives under a temp dir, a private data root and cgroup parent, and
# is removed at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${HAKO_BIN_DIR:-$REPO/.build/release}
RUNS=${RUNS:-20}
DOCKER=${DOCKER_CLI:-/usr/bin/docker}

W=$(mktemp -d /tmp/hako-bench-api.XXXXXX)
NS=hako-bench-api-$$
export HAKO_ROOT=$W/root HAKO_RUN_ROOT=$W/run HAKO_CGROUP_PARENT=hako-bench-api-$$
PIDS=()
# dockerd makes /run/docker/plugins whatever its exec root: removed after it when it was not there before.
RUN_DOCKER_WAS_THERE=$([ -e /run/docker ] && echo yes || echo no)
cleanup() {
  set +e
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  ids=$("$BIN/hako" ps -aq --no-trunc 2>/dev/null)
  [ -n "$ids" ] && "$BIN/hako" rm -f $ids >/dev/null 2>&1
  podman --root "$W/podman/root" --runroot "$W/podman/run" rm -af >/dev/null 2>&1
  for d in /sys/fs/cgroup/*/"$HAKO_CGROUP_PARENT" /sys/fs/cgroup/"$HAKO_CGROUP_PARENT"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null
  [ "$RUN_DOCKER_WAS_THERE" = no ] && rmdir /run/docker/plugins /run/docker 2>/dev/null
  umount -R "$W/podman" "$W/docker" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
# nsenter, not ip netns exec: that one mounts a fresh /sys, without the cgroup mounts.
# Called directly (not through a function) where a service starts, so that $! is its PID.
NSENTER=(nsenter --net="/run/netns/$NS")

echo "== the busybox image, for hako and podman"
mkdir -p "$W/rootfs/bin"
cp /bin/busybox "$W/rootfs/bin/busybox"
for a in sh true sleep httpd wget echo; do ln -s busybox "$W/rootfs/bin/$a"; done
tar -C "$W/rootfs" -cf "$W/rootfs.tar" .
"$BIN/hako" import "$W/rootfs.tar" bench/busybox:api >/dev/null

wait_socket() { for _ in $(seq 300); do [ -S "$1" ] && return 0; sleep 0.1; done; echo "bench: no socket $1" >&2; return 1; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# What is the process's own (private dirty: anonymous and written) of that.
dirty_kib() { awk '/^Private_Dirty:/ {print $2}' "/proc/$1/smaps_rollup"; }

# hako
"${NSENTER[@]}" "$BIN/hako" system service --listen "unix://$W/hako.sock" >"$W/hako.log" 2>&1 &
HAKO_PID=$!; PIDS+=("$HAKO_PID")
wait_socket "$W/hako.sock"
DOCKER_HOST=unix://$W/hako.sock DOCKER_CONFIG=$W/cfg "$DOCKER" version >/dev/null
# Idle: a second without a request or a connection, when the service gives back its startup pages.
sleep 2
hako_idle=$(rss_kib "$HAKO_PID"); hako_idle_dirty=$(dirty_kib "$HAKO_PID")

# podman's service
mkdir -p "$W/podman"
podman_cmd=(podman --root "$W/podman/root" --runroot "$W/podman/run" --storage-driver vfs --cgroup-manager cgroupfs --events-backend file)
"${podman_cmd[@]}" import "$W/rootfs.tar" localhost/bench/busybox:api >/dev/null 2>&1
"${NSENTER[@]}" "${podman_cmd[@]}" system service --time 0 "unix://$W/podman.sock" >"$W/podman.log" 2>&1 &
PODMAN_PID=$!; PIDS+=("$PODMAN_PID")
wait_socket "$W/podman.sock"
DOCKER_HOST=unix://$W/podman.sock DOCKER_CONFIG=$W/cfg "$DOCKER" version >/dev/null 2>&1 || true
sleep 2
podman_idle=$(rss_kib "$PODMAN_PID"); podman_idle_dirty=$(dirty_kib "$PODMAN_PID")

# dockerd: idle only, in the namespace, nothing on the host's network or iptables.
dockerd_idle=-; dockerd_idle_dirty=-
containerd_idle=-
if command -v dockerd >/dev/null; then
  # Its own mount namespace too: the mounts it makes under its data root go with it.
  "${NSENTER[@]}" unshare -m --propagation private dockerd --iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false \
    --data-root "$W/docker/data" --exec-root "$W/docker/exec" --pidfile "$W/docker/dockerd.pid" \
    -H "unix://$W/docker.sock" --log-level error >"$W/dockerd.log" 2>&1 &
  DOCKERD_PID=$!; PIDS+=("$DOCKERD_PID")
  if wait_socket "$W/docker.sock"; then
    DOCKER_HOST=unix://$W/docker.sock DOCKER_CONFIG=$W/cfg "$DOCKER" version >/dev/null 2>&1 || true
    sleep 2
    dockerd_idle=$(rss_kib "$DOCKERD_PID"); dockerd_idle_dirty=$(dirty_kib "$DOCKERD_PID")
    c=$(pgrep -P "$DOCKERD_PID" -x containerd | head -1 || true)
    [ -n "$c" ] && containerd_idle=$(rss_kib "$c")
  fi
  kill "$DOCKERD_PID"; for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
fi

hf() { # name command
  hyperfine --style none --warmup 2 --runs "$RUNS" --export-json "$W/$1.json" -n "$1" "$2" >/dev/null 2>&1 \
    || { echo "bench: $1 failed" >&2; echo 0; return 0; }
  jq -r '.results[0].median*1000' "$W/$1.json"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "== docker run --rm IMAGE true ($RUNS runs each, hyperfine medians)"
cli_hako=$(hf cli-hako "DOCKER_HOST=unix://$W/hako.sock DOCKER_CONFIG=$W/cfg $DOCKER run --rm --network none bench/busybox:api true")
direct=$(hf hako "$BIN/hako run --rm --network none bench/busybox:api true")
cli_version=$(hf cli-version "DOCKER_HOST=unix://$W/hako.sock DOCKER_CONFIG=$W/cfg $DOCKER version")
cli_podman=$(hf cli-podman "DOCKER_HOST=unix://$W/podman.sock DOCKER_CONFIG=$W/cfg $DOCKER run --rm --network none localhost/bench/busybox:api true")

echo "== docker-compose up -d (two services) until both run"
mkdir -p "$W/project"
compose_file() { # image
  cat > "$W/project/docker-compose.yml" <<EOF
version: "3.7"
services:
  web:
    image: $1
    command: ["httpd", "-f", "-p", "80"]
  client:
    image: $1
    command: ["sleep", "600"]
EOF
}
compose_up() { # socket image → ms until both run
  compose_file "$2"
  local t0 t1
  t0=$(date +%s%N)
  DOCKER_HOST=unix://$1 DOCKER_CONFIG=$W/cfg docker-compose --project-directory "$W/project" -p benchapi up -d >/dev/null 2>&1 || { echo 0; return; }
  t1=$(date +%s%N)
  DOCKER_HOST=unix://$1 DOCKER_CONFIG=$W/cfg docker-compose --project-directory "$W/project" -p benchapi down -v -t 1 >/dev/null 2>&1 || true
  echo $(( (t1 - t0) / 1000000 ))
}
compose_hako=0; compose_podman=0
if command -v docker-compose >/dev/null; then
  compose_hako=$(compose_up "$W/hako.sock" bench/busybox:api)
  compose_podman=$(compose_up "$W/podman.sock" localhost/bench/busybox:api)
fi
hako_busy=$(rss_kib "$HAKO_PID")
sleep 2
hako_after=$(rss_kib "$HAKO_PID"); hako_after_dirty=$(dirty_kib "$HAKO_PID")

printf '\n| idle service | RSS KiB | of it private dirty KiB | goal |\n|---|---|---|---|\n'
printf '| hako system service | %s | %s | RSS <= 10240, below both |\n' "$hako_idle" "$hako_idle_dirty"
printf '| hako system service, idle again after the runs below (right after them: %s) | %s | %s | |\n' "$hako_busy" "$hako_after" "$hako_after_dirty"
printf '| podman system service | %s | %s | |\n' "$podman_idle" "$podman_idle_dirty"
printf '| dockerd (+ its containerd: %s) | %s | %s | |\n' "$containerd_idle" "$dockerd_idle" "$dockerd_idle_dirty"
printf '\n| docker run --rm IMAGE true | median ms | vs hako run --rm |\n|---|---|---|\n'
printf '| docker CLI → hako system service | %.1f | %s (goal <= 1.5) |\n' "$cli_hako" "$(ratio "$cli_hako" "$direct")"
printf '| hako run --rm | %.1f | 1.00 |\n' "$direct"
printf '| docker CLI → podman system service | %.1f | %s |\n' "$cli_podman" "$(ratio "$cli_podman" "$direct")"
printf '| (the client alone: docker version through hako) | %.1f | %s |\n' "$cli_version" "$(ratio "$cli_version" "$direct")"
[ "$cli_podman" = 0 ] && { echo; echo "podman's service log (tail):"; tail -5 "$W/podman.log"; }
printf '\n| docker-compose up -d, 2 services | ms (0: failed) |\n|---|---|\n'
printf '| through hako system service | %s |\n' "$compose_hako"
printf '| through podman system service | %s |\n' "$compose_podman"
