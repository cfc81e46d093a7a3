#!/usr/bin/env bash
# The cgroup v2 tier: boots Debian's kernel (linux-image-amd64) in QEMU with
# cgroup2 alone at /sys/fs/cgroup, as Raspberry Pi OS and Debian 12 boot, and
# runs the integration tests that touch cgroups and devices in it.
#
# The VM's root is this host's / shared read-only over 9p under a tmpfs
# overlay, so it runs the binaries and the test bundle built here. A small
# initramfs (busybox-static and the kernel's virtio, 9p and overlay modules)
# builds that root, mounts cgroup2 and hands over to the test script. Results
# come back over a second, writable 9p share.
#
#   tools/vm-test.sh                 run the tier (the suites below)
#   tools/vm-test.sh --filter REGEX  run these tests instead (repeatable)
#   tools/vm-test.sh --shell         a shell on the VM's console (exit: power off;
#                                    TCG unless HAKO_VM_ACCEL=kvm)
#
# HAKO_BIN_DIR       release binaries (default .build/release)
# HAKO_TEST_BUNDLE   the swift-testing bundle (default .build/debug/hakoPackageTests.xctest)
# HAKO_VM_ACCEL      kvm | tcg | auto (default: KVM when it boots, else TCG)
# HAKO_VM_TIMEOUT    seconds the whole run may take (default 900)
#
# A VM that does not boot or does not finish fails the tier. A missing qemu,
# kernel, binaries or test bundle fails it under CI=true and is reported as
# skipped otherwise. The VM has no network device: the tests' traffic stays
# in the namespaces they make inside it.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

BIN_DIR=$(realpath "${HAKO_BIN_DIR:-.build/release}")
BUNDLE=${HAKO_TEST_BUNDLE:-.build/debug/hakoPackageTests.xctest}
ACCEL=${HAKO_VM_ACCEL:-auto}
TIMEOUT=${HAKO_VM_TIMEOUT:-900}
SHELL_MODE=0
FILTERS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shell) SHELL_MODE=1 ;;
    --filter) FILTERS+=("$2"); shift ;;
    *) echo "vm-test: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
# The suites that touch cgroups, devices and their clean-up (docs/architecture.md, "Tests").
if [ ${#FILTERS[@]} -eq 0 ]; then
  FILTERS=(
    'CgroupDriverTests'
    'ResourceLimitTests'
    'HardeningTests/(devices|privileged|userNamespaces|maskedAndReadOnlyPaths)'
    'LifecycleTests/(pauseFreezes|killingTheCLIKeepsTheContainer|killingTheCLIMidStart|killingTheMonitorIsDetected|removeLeavesNoTrace|hostNamespacesWhenAsked|execJoinsTheContainer)'
    'OCIRuntimeTests/(killAllPauseResumeUpdateAndPs|runReturnsTheExitStatusAndCleansUp|aFailedCreateLeavesNothingBehind)'
    'NetworkTests/defaultBridgeGivesAddressRouteAndOutboundNAT'
    'UpgradeTests'
    'ContainerHealthTests/(aFailingCheckTurnsUnhealthyAfterRetries|aProbePastItsTimeoutIsKilledAndCounted)'
  )
fi

skip_or_fail() {
  if [ "${CI:-}" = true ]; then echo "vm-test: FAILED: $1" >&2; exit 1; fi
  echo "vm-test: skipped: $1" >&2
  exit 0
}

command -v qemu-system-x86_64 >/dev/null || skip_or_fail "qemu-system-x86_64 is not installed (make deps)"
# The newest Debian kernel with its modules.
KVER=
for k in $(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sort -V -r); do
  v=${k#/boot/vmlinuz-}
  if [ -d "/lib/modules/$v/kernel" ]; then KVER=$v; break; fi
done
[ -n "$KVER" ] || skip_or_fail "no Debian kernel in /boot (apt-get install linux-image-amd64)"
KERNEL=/boot/vmlinuz-$KVER
[ -x "$BIN_DIR/hako" ] && [ -x "$BIN_DIR/hako-monitor" ] || skip_or_fail "no release binaries in $BIN_DIR (make build)"
if [ $SHELL_MODE -eq 0 ]; then
  [ -x "$BUNDLE" ] || skip_or_fail "no test bundle at $BUNDLE (swift build --build-tests)"
  BUNDLE=$(realpath "$BUNDLE")
fi

WORK=$(mktemp -d /tmp/hako-vm-XXXXXX)
QEMU_PID=
cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
# Interrupted or stopped: the EXIT trap still stops qemu and removes the work directory.
trap "exit 130" INT TERM
mkdir -p "$WORK/initrd/bin" "$WORK/initrd/lib/modules" "$WORK/initrd/proc" "$WORK/initrd/sys" "$WORK/initrd/dev" "$WORK/results"

# --- the initramfs: busybox and the modules that reach the root --------------
cp /bin/busybox "$WORK/initrd/bin/busybox"
: > "$WORK/initrd/modules"
for m in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
  case "$ko" in
    *.ko) cp "$ko" "$WORK/initrd/lib/modules/" ;;
    *.ko.xz) xz -dc "$ko" > "$WORK/initrd/lib/modules/$(basename "${ko%.xz}")" ;;
    *.ko.zst) zstd -qdc "$ko" > "$WORK/initrd/lib/modules/$(basename "${ko%.zst}")" ;;
  esac
  b=$(basename "$ko"); echo "${b%%.ko*}.ko" >> "$WORK/initrd/modules"
done

cat > "$WORK/initrd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "hako-vm: booted"
for m in $(cat /modules); do insmod /lib/modules/$m || { echo "hako-vm: insmod $m failed"; poweroff -f; }; done
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 host /lower || { echo "hako-vm: cannot mount the host's root"; poweroff -f; }
mount -t tmpfs -o mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot
for d in proc sys dev; do mount --move /$d /newroot/$d; done
# cgroup v2 alone, as the Pis boot (systemd mounts it with nsdelegate).
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /newroot/sys/fs/cgroup
for d in tmp run var/tmp var/lib/hako; do mkdir -p /newroot/$d; mount -t tmpfs -o mode=1777 tmpfs /newroot/$d; done
# The checkout and the binaries stay visible when they lie under one of those
# (a clone in /tmp, as CI may make): the host's copy, bound read-only.
while read -r keep; do
  case "$keep/" in
    /tmp/*|/run/*|/var/tmp/*|/var/lib/hako/*) mkdir -p "/newroot$keep"; mount --bind "/lower$keep" "/newroot$keep" || { echo "hako-vm: cannot bind $keep"; poweroff -f; } ;;
  esac
done < /keep-paths
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,gid=5 devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
RESULTS=$(cat /results-path)
mkdir -p /newroot$RESULTS
mount -t 9p -o trans=virtio,version=9p2000.L results /newroot$RESULTS || { echo "hako-vm: cannot mount the results"; poweroff -f; }
exec switch_root /newroot /bin/sh "$RESULTS/stage2"
EOF
chmod 755 "$WORK/initrd/init"
echo "$WORK/results" > "$WORK/initrd/results-path"
printf '%s\n' "$REPO" "$BIN_DIR" > "$WORK/initrd/keep-paths"

# --- the second stage, in the VM's root (this host's files) ------------------
{
  echo '#!/bin/sh'
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 CI=true'
  # Emulated CPUs are slow: an agent restart outlasts the cluster harness's 3 s grace.
  echo 'export HAKO_TEST_CLUSTER_GRACE=30s'
  echo "export HAKO_BIN_DIR='$BIN_DIR'"
  echo 'hostname hako-vm; ip link set lo up; modprobe loop 2>/dev/null'
  echo "echo \"hako-vm: \$(uname -r), cgroup controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)\""
  # Controllers for hako's cgroups, as systemd delegates them on a Pi.
  echo 'for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; done'
  echo "cd '$REPO'"
  if [ $SHELL_MODE -eq 1 ]; then
    echo 'echo "hako-vm: a shell (exit powers the VM off)"'
    echo 'setsid /bin/busybox cttyhack /bin/bash -l || setsid /bin/busybox cttyhack /bin/sh'
  else
    args="--testing-library swift-testing"
    for f in "${FILTERS[@]}"; do args+=" --filter '$f'"; done
    echo "'$BUNDLE' $args > '$WORK/results/test.log' 2>&1"
    echo "echo \$? > '$WORK/results/status'"
    # Nothing of the tests may be left: cgroups, mounts of the containers.
    echo "find /sys/fs/cgroup -mindepth 1 -type d > '$WORK/results/cgroups-left'"
  fi
  echo 'sync; /bin/busybox poweroff -f'
} > "$WORK/results/stage2"
chmod 755 "$WORK/results/stage2"

(cd "$WORK/initrd" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initrd.img"

# --- boot ------------------------------------------------------------------
qemu_args() {
  local accel=$1
  local cpu=max
  [ "$accel" = kvm ] && cpu=host
  echo -accel "$accel" -cpu "$cpu" -smp 2 -m 2048 -no-reboot -nodefaults -nic none -display none \
    -kernel "$KERNEL" -initrd "$WORK/initrd.img" \
    -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$WORK/results,mount_tag=results,security_model=none" \
    -drive "file=$WORK/disk.img,format=raw,if=virtio"
}
truncate -s 64M "$WORK/disk.img"
# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check
# can miss its ticks and panic ("IO-APIC + timer doesn't work!").
CMDLINE="console=ttyS0 panic=-1 quiet loglevel=3 no_timer_check rdinit=/init"

if [ $SHELL_MODE -eq 1 ]; then
  accel=tcg
  [ "$ACCEL" = kvm ] && accel=kvm
  # Not exec'd: the EXIT trap removes the work directory afterwards.
  # shellcheck disable=SC2046
  qemu-system-x86_64 $(qemu_args "$accel") -serial mon:stdio -append "$CMDLINE"
  exit $?
fi

boot() {
  local accel=$1 wait_boot=$2
  : > "$WORK/console.log"
  # shellcheck disable=SC2046
  qemu-system-x86_64 $(qemu_args "$accel") -serial "file:$WORK/console.log" -append "$CMDLINE" &
  QEMU_PID=$!
  local start=$SECONDS
  # KVM gets a short time to show it boots at all (a nested CPU may hang).
  while kill -0 "$QEMU_PID" 2>/dev/null; do
    if [ "$wait_boot" -gt 0 ] && [ $((SECONDS - start)) -ge "$wait_boot" ] && ! grep -q "hako-vm: booted" "$WORK/console.log"; then
      kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=
      return 2
    fi
    if [ $((SECONDS - start)) -ge "$TIMEOUT" ]; then
      echo "vm-test: the VM ran longer than ${TIMEOUT}s; stopped" >&2
      kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=
      return 1
    fi
    sleep 1
  done
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=
  # A KVM that cannot run this CPU ends qemu at once, before the kernel ran
  # (a nested host refusing an MSR: "failed to set MSR 0x10a"): not booted.
  if [ "$wait_boot" -gt 0 ] && ! grep -q "hako-vm: booted" "$WORK/console.log"; then return 2; fi
  return 0
}

# TCG, once more if the kernel died before the initramfs ran (an early panic).
boot_tcg() {
  boot tcg 0 || true
  if ! grep -q "hako-vm: booted" "$WORK/console.log"; then
    echo "vm-test: the VM did not boot; once more" >&2
    tail -n 5 "$WORK/console.log" >&2
    boot tcg 0 || true
  fi
}

t0=$SECONDS
used=tcg
if [ "$ACCEL" != tcg ] && [ -w /dev/kvm ]; then
  if boot kvm 10; then used=kvm; else
    rc=$?
    [ "$ACCEL" = kvm ] && { cat "$WORK/console.log"; skip_or_fail "the VM did not boot with KVM"; }
    [ $rc -eq 2 ] && echo "vm-test: KVM did not boot (within 10 s, or qemu ended first); TCG instead" >&2
    boot_tcg
  fi
else
  boot_tcg
fi
echo "vm-test: kernel $KVER, $used, $((SECONDS - t0)) s"
grep "^hako-vm:" "$WORK/console.log" || true

if [ ! -f "$WORK/results/status" ]; then
  echo "--- console" >&2; tail -n 60 "$WORK/console.log" >&2
  # A VM that cannot boot or run the tests fails the tier.
  echo "vm-test: FAILED: the VM did not finish the tests" >&2
  exit 1
fi
cat "$WORK/results/test.log"
status=$(cat "$WORK/results/status")
left=$(grep -E '/hako-test-' "$WORK/results/cgroups-left" || true)
if [ -n "$left" ]; then echo "vm-test: cgroups left behind in the VM:"; echo "$left"; status=1; fi
echo "vm-test: exit status $status"
exit "$status"
