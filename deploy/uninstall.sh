#!/bin/bash
# Removes what deploy/install.sh installed, exactly, by its manifest, newest
# first: binaries, units, completions, docs, and the directories it created
# (when empty). Configuration files are removed only while unchanged; the data
# root (images, containers, cluster state) stays.
#
#   deploy/uninstall.sh [--purge]
#
#   --purge   also remove the data root, configuration files that were edited,
#             and (installed into /) hako's kernel state: its nftables tables,
#             links and cgroup parent (hako purge-host-state; refused while a
#             container runs)
#
# Environment: DESTDIR and PREFIX as for install.sh.
set -euo pipefail

purge=0
for a in "$@"; do
    case "$a" in
        --purge) purge=1 ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "uninstall.sh: unknown argument $a (--purge)" >&2; exit 2 ;;
    esac
done
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
MANIFEST=$PREFIX/share/hako/install-manifest
if [ ! -f "$DESTDIR$MANIFEST" ]; then
    echo "uninstall.sh: no install manifest at $DESTDIR$MANIFEST (installed with another PREFIX?)" >&2
    exit 1
fi
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    echo "uninstall.sh: removing from / needs root (sudo)" >&2
    exit 1
fi

# Units first, so systemd lets go of them.
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    for u in hako-agent.service hako-coordinator.service hako-api.socket hako-api.service; do
        if systemctl is-active --quiet "$u"; then
            echo "uninstall.sh: $u is running; stop it first (sudo systemctl disable --now $u)" >&2
            exit 1
        fi
    done
fi

# The kernel's state goes first, while the binary that knows it is still here;
# a running container stops the whole uninstall before anything is removed.
if [ "$purge" = 1 ] && [ -z "$DESTDIR" ]; then
    hako=$(awk '$1 == "file" && $3 ~ /\/bin\/hako$/ { print $3 }' "$MANIFEST" | head -n1)
    if [ -n "$hako" ] && [ -x "$hako" ]; then
        "$hako" purge-host-state || { echo "uninstall.sh: nothing removed" >&2; exit 1; }
    fi
fi

data=()
while read -r line; do [[ "$line" == data\ * ]] && data+=("${line#data }"); done <"$DESTDIR$MANIFEST"
is_data() { local d; for d in "${data[@]}"; do [ "$1" = "$d" ] && return 0; done; return 1; }

tac "$DESTDIR$MANIFEST" | while read -r kind a b; do
    case "$kind" in
        file)
            rm -f "$DESTDIR$b" ;;
        config)
            if [ ! -e "$DESTDIR$b" ]; then continue; fi
            if [ "$purge" = 1 ] || [ "$(sha256sum <"$DESTDIR$b" | cut -d' ' -f1)" = "$a" ]; then
                rm -f "$DESTDIR$b"
            else
                echo "kept $b (edited; --purge removes it)"
            fi ;;
        data)
            if [ "$purge" = 1 ] && [ -d "$DESTDIR$a" ]; then
                if [ -z "$DESTDIR" ] && pgrep -x hako-monitor >/dev/null; then
                    echo "uninstall.sh: containers are running (hako-monitor); remove them before --purge" >&2
                    exit 1
                fi
                case "$a" in /?*) rm -rf --one-file-system -- "$DESTDIR$a" ;; esac
            elif [ -d "$DESTDIR$a" ] && [ -n "$(ls -A "$DESTDIR$a")" ]; then
                echo "kept $a (data; --purge removes it)"
            fi ;;
        dir)
            rmdir "$DESTDIR$a" 2>/dev/null || { is_data "$a" || [ ! -d "$DESTDIR$a" ] || echo "kept $a (not empty)"; } ;;
    esac
done

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
echo "uninstalled hako from ${DESTDIR:-/} ($PREFIX)"
