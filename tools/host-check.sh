#!/usr/bin/env bash
# Snapshots what hako's tests could leave on the host (mounts, cgroups,
# links, nftables tables, netns, hako-runtime's default root, processes) and
# compares after the suite.
#   host-check.sh snapshot FILE   |   host-check.sh compare FILE
set -u
state() {
  echo "## mounts"; grep -E 'hako|overlay' /proc/self/mountinfo | awk '{print $5}' | sort
  echo "## cgroups"; find /sys/fs/cgroup -maxdepth 3 -type d -iname '*hako*' 2>/dev/null | sort
  echo "## links"; ip -o link 2>/dev/null | awk -F': ' '{print $2}' | grep -E 'hako|veth|vxlan' | sort
  echo "## netns"; ip netns list 2>/dev/null | awk '{print $1}' | sort
  echo "## nft"; nft list tables 2>/dev/null | grep -i hako | sort
  echo "## runtime root"; find /run/hako-runtime 2>/dev/null | sort  # hako-runtime's default --root (podman names none)
  echo "## processes"; pgrep -a -f '(^|/)hako(-monitor|-runtime)?( |$)' 2>/dev/null | grep -v host-check | awk '{$1=""; print}' | sort
  true  # a section with nothing in it is not a failure
}
case "${1:-}" in
  snapshot) state > "$2" || true ;;  # a section with nothing in it is not a failure
  compare)
    now=$(mktemp)
    state > "$now"
    # Only what appeared counts: things that went away (another user's process
    # that ended meanwhile) are not the suite's doing.
    diff -u "$2" "$now" > /tmp/hako-host-diff
    if grep -q '^+[^+]' /tmp/hako-host-diff; then
      echo "host-check: the test suite left things behind:"
      grep '^+[^+]' /tmp/hako-host-diff
      rm -f "$now"; exit 1
    fi
    rm -f "$now"; echo "host-check: host left as found" ;;
  *) echo "usage: $0 snapshot|compare FILE" >&2; exit 2 ;;
esac
