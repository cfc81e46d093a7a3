#!/bin/bash
# The unit tier: test targets that need no root and no kernel feature
# (docs/architecture.md, "Tests"). Run from the test bundle already built
# (`swift build --build-tests`); when started as root it drops every
# capability (and becomes nobody where nobody can read the checkout) first,
# so a unit test that needs a privilege fails here instead of passing by accident.
#
# usage: tools/unit-test.sh SKIP   (the integration tier as a swift-testing filter,
#        e.g. '^(HakoKernelTests|HakoIntegrationTests)\.': every other target runs)
# HAKO_TEST_BUNDLE   the swift-testing bundle (default .build/debug/hakoPackageTests.xctest)
set -euo pipefail
skip=${1:?usage: tools/unit-test.sh SKIP}
bundle=$(realpath "${HAKO_TEST_BUNDLE:-.build/debug/hakoPackageTests.xctest}")
[ -x "$bundle" ] || { echo "unit-test: no test bundle at $bundle (run swift build --build-tests)" >&2; exit 1; }

run=("$bundle" --testing-library swift-testing --parallel --skip "$skip")
if [ "$(id -u)" = 0 ]; then
    repo=$PWD
    cd /tmp
    # No capability survives: not in the bounding, inheritable or ambient sets.
    drop=(setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all)
    # As nobody when nobody can reach the checkout (a clone under a 0700
    # directory cannot be); else as a root without any capability, which
    # refuses mount, chown, mknod, netlink changes and namespaces all the same.
    if "${drop[@]}" --reuid=65534 --regid=65534 --clear-groups test -x "$bundle" -a -r "$repo/Package.swift"; then
        drop+=(--reuid=65534 --regid=65534 --clear-groups)
    fi
    exec "${drop[@]}" env -i PATH=/usr/bin:/bin HOME=/tmp CI="${CI:-}" "${run[@]}"
fi
exec "${run[@]}"
