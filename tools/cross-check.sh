#!/usr/bin/env bash
# make cross-check: the C code built for the Raspberry Pis' CPUs and run there
# as far as this machine can. For aarch64 (Pi 3/4/5, 64-bit OS) and armhf
# (32-bit Raspberry Pi OS), with Debian's cross compilers
# (crossbuild-essential-arm64, -armhf) and warnings as errors:
#   - hako-monitor and every file of CHakoShim, compiled and linked as the
#     Makefile does (MONITOR_CFLAGS);
#   - tools/cross-check/check.c, the launch-spec parser and the container log
#     writer, run under qemu-user (qemu-user-static);
#   - the monitor itself under qemu-user, refusing a launch spec without a run
#     directory and one with a bad magic, in its own words;
#   - hako-init (run --init's PID 1), linked statically, passing a command's
#     exit status on.
# The seccomp profiles for aarch64 and arm are checked by the unit tests
# (SeccompArchTests: compiled with libseccomp, run in a BPF interpreter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

read -r -a cflags <<<"${MONITOR_CFLAGS:--O2 -g0 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -ISources/CHakoShim/include -ISources/hako-monitor/include}"
cflags+=(-Werror)
out=$(mktemp -d /tmp/hako-cross-check.XXXXXX)
trap 'rm -rf "$out"' EXIT

status=0
for target in aarch64-linux-gnu:aarch64:AArch64 arm-linux-gnueabihf:arm:ARM; do
    IFS=: read -r triple arch machine <<<"$target"
    cc=$triple-gcc
    qemu=qemu-$arch-static
    for tool in "$cc" "$qemu"; do
        command -v "$tool" >/dev/null || { echo "cross-check: $tool is missing (make deps-test installs it)" >&2; exit 1; }
    done
    "$cc" "${cflags[@]}" -static -o "$out/hako-monitor-$arch" Sources/hako-monitor/*.c Sources/CHakoShim/*.c -Wl,-O1 -s
    "$cc" "${cflags[@]}" -o "$out/check-$arch" tools/cross-check/check.c Sources/CHakoShim/spec.c Sources/hako-monitor/log.c
    readelf -h "$out/hako-monitor-$arch" | grep -q "Machine: *$machine" || { echo "cross-check: $arch: hako-monitor is not an $machine binary" >&2; exit 1; }
    # run --init's PID 1, static as the Makefile builds it: it runs a command and passes its status on.
    "$cc" -O2 -g0 -std=gnu11 -Wall -Wextra -Werror -static -o "$out/hako-init-$arch" Sources/hako-init/init.c -s
    rc=0
    "$qemu" "$out/hako-init-$arch" -- /bin/sh -c 'exit 3' || rc=$?
    if [ "$rc" != 3 ]; then
        echo "cross-check: $arch: hako-init does not pass the command's status on" >&2; status=1; continue
    fi

    run=("$qemu" -L "/usr/$triple")
    if ! result=$("${run[@]}" "$out/check-$arch" 2>&1); then
        echo "$result"; echo "cross-check: $arch: FAILED" >&2; status=1; continue
    fi
    "${run[@]}" "$out/check-$arch" --write-spec "$out/spec-$arch"
    said=$("${run[@]}" "$out/hako-monitor-$arch" 3<"$out/spec-$arch" 4>&1 2>&1) && rc=0 || rc=$?
    if [ "$rc" != 1 ] || [ "$said" != "ERR 0 22 launch spec: no run dir" ]; then
        echo "cross-check: $arch: hako-monitor said \"$said\" (exit $rc), not the launch spec's missing run dir" >&2; status=1; continue
    fi
    said=$(printf 'HAKOSPEX' | "${run[@]}" "$out/hako-monitor-$arch" 3<&0 4>&1 2>&1) && rc=0 || rc=$?
    if [ "$rc" != 1 ] || [ "$said" != "ERR 0 22 launch spec: bad magic" ]; then
        echo "cross-check: $arch: hako-monitor said \"$said\" (exit $rc) to a bad magic" >&2; status=1; continue
    fi
    echo "cross-check: $arch ($triple): built with -Werror; $result; hako-monitor refuses bad launch specs"
done
exit $status
