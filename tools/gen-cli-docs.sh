#!/bin/bash
# The CLI reference, docs/cli.md, generated from the command line's own
# declarations: the command tree from `hako help --commands`, then `hako help`
# of every command. `make docs` writes it; a test checks the committed file is current.
#
#   tools/gen-cli-docs.sh [HAKO_BINARY] > docs/cli.md
set -euo pipefail
hako=${1:-.build/release/hako}
paths=$("$hako" help --commands)

cat <<'HEAD'
# hako command reference

Generated from hako's command-line declarations by `tools/gen-cli-docs.sh` (`make docs`);
do not edit by hand; `hako help COMMAND` prints the same. Exit codes follow
Docker's: 125 hako's own error, 126 the command cannot be executed, 127 not
found, anything else is the container's.

HEAD
echo "Commands:"
echo
while read -r p; do
    anchor=$(echo "$p" | tr ' ' '-')
    echo "- [\`$p\`](#$anchor)"
done <<<"$paths"
echo
while read -r p; do
    echo "## $p"
    echo
    echo '```'
    # shellcheck disable=SC2086
    "$hako" help ${p#hako} | sed -e 's/[[:space:]]*$//'
    echo '```'
    echo
done <<<"$paths"
