#!/usr/bin/env bash
# Build benchmark (part of make bench): `hako build` of the multi-stage test
# Dockerfile (BuildTests' shape: a build stage whose RUN steps make a binary
# and a data file, a scratch stage that copies them in), cold (--no-cache,
# the base image present) and fully cached, next to `podman build` (Debian's
# buildah inside; --runtime runc, as crun refuses this machine kind's hybrid
# cgroups) in the same run. Goal: cold <= 1.0x podman, cached <= 0.5x.
# The base image is a busybox-static root file system made here and given to
# both (podman loads hako's `save`); RUN steps have no network (--network
# none) on both sides. Everything lives under a temp dir, removed at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${HAKO_BIN_DIR:-$REPO/.build/release}
RUNS=${RUNS:-5}

W=$(mktemp -d "${BENCH_TMP:-/var/tmp}/hako-bench-build.XXXXXX")
export HAKO_ROOT=$W/hako HAKO_RUN_ROOT=$W/run HAKO_CGROUP_PARENT=hako-bench-build-$$
cleanup() {
  set +e
  for c in $("$BIN/hako" ps -aq 2>/dev/null); do "$BIN/hako" rm -f "$c" >/dev/null 2>&1; done
  grep -F " $W/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
  for d in /sys/fs/cgroup/*/"$HAKO_CGROUP_PARENT" /sys/fs/cgroup/"$HAKO_CGROUP_PARENT"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  chmod -R u+w "$W" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

pm() { podman --root "$W/pm/root" --runroot "$W/pm/run" --tmpdir "$W/pm/tmp" --storage-driver overlay \
  --events-backend file --cgroup-manager cgroupfs "$@"; }

echo "== the base image (busybox-static) for hako and podman"
mkdir -p "$W/rootfs/bin" "$W/rootfs/etc" "$W/rootfs/tmp" "$W/ctx/src"
cp /bin/busybox "$W/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$W/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$W/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$W/rootfs/etc/group"
chmod 1777 "$W/rootfs/tmp"
tar --numeric-owner -C "$W/rootfs" -cf "$W/rootfs.tar" .
"$BIN/hako" import "$W/rootfs.tar" localhost/bench/busybox:1 >/dev/null
"$BIN/hako" save -o "$W/base.tar" localhost/bench/busybox:1
pm load -q -i "$W/base.tar" >/dev/null

# The context: a few source files the build stage reads, and the Dockerfile.
for i in $(seq 1 20); do head -c 20000 /dev/urandom | base64 >"$W/ctx/src/part$i.txt"; done
cat >"$W/ctx/Dockerfile" <<'DOCKERFILE'
FROM localhost/bench/busybox:1 AS build
WORKDIR /src
COPY src/ /src/
RUN cat /src/*.txt | sha256sum > /src/digest && mkdir -p /out && cp /bin/busybox /out/busybox
RUN cp /src/digest /out/digest && echo built > /out/VERSION
FROM scratch
COPY --from=build /out/busybox /busybox
COPY --from=build /out/digest /out/VERSION /data/
ENTRYPOINT ["/busybox"]
CMD ["cat", "/data/VERSION"]
DOCKERFILE

hf() { # name command
  hyperfine --style none --runs "$RUNS" --export-json "$W/$1.json" -n "$1" "$2" >/dev/null 2>&1 \
    || { echo "bench: $1 failed" >&2; return 1; }
  jq -r '.results[0].median*1000' "$W/$1.json"
}

echo "== checking that both build and run it"
"$BIN/hako" build -q --network none -t localhost/bench/built:1 "$W/ctx" >/dev/null
[ "$("$BIN/hako" run --rm --network none localhost/bench/built:1)" = built ] || { echo "bench: hako's image does not run" >&2; exit 1; }
pm build -q --runtime runc --network none --pull=never -t localhost/bench/built:1 "$W/ctx" >/dev/null

echo "== cold (--no-cache) and fully cached builds ($RUNS runs each, hyperfine medians)"
hako_cold=$(hf hako-cold "$BIN/hako build -q --no-cache --network none -t localhost/bench/built:1 $W/ctx")
podman_cold=$(hf podman-cold "$(declare -f pm); W=$W; pm build -q --no-cache --runtime runc --network none --pull=never -t localhost/bench/built:1 $W/ctx")
hako_cached=$(hf hako-cached "$BIN/hako build -q --network none -t localhost/bench/built:1 $W/ctx")
podman_cached=$(hf podman-cached "$(declare -f pm); W=$W; pm build -q --runtime runc --network none --pull=never -t localhost/bench/built:1 $W/ctx")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\n| multi-stage build (2 stages, 10 steps, 2 RUN) | median ms | vs podman build |\n|---|---|---|\n'
printf '| hako build, cold (--no-cache) | %.0f | %s |\n' "$hako_cold" "$(ratio "$hako_cold" "$podman_cold")"
printf '| podman build, cold (--no-cache) | %.0f | 1.00 |\n' "$podman_cold"
printf '| hako build, fully cached | %.0f | %s |\n' "$hako_cached" "$(ratio "$hako_cached" "$podman_cached")"
printf '| podman build, fully cached | %.0f | 1.00 |\n' "$podman_cached"
