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

Options every engine command takes (`--root`, `--run-root`, `--log-level`)
may also stand before the command, as in docker and podman:
`hako --root /srv/hako ps`, `hako --log-level debug run …`.

`--format` (`ps`, `images`, `inspect` of every kind, `network ls`, `volume ls`,
`stats`, `events`, `history`, `info`, `version`, `system df` and the `hako
cluster` listings) takes what docker's does: `table` (the default), `json`
(one object per line), a Go template printed once per row
(`{{.Names}}`, `{{.State.Pid}}`, `{{json .}}`, `{{range}}` (with `$i, $e :=`,
`{{break}}`, `{{continue}}`)/`{{if}}`/`{{with}}`, `{{else}}`, variables,
`{{define "n"}}`/`{{template "n" .}}`/`{{block "n" .}}`,
`{{index .Labels "k"}}`, `{{join .Names ","}}`, `{{lower}}`, `{{upper}}`,
`{{printf "%-10s" .Name}}`, `print`, `println`, `len`, `slice`,
`eq`/`ne`/`lt`/`le`/`gt`/`ge`, `and`/`or` (stopping at the deciding operand)/`not`,
`split`, `title`, `pad`, `truncate`, `html`, `js`, `urlquery`), or `table TEMPLATE` for aligned
columns under a header; `\t` and `\n` in a format are a tab and a newline.
The fields are those of the command's `json` output. A template error names
its line and column (`template: 1:14: can't evaluate field Nope …`) and the
command exits 125 before printing any row.

`--filter KEY=VALUE`: `ps` takes `status`, `name`, `label` (KEY or KEY=VALUE),
`ancestor`, `network`, `volume`, `id`, `exited`, `before`, `since`; `images`
takes `dangling`, `label`, `reference` (a shell pattern), `before`, `since`;
`container prune` takes `until`, `label`, `label!`. Values of one key are
alternatives (labels must all match); different keys must all hold.

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
