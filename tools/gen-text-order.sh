#!/usr/bin/env bash
# Regenerates tools/hako.order, the order the linker lays hako's functions out
# in (Package.swift, textOrder): every function a `run --rm`, `run -d`, `ps`,
# `images` and `--version` execute, as callgrind names them (first the run's),
# each as its section `.text.<mangled name>`. Not part of the build: run it
# after large changes to the commands' paths (a stale entry is only skipped).
# Needs valgrind and a release build (make build); everything it makes lives
# in a temp dir, its own data root and cgroup parent, and is removed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${HAKO_BIN_DIR:-.build/release}
SHARED=${SHARED_TOOLS:-../shared/tools}
command -v valgrind >/dev/null || { echo "gen-text-order: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
[ -x "$SHARED/make-bundle.sh" ] || { echo "gen-text-order: $SHARED/make-bundle.sh not found (set SHARED_TOOLS)" >&2; exit 1; }

W=$(mktemp -d /tmp/hako-text-order.XXXXXX)
export HAKO_ROOT=$W/root HAKO_RUN_ROOT=$W/run HAKO_CGROUP_PARENT=hako-text-order-$$
cleanup() {
  set +e
  ids=$("$W/bin/hako" ps -aq --no-trunc 2>/dev/null)
  [ -n "$ids" ] && "$W/bin/hako" rm -f $ids >/dev/null 2>&1
  for d in /sys/fs/cgroup/*/"$HAKO_CGROUP_PARENT" /sys/fs/cgroup/"$HAKO_CGROUP_PARENT"; do [ -d "$d" ] && rmdir "$d"; done
  rm -rf "$W"
}
trap cleanup EXIT

# valgrind cannot read the DWARF 5 the toolchain writes: a copy without it.
mkdir -p "$W/bin"
cp "$BIN/hako" "$BIN/hako-monitor" "$BIN/hako-init" "$W/bin/"
strip -g "$W/bin/hako"
"$SHARED/make-bundle.sh" --rw --tar "$W/rootfs.tar.gz" "$W/bundle" -- /bin/true >/dev/null
"$W/bin/hako" import "$W/rootfs.tar.gz" order:busybox >/dev/null

n=0
for args in "run --rm --network none order:busybox /bin/true" "run -d --network none order:busybox sleep 5" \
            "ps -a" "images" "--version"; do
  n=$((n + 1))
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$W/cg.$n" "$W/bin/hako" $args >/dev/null 2>&1
done

# Each function once, in the order the profiles first name it.
for i in $(seq "$n"); do sed -n 's/^c\{0,1\}fn=([0-9]*) \(.*\)$/\1/p' "$W/cg.$i"; done \
  | awk '!/^0x/ && !seen[$0]++ { print ".text." $0 }' > tools/hako.order
echo "gen-text-order: $(wc -l < tools/hako.order) functions in tools/hako.order"
