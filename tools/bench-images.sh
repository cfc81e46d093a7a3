#!/usr/bin/env bash
# Image benchmark (part of make bench): hako against its peers in the same run.
#   1. pull + unpack of a ~100 MB, 3-layer image (gzip layers) from a local
#      registry into an empty store: `hako pull` vs `podman pull` (overlay
#      store) and `skopeo copy` to an OCI layout (download only, no unpack).
#      Goal: hako <= 0.5x podman.
#   2. `hako load` vs `podman load` of the same docker-archive. Goal: <= 0.5x.
# Besides the wall-clock medians, the CPU time (user + sys, hyperfine's means
# over the runs, the tool's own processes) of each side: a busy machine
# disturbs it less than the wall time.
# The image is built here from files of this machine (python3's library,
# perl's, shared libraries): many small files and some large ones. The
# registry (Debian's docker-registry) listens on 127.0.0.1 only. Everything
# lives under a temp dir and is removed at the end.
set -euo pipefail
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${HAKO_BIN_DIR:-$REPO/.build/release}
RUNS=${RUNS:-5}

# /var/tmp, not /tmp: on the development machines file creation in /tmp is ten times slower.
W=$(mktemp -d "${BENCH_TMP:-/var/tmp}/hako-bench-img.XXXXXX")
export HAKO_ROOT=$W/hako HAKO_RUN_ROOT=$W/run HAKO_CGROUP_PARENT=hako-bench-img-$$
REG_PID=
cleanup() {
  set +e
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
  grep -F " $W/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
  chmod -R u+w "$W" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

pm() { podman --root "$W/pm/root" --runroot "$W/pm/run" --tmpdir "$W/pm/tmp" --storage-driver overlay \
  --events-backend file --cgroup-manager cgroupfs "$@"; }

echo "== registry on 127.0.0.1"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 45300)
mkdir -p "$W/storage"
cat >"$W/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/storage
http:
  addr: 127.0.0.1:$PORT
  secret: bench-only
EOF
docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -s --noproxy '*' -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.1; done
REG=127.0.0.1:$PORT

echo "== building a 3-layer image"
mkdir -p "$W/l1" "$W/l2" "$W/l3" "$W/archive"
mkdir -p "$W/l1/bin" && cp /bin/busybox "$W/l1/bin/" && for a in sh ls cat; do ln -s busybox "$W/l1/bin/$a"; done
cp -a /usr/lib/python3 "$W/l1/python3"
cp -a /usr/share/perl "$W/l2/perl"
mkdir -p "$W/l3/lib"
find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -name '*.so*' -size +200k -size -3M | sort | head -60 | xargs -I{} cp {} "$W/l3/lib/"
diffs=()
for i in 1 2 3; do
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$W/l$i" -cf "$W/l$i.tar" .
  diffs+=("\"sha256:$(sha256sum "$W/l$i.tar" | cut -c1-64)\"")
  gzip -1 -c "$W/l$i.tar" >"$W/archive/l$i.tar.gz"
done
total=$(du -cb "$W"/l?.tar | tail -1 | cut -f1)
cat >"$W/archive/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[$(IFS=,; echo "${diffs[*]}")]}}
EOF
echo "[{\"Config\":\"config.json\",\"RepoTags\":[\"$REG/bench/image:1\"],\"Layers\":[\"l1.tar.gz\",\"l2.tar.gz\",\"l3.tar.gz\"]}]" >"$W/archive/manifest.json"
tar -C "$W/archive" -cf "$W/image.tar" manifest.json config.json l1.tar.gz l2.tar.gz l3.tar.gz
"$BIN/hako" load -q -i "$W/image.tar" >/dev/null
"$BIN/hako" push "$REG/bench/image:1" >/dev/null
files=$(for i in 1 2 3; do tar -tf "$W/l$i.tar"; done | wc -l)
echo "   $((total / 1000000)) MB in 3 layers ($(du -cb "$W"/archive/l?.tar.gz | tail -1 | cut -f1 | awk '{printf "%d", $1/1e6}') MB gzip), $files entries"
rm -rf "$W/l1" "$W/l2" "$W/l3" "$W"/l?.tar

hf() { # name prepare command
  hyperfine --style none --runs "$RUNS" --prepare "$2" --export-json "$W/$1.json" -n "$1" "$3" >/dev/null 2>&1 \
    || { echo "bench: $1 failed" >&2; return 1; }
  jq -r '.results[0].median*1000' "$W/$1.json"
}
cpu() { jq -r '(.results[0].user + .results[0].system)*1000' "$W/$1.json"; }
fresh_hako="rm -rf $W/pull-root; sync"
fresh_pm="chmod -R u+w $W/pm 2>/dev/null; rm -rf $W/pm $W/oci; sync"

echo "== pull + unpack into an empty store ($RUNS runs each, hyperfine medians)"
hako_pull=$(hf hako-pull "$fresh_hako" "HAKO_ROOT=$W/pull-root $BIN/hako pull -q $REG/bench/image:1")
podman_pull=$(hf podman-pull "$fresh_pm" "$(declare -f pm); W=$W; pm pull -q --tls-verify=false $REG/bench/image:1")
skopeo_copy=$(hf skopeo-copy "$fresh_pm" "skopeo copy -q --src-tls-verify=false docker://$REG/bench/image:1 oci:$W/oci:bench")

echo "== load of the same docker-archive"
hako_load=$(hf hako-load "$fresh_hako" "HAKO_ROOT=$W/pull-root $BIN/hako load -q -i $W/image.tar")
podman_load=$(hf podman-load "$fresh_pm" "$(declare -f pm); W=$W; pm load -q -i $W/image.tar")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() { # label name podman-name
  local t c pt pc
  t=$(jq -r '.results[0].median*1000' "$W/$2.json"); c=$(cpu "$2")
  pt=$(jq -r '.results[0].median*1000' "$W/$3.json"); pc=$(cpu "$3")
  printf '| %s | %.0f | %s | %.0f | %s |\n' "$1" "$t" "$(ratio "$t" "$pt")" "$c" "$(ratio "$c" "$pc")"
}
printf '\n| %d MB, 3 layers | median ms | vs podman | CPU ms (user+sys) | CPU vs podman |\n|---|---|---|---|---|\n' "$((total / 1000000))"
row "hako pull (download + unpack, layers in parallel)" hako-pull podman-pull
row "podman pull (overlay store)" podman-pull podman-pull
row "skopeo copy to an OCI layout (no unpack)" skopeo-copy podman-pull
row "hako load" hako-load podman-load
row "podman load (overlay store)" podman-load podman-load
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
