#!/usr/bin/env bash
# The OCI runtime-tools validation suite against hako-runtime and its peers,
# run as the suite's `localvalidation` target does (RUNTIME=... per binary).
# Not part of `make test`: the suite is fetched separately and never committed.
#
#   tools/conformance.sh RUNTIME_TOOLS_CHECKOUT [RUNTIME...]
#
# RUNTIME defaults to ".build/release/hako-runtime runc crun"; crun runs inside
# ../shared/tools/cgv1-view.sh (crun 1.8 refuses cgroup v1 hybrid hosts).
# Builds runtimetest (static) and the 58 validation binaries with the host's Go
# into the checkout, runs each binary with a 120 s bound, prints a markdown
# table (per binary and runtime: PASS/FAIL, ok/not-ok counts) and totals.
# The parents the suite's relative cgroupsPath tests create (testdir/cgrouptest:
# a runtime removes only its container's own cgroup, as runc does) are removed
# after each runtime when empty.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SUITE=${1:?usage: tools/conformance.sh RUNTIME_TOOLS_CHECKOUT [RUNTIME...]}
shift
SUITE=$(cd "$SUITE" && pwd)
RUNTIMES=("$@")
[ ${#RUNTIMES[@]} -gt 0 ] || RUNTIMES=("$REPO/.build/release/hako-runtime" runc crun)
VIEW=""
for c in "$REPO/../shared/tools" /work/shared/tools; do
  [ -x "$c/cgv1-view.sh" ] && { VIEW="$c/cgv1-view.sh"; break; }
done

export GOFLAGS=-mod=vendor GOCACHE=${GOCACHE:-$SUITE/.gocache}
if ! (cd "$SUITE" && make runtimetest validation-executables >/dev/null); then
  echo "conformance: building the suite failed (Debian 12's Go 1.19 builds runtime-tools up to v0.9.0-120-g260e151)" >&2
  exit 1
fi

OUT=$(mktemp -d /tmp/hako-conformance.XXXXXX)
run_one() {  # RUNTIME OUTDIR
  local rt=$1 dir=$2 t n rc
  mkdir -p "$dir"
  for t in "$SUITE"/validation/*/*.t; do
    n=$(basename "$t" .t)
    (cd "$SUITE" && RUNTIME=$rt timeout -k 5 120 "$t" >"$dir/$n.tap" 2>&1); rc=$?
    printf '%s %d %d %d\n' "$n" "$rc" "$(grep -c '^ok ' "$dir/$n.tap")" "$(grep -c '^not ok' "$dir/$n.tap")"
  done >"$dir/summary.txt"
}
remove_test_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/testdir /sys/fs/cgroup/*/cgrouptest; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}
for i in "${!RUNTIMES[@]}"; do
  rt=$(command -v "${RUNTIMES[$i]}" || echo "${RUNTIMES[$i]}")
  if [ "$(basename "$rt")" = crun ] && [ -n "$VIEW" ]; then
    export -f run_one
    export SUITE
    "$VIEW" bash -c "run_one '$rt' '$OUT/$i'"
  else
    run_one "$rt" "$OUT/$i"
  fi
  remove_test_cgroups
done

printf '| binary |'
for rt in "${RUNTIMES[@]}"; do printf ' %s |' "$(basename "$rt")"; done
printf '\n|---|'
for _ in "${RUNTIMES[@]}"; do printf -- '---|'; done
printf '\n'
declare -A passed
while read -r n _; do
  printf '| %s |' "$n"
  for i in "${!RUNTIMES[@]}"; do
    read -r _ rc ok nok < <(grep "^$n " "$OUT/$i/summary.txt")
    if [ "$rc" = 0 ] && [ "$nok" = 0 ]; then v=PASS; passed[$i]=$(( ${passed[$i]:-0} + 1 )); else v=FAIL; fi
    printf ' %s %s/%s |' "$v" "$ok" "$nok"
  done
  printf '\n'
done <"$OUT/0/summary.txt"
printf '| **binaries passed** |'
for i in "${!RUNTIMES[@]}"; do printf ' **%s** |' "${passed[$i]:-0}"; done
printf '\n\nTAP output: %s\n' "$OUT"
