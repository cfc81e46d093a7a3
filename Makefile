# hako — the two commands on a fresh machine are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
RELEASE := -c release --static-swift-stdlib
BIN_DIR := .build/release

# Debian packages the build, the tests, the demo and the benchmarks need.
DEB_PACKAGES := busybox-static libcap-dev libseccomp-dev libmnl-dev libnftnl-dev zlib1g-dev libzstd-dev \
	libssl-dev libsqlite3-dev tar gzip util-linux procps iproute2 nftables jq hyperfine runc crun time linux-perf \
	iperf3 python3 docker-registry podman skopeo apache2-utils openssl \
	containerd curl iputils-ping zsh fish \
	qemu-system-x86 linux-image-amd64 cpio

.PHONY: all deps build test vm-test unit-test integration-test demo demo-local bench clean install uninstall docs

all: build

deps:
	@tools/install-deps.sh $(DEB_PACKAGES)

MONITOR_SRC := $(wildcard Sources/hako-monitor/*.c) $(wildcard Sources/CHakoShim/*.c)
MONITOR_HDR := $(wildcard Sources/hako-monitor/include/*.h) $(wildcard Sources/CHakoShim/include/*.h)
CC ?= cc
MONITOR_CFLAGS := -O2 -g0 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter \
	-ISources/CHakoShim/include -ISources/hako-monitor/include

# SwiftPM first: it makes .build/release (a symlink into its build tree).
build: deps
	$(SWIFT) build $(RELEASE) --product hako
	$(SWIFT) build $(RELEASE) --product hako-runtime
	@$(MAKE) --no-print-directory $(BIN_DIR)/hako-monitor

# The monitor is plain C linked against libc only: one runs per container.
$(BIN_DIR)/hako-monitor: $(MONITOR_SRC) $(MONITOR_HDR)
	$(CC) $(MONITOR_CFLAGS) -o $@ $(MONITOR_SRC) -Wl,--as-needed -Wl,-O1 -s

# Unit tests need no root; integration tests run containers (root) with the
# release binaries just built. tools/host-check.sh fails the run if the suite
# left mounts, cgroups, links or processes behind.
# Per checkout, so that two checkouts testing at once do not share the files.
HOST_SNAPSHOT := /tmp/hako-host-before-$(notdir $(CURDIR))

test: deps build
	@tools/host-check.sh snapshot $(HOST_SNAPSHOT)
	HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) $(SWIFT) test --parallel 2>&1 | tee /tmp/hako-test-$(notdir $(CURDIR)).log; \
	  status=$${PIPESTATUS[0]}; \
	  tools/host-check.sh compare $(HOST_SNAPSHOT) || status=1; \
	  HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/vm-test.sh || status=1; \
	  exit $$status

# The cgroup v2 tier alone (the last tier of `make test`): Debian's kernel in
# QEMU with cgroup2 only, running the cgroup and device suites of the test
# bundle (docs/architecture.md, "Tests"). `tools/vm-test.sh --shell` gives a shell in the VM.
vm-test: deps build
	$(SWIFT) build --build-tests
	HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/vm-test.sh

# The multi-node cluster (three nodes in network namespaces, a registry on
# their underlay); demo-local: one engine's container lifecycle.
demo: deps build
	@HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/demo-cluster.sh

demo-local: deps build
	@HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/demo.sh

bench: deps build
	@tools/host-check.sh snapshot $(HOST_SNAPSHOT)-bench
	@HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/bench.sh; status=$$?; \
	  tools/host-check.sh compare $(HOST_SNAPSHOT)-bench || status=1; \
	  exit $$status

# DESTDIR, PREFIX (default /usr/local), SYSCONFDIR (/etc/hako): see deploy/install.sh.
install: build
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SYSCONFDIR="$(SYSCONFDIR)" deploy/install.sh --no-build

uninstall:
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" deploy/uninstall.sh

# docs/cli.md from the command-line declarations (committed; a test checks it is current).
docs: build
	@tools/gen-cli-docs.sh $(BIN_DIR)/hako > docs/cli.md

clean:
	rm -rf .build
