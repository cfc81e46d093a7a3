#!/bin/bash
# Installs hako: the binaries (hako, hako-monitor, hako-runtime, hako-init, built with the
# Swift standard library linked statically), the data and run directories, the
# default configuration (never overwriting one that exists), the systemd units
# and the shell completions; and writes a manifest that deploy/uninstall.sh
# reverses exactly.
#
#   deploy/install.sh [--no-build]        (or: make install)
#
# Environment (as make install passes it):
#   DESTDIR      staging root, for packaging or tests (default: none)
#   PREFIX       /usr/local
#   BINDIR       $PREFIX/bin
#   SYSCONFDIR   /etc/hako           the daemons' configuration
#   UNITDIR      $PREFIX/lib/systemd/system  (systemd reads /usr/local/lib/systemd/system too)
#   DATADIR      /var/lib/hako       the data root (engine.json lives here)
#   RUNDIR       /run/hako
#   BUILD_DIR    .build/release      where the built binaries are, with completions/
#                                    and version (make build makes them; the binaries
#                                    are never run here, so a cross build installs)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
build=1
for a in "$@"; do
    case "$a" in
        --no-build) build=0 ;;
        -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $a (--no-build)" >&2; exit 2 ;;
    esac
done

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
BINDIR=${BINDIR:-$PREFIX/bin}
SYSCONFDIR=${SYSCONFDIR:-/etc/hako}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
DATADIR=${DATADIR:-/var/lib/hako}
RUNDIR=${RUNDIR:-/run/hako}
SHAREDIR=$PREFIX/share
DOCDIR=$SHAREDIR/doc/hako
MANIFEST=$SHAREDIR/hako/install-manifest
BUILD_DIR=${BUILD_DIR:-$repo/.build/release}

for v in PREFIX BINDIR SYSCONFDIR UNITDIR DATADIR RUNDIR; do
    case "${!v}" in /*) ;; *) echo "install.sh: $v must be an absolute path (got \"${!v}\")" >&2; exit 2 ;; esac
done
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: installing into / needs root (sudo), or set DESTDIR" >&2
    exit 1
fi

if [ "$build" = 1 ]; then
    make -C "$repo" build
fi
for b in hako hako-monitor hako-runtime hako-init; do
    [ -x "$BUILD_DIR/$b" ] || { echo "install.sh: $BUILD_DIR/$b is missing: run make build (or drop --no-build)" >&2; exit 1; }
done
# Made by make build (make extras), so that the binaries installed are never
# run here: a cross-built hako installs from a machine that cannot run it.
for f in completions/hako.bash completions/_hako completions/hako.fish version; do
    [ -s "$BUILD_DIR/$f" ] || { echo "install.sh: $BUILD_DIR/$f is missing: run make build, or for a cross build make extras BIN_DIR=$BUILD_DIR HOST_HAKO=<a hako that runs here>" >&2; exit 1; }
done
version=$(head -n1 "$BUILD_DIR/version")

# The staging root itself is the caller's: made when missing, never recorded.
if [ -n "$DESTDIR" ]; then
    case "$DESTDIR" in /*) ;; *) DESTDIR=$PWD/$DESTDIR ;; esac
    mkdir -p -- "$DESTDIR"
fi

# The manifest: one line per thing installed, in order, so that uninstall can
# go backwards. "dir PATH" (created here), "file SHA256 PATH", "config SHA256 PATH"
# (removed by uninstall only while unchanged), "data PATH" (kept unless --purge).
staged_manifest=$(mktemp)
trap 'rm -f "$staged_manifest"' EXIT
old_manifest="$DESTDIR$MANIFEST"
record() { echo "$*" >>"$staged_manifest"; }
# Directories (and the data root) an earlier install created stay ours, in
# their order (parents first), whether or not they are made again now.
if [ -f "$old_manifest" ]; then grep -E '^(dir|data) ' "$old_manifest" >>"$staged_manifest" || true; fi

mkdirs() {  # mkdirs MODE DIR: creates DIR and its missing parents (below /), recording each
    local mode=$1 dir=$2 missing=() d
    d=$dir
    while [ "$d" != / ] && [ ! -d "$DESTDIR$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
    for d in "${missing[@]}"; do
        mkdir -m "$mode" "$DESTDIR$d"
        record "dir $d"
    done
}

# put MODE SRC DEST: atomically (a running hako-monitor keeps its old inode).
put() {
    local mode=$1 src=$2 dest=$3 tmp
    mkdirs 0755 "$(dirname "$dest")"
    tmp=$(mktemp "$DESTDIR$dest.XXXXXX")
    cat "$src" >"$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$DESTDIR$dest"
    record "file $(sha256sum <"$DESTDIR$dest" | cut -d' ' -f1) $dest"
}

# config MODE SRC DEST: installed once; an existing file is the admin's.
config() {
    local mode=$1 src=$2 dest=$3
    mkdirs 0755 "$(dirname "$dest")"
    if [ -e "$DESTDIR$dest" ]; then
        # Ours from an earlier install: keep the record (uninstall still knows it).
        if [ -f "$old_manifest" ]; then grep -E "^config [0-9a-f]{64} $(printf '%s' "$dest" | sed 's/[.[\*^$/]/\\&/g')\$" "$old_manifest" >>"$staged_manifest" || true; fi
        echo "kept $dest (exists; the new default is $DOCDIR/examples/$(basename "$dest"))"
        return
    fi
    install -m "$mode" "$src" "$DESTDIR$dest"
    record "config $(sha256sum <"$DESTDIR$dest" | cut -d' ' -f1) $dest"
}

subst() {
    sed -e "s#@BINDIR@#$BINDIR#g" -e "s#@SYSCONFDIR@#$SYSCONFDIR#g" -e "s#@DOCDIR@#$DOCDIR#g" "$1"
}

work=$(mktemp -d)
trap 'rm -f "$staged_manifest"; rm -rf "$work"' EXIT

# Binaries.
for b in hako hako-monitor hako-runtime hako-init; do put 0755 "$BUILD_DIR/$b" "$BINDIR/$b"; done

# Data root (engine state, images, the agent's and coordinator's state) and
# run root (monitor sockets and locks; a tmpfs, made again by hako after a boot).
mkdirs 0711 "$DATADIR"
grep -qxF "data $DATADIR" "$staged_manifest" || record "data $DATADIR"
mkdirs 0711 "$RUNDIR"

# Configuration: the daemons' files with every key at its default.
config 0644 "$repo/config/coordinator.toml" "$SYSCONFDIR/coordinator.toml"
config 0644 "$repo/config/agent.toml" "$SYSCONFDIR/agent.toml"

# systemd units.
for u in hako-coordinator.service hako-agent.service hako-restart.service; do
    subst "$here/$u" >"$work/$u"
    put 0644 "$work/$u" "$UNITDIR/$u"
done

# Shell completions, generated at build time from the command-line declarations.
put 0644 "$BUILD_DIR/completions/hako.bash" "$SHAREDIR/bash-completion/completions/hako"
put 0644 "$BUILD_DIR/completions/_hako" "$SHAREDIR/zsh/site-functions/_hako"
put 0644 "$BUILD_DIR/completions/hako.fish" "$SHAREDIR/fish/vendor_completions.d/hako.fish"

# Documentation and the example configurations.
for f in "$repo"/docs/*.md; do put 0644 "$f" "$DOCDIR/$(basename "$f")"; done
for f in "$repo"/config/*.toml "$repo"/config/engine.json "$repo"/config/README.md "$here"/prometheus/prometheus.yml "$here"/prometheus/hako-alerts.yml; do
    put 0644 "$f" "$DOCDIR/examples/$(basename "$f")"
done

# An upgrade drops what the earlier version installed and this one does not.
if [ -f "$old_manifest" ]; then
    while read -r kind sum path; do
        [ "$kind" = file ] && [ "$path" != "$MANIFEST" ] || continue
        grep -qE "^file [0-9a-f-]+ $(printf '%s' "$path" | sed 's/[.[\*^$/]/\\&/g')\$" "$staged_manifest" || rm -f "$DESTDIR$path"
    done <"$old_manifest"
fi

# The manifest last; it lists itself, so uninstall removes it with the rest.
mkdirs 0755 "$(dirname "$MANIFEST")"
record "file - $MANIFEST"
cp "$staged_manifest" "$DESTDIR$MANIFEST"
chmod 0644 "$DESTDIR$MANIFEST"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
echo "installed hako $version into ${DESTDIR:-/} ($PREFIX)"
if [ -z "$DESTDIR" ]; then
    cat <<NEXT
next (see $DOCDIR/getting-started.md):
  coordinator: sudo hako cluster init --config $SYSCONFDIR/coordinator.toml && sudo systemctl enable --now hako-coordinator
  each node:   sudo hako agent --config $SYSCONFDIR/agent.toml --join-only --join TOKEN COORDINATOR && sudo systemctl enable --now hako-agent
  upgrade:     install again, then sudo systemctl restart hako-agent (containers keep running)
NEXT
fi
