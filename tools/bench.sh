#!/usr/bin/env bash
# make bench: runs every tools/bench-*.sh in turn; each measures hako against
# its peers in the same run and prints a markdown table of figures and ratios.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
status=0
for b in "$HERE"/bench-*.sh; do
  echo "#### $(basename "$b" .sh)"
  "$b" || { echo "$(basename "$b") failed" >&2; status=1; }
  echo
done
exit $status
