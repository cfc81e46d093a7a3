#!/bin/bash
# The unit tier: test targets that need no root and no kernel feature
# (docs/architecture.md, "Tests"). Run from the test bundle already built
# (`swift build --build-tests`); when started as root it drops to nobody
# first, so a unit test that needs a privilege fails here instead of passing
# by accident.
#
# usage: tools/unit-test.sh FILTER   (a swift-testing filter, e.g. '^(HakoUnitTests|HakoCLITests)\.')
# HAKO_TEST_BUNDLE   the swift-testing bundle (default .build/debug/hakoPackageTests.xctest)
set -euo pipefail
filter=${1:?usage: tools/unit-test.sh FILTER}
bundle=$(realpath "${HAKO_TEST_BUNDLE:-.build/debug/hakoPackageTests.xctest}")
[ -x "$bundle" ] || { echo "unit-test: no test bundle at $bundle (run swift build --build-tests)" >&2; exit 1; }

run=("$bundle" --testing-library swift-testing --parallel --filter "$filter")
if [ "$(id -u)" = 0 ]; then
    # No capability survives: not in the bounding, inheritable or ambient sets.
    cd /tmp
    exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
        env -i PATH=/usr/bin:/bin HOME=/tmp CI="${CI:-}" "${run[@]}"
fi
exec "${run[@]}"
