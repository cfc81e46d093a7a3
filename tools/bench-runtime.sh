#!/usr/bin/env bash
# OCI runtime benchmark (part of make bench): hako-runtime against runc and crun
# in the same run, with the shared measuring tool on one busybox bundle:
#   run of /bin/true, create+start+delete (hyperfine medians, ratio to crun),
#   peak RSS of run/create/start/delete, binary sizes.
# Goals (docs/benchmarks.md): run and create+start+delete medians <= 1.0x crun's,
# peak RSS <= runc's. Everything the tool creates lives under a temp dir and is
# deleted by id.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=${HAKO_BIN_DIR:-$REPO/.build/release}
SHARED=${SHARED_TOOLS:-}
for c in "$SHARED" "$REPO/../shared/tools" /work/shared/tools; do
  [ -n "$c" ] && [ -x "$c/bench-runtimes.sh" ] && { SHARED=$(cd "$c" && pwd); break; }
done
[ -x "${SHARED:-}/bench-runtimes.sh" ] || { echo "bench: ../shared/tools/bench-runtimes.sh not found (set SHARED_TOOLS)" >&2; exit 1; }
[ -x "$BIN/hako-runtime" ] || { echo "bench: $BIN/hako-runtime not built (make build)" >&2; exit 1; }
OUT=$(mktemp -d /tmp/hako-bench-runtime.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
# The tool finds runtimes on PATH by name. BASELINE_BIN_DIR: another build's
# hako-runtime (main's), measured as hako-runtime-baseline in the same run.
# PEERS: the other runtimes (default runc crun; crun is the ratios' reference).
mkdir -p "$OUT/bin"
RUNTIMES=(hako-runtime)
if [ -n "${BASELINE_BIN_DIR:-}" ]; then
  ln -s "$(cd "$BASELINE_BIN_DIR" && pwd)/hako-runtime" "$OUT/bin/hako-runtime-baseline"
  RUNTIMES+=(hako-runtime-baseline)
fi
# From the page cache a boot leaves (as tools/bench-lifecycle.sh): dropped
# here, faulted in by the runs' own execs.
for b in "$BIN/hako-runtime" ${BASELINE_BIN_DIR:+"$BASELINE_BIN_DIR/hako-runtime"}; do
  dd if="$b" iflag=nocache count=0 status=none
done
PATH="$BIN:$OUT/bin:$PATH" "$SHARED/bench-runtimes.sh" --out "$OUT/run" ${BENCH_RUNTIME_ARGS:-} "${RUNTIMES[@]}" ${PEERS:-runc crun}
echo
shared=$(ldd "$BIN/hako-runtime" 2>/dev/null | awk '/=>/ {sub(/\.so.*/, "", $1); printf "%s ", $1}')
ls -l "$BIN/hako-runtime" | awk -v s="$shared" '{printf "hako-runtime binary: %.2f MB (static Swift runtime and C libraries; shared: %s)\n", $5/1e6, s}'
