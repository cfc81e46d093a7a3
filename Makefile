# hako — the two commands on a fresh machine are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
RELEASE := -c release --static-swift-stdlib
BIN_DIR := .build/release

# Debian packages, by what needs them. Installing hako needs only what its
# binaries load at run time (everything else is linked statically): libmnl
# (no static archive) and the CA certificates registry pulls verify against.
# Building needs the Swift toolchain (not a Debian package: see
# docs/getting-started.md), a C compiler and the -dev packages whose static
# archives are linked in. The tests, the demo and the benchmarks compare hako
# with other engines and observe it with other tools; none of that is
# installed on a machine that only builds or runs hako.
RUN_DEB_PACKAGES := libmnl0 ca-certificates
BUILD_DEB_PACKAGES := make gcc libc6-dev libcap-dev libseccomp-dev libmnl-dev libnftnl-dev zlib1g-dev libzstd-dev \
	libssl-dev libsqlite3-dev libyaml-dev libraft-dev libuv1-dev liblz4-dev
TEST_DEB_PACKAGES := busybox-static tar gzip util-linux procps iproute2 nftables jq runc crun python3 \
	docker-registry podman skopeo apache2-utils openssl containerd curl iputils-ping zsh fish systemd \
	crossbuild-essential-arm64 crossbuild-essential-armhf qemu-user-static \
	qemu-system-x86 linux-image-amd64 cpio
DEMO_DEB_PACKAGES := busybox-static iproute2 nftables jq curl docker-registry
BENCH_DEB_PACKAGES := $(TEST_DEB_PACKAGES) hyperfine time linux-perf iperf3

.PHONY: all static-libstdc++ deps deps-run deps-build deps-test deps-docker-clients deps-demo deps-bench build extras cross-check test vm-test \
	unit-test integration-test integration-tier demo demo-local bench clean install uninstall docs

all: build

deps-run:
	@tools/install-deps.sh $(RUN_DEB_PACKAGES)
deps-build:
	@tools/install-deps.sh $(BUILD_DEB_PACKAGES)
deps-test: deps-build
	@tools/install-deps.sh $(TEST_DEB_PACKAGES)
	@$(MAKE) --no-print-directory deps-docker-clients

# The docker CLI (docker.io, 20.10) and docker-compose (1.29) the API tests
# drive hako system service with. Debian's docker.io would start dockerd and
# enable docker.socket when installed: while it is installed, a policy-rc.d
# that refuses every start (exit 101) is in place (the host's own, if any, is
# put back afterwards), and the units it enabled are disabled again, so
# dockerd never runs on a test machine, not even after a reboot.
DOCKER_CLIENT_DEB_PACKAGES := docker.io docker-compose
deps-docker-clients:
	@if [ "$$(dpkg-query -W -f='$${Status}\n' $(DOCKER_CLIENT_DEB_PACKAGES) 2>/dev/null | grep -c 'install ok installed')" != $(words $(DOCKER_CLIENT_DEB_PACKAGES)) ]; then \
		policy=/usr/sbin/policy-rc.d; saved=; \
		if [ -e $$policy ]; then saved=$$(mktemp); cp -p $$policy $$saved; fi; \
		printf '#!/bin/sh\nexit 101\n' >$$policy && chmod 755 $$policy; \
		tools/install-deps.sh $(DOCKER_CLIENT_DEB_PACKAGES); status=$$?; \
		systemctl disable docker.service docker.socket >/dev/null 2>&1 || true; \
		if [ -n "$$saved" ]; then mv -f $$saved $$policy; else rm -f $$policy; fi; \
		exit $$status; \
	fi
deps-demo: deps-build
	@tools/install-deps.sh $(DEMO_DEB_PACKAGES)
deps-bench: deps-build
	@tools/install-deps.sh $(BENCH_DEB_PACKAGES)
	@$(MAKE) --no-print-directory deps-docker-clients
# Everything: building, testing, the demo and the benchmarks.
deps: deps-build deps-test deps-demo deps-bench

MONITOR_SRC := $(wildcard Sources/hako-monitor/*.c) $(wildcard Sources/CHakoShim/*.c)
MONITOR_HDR := $(wildcard Sources/hako-monitor/include/*.h) $(wildcard Sources/CHakoShim/include/*.h)
CC ?= cc
MONITOR_CFLAGS := -O2 -g0 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter \
	-ISources/CHakoShim/include -ISources/hako-monitor/include

# SwiftPM first: it makes .build/release (a symlink into its build tree).
build: deps-build static-libstdc++
	$(SWIFT) build $(RELEASE) --product hako
	$(SWIFT) build $(RELEASE) --product hako-runtime
	@$(MAKE) --no-print-directory $(BIN_DIR)/hako-monitor $(BIN_DIR)/hako-init
	@$(MAKE) --no-print-directory extras

# libstdc++ for hako and hako-runtime from its archive (Package.swift, staticCxx): a directory
# holding only the archive, which their link searches first. Left out where the compiler has no
# archive (the shared library is linked then, as before).
STATIC_CXX_DIR := .build/static-libstdc++
static-libstdc++:
	@a=$$($(CC) -print-file-name=libstdc++.a); mkdir -p $(STATIC_CXX_DIR); \
	if [ -f "$$a" ]; then ln -sfn "$$a" $(STATIC_CXX_DIR)/libstdc++.a; else rm -f $(STATIC_CXX_DIR)/libstdc++.a; fi

# What deploy/install.sh takes from the build besides the binaries, so that it
# never runs the binary it installs: the shell completions and the version.
# They are the same on every architecture; for a cross build, make them with a
# hako that runs here: make extras BIN_DIR=<the cross build's dir> HOST_HAKO=.build/release/hako
HOST_HAKO ?= $(BIN_DIR)/hako
extras:
	@mkdir -p $(BIN_DIR)/completions
	@$(HOST_HAKO) --generate-completion-script bash >$(BIN_DIR)/completions/hako.bash.tmp
	@$(HOST_HAKO) --generate-completion-script zsh >$(BIN_DIR)/completions/_hako.tmp
	@$(HOST_HAKO) --generate-completion-script fish >$(BIN_DIR)/completions/hako.fish.tmp
	@$(HOST_HAKO) --version | sed 's/^hako version //' >$(BIN_DIR)/version.tmp
	@for f in completions/hako.bash completions/_hako completions/hako.fish version; do mv -f $(BIN_DIR)/$$f.tmp $(BIN_DIR)/$$f; done

# `run --init`'s PID 1: static, so that it runs in any image (bound in read-only).
$(BIN_DIR)/hako-init: Sources/hako-init/init.c
	$(CC) -O2 -g0 -std=gnu11 -Wall -Wextra -static -o $@ $< -s

# The monitor is plain C, linked statically: one runs per container, and each
# start execs it, forks it twice and runs the container's set-up in the
# clone. Linked against libc.so its start ran the dynamic loader (0.45 ms of
# CPU against 0.22) and its forks carried the loader's and libc's mappings:
# a `run --rm` 0.34-0.39 ms slower, PSS per monitor 223 KiB against 171.
$(BIN_DIR)/hako-monitor: $(MONITOR_SRC) $(MONITOR_HDR)
	$(CC) $(MONITOR_CFLAGS) -static -o $@ $(MONITOR_SRC) -Wl,-O1 -s

# The C code built for the Pis' CPUs (aarch64, armhf) with warnings as errors,
# and its pure parts run under qemu-user (tools/cross-check.sh). Seconds.
cross-check: deps-test
	@MONITOR_CFLAGS="$(MONITOR_CFLAGS)" tools/cross-check.sh

# The test tiers (docs/architecture.md, "Tests"). Unit targets need no root
# and no kernel feature: tools/unit-test.sh runs them as nobody. The
# integration tier runs as root: the image store on a real file tree, the
# kernel's parts (overlay mounts, netlink, nftables, namespaces), containers
# with the release binaries just built; under CI=true a missing privilege
# fails instead of skipping. tools/host-check.sh fails the run if the tier
# left mounts, cgroups, links or processes behind; the cgroup v2 VM tier ends it.
# Every other test target is in the unit tier (a new target is there by default).
INTEGRATION_TEST_TARGETS := HakoImageTests HakoKernelTests HakoIntegrationTests
tier_filter = ^($(subst $(eval) ,|,$(strip $(1))))\.
# Per checkout, so that two checkouts testing at once do not share the files.
HOST_SNAPSHOT := /tmp/hako-host-before-$(notdir $(CURDIR))
TEST_LOG := /tmp/hako-test-$(notdir $(CURDIR)).log

unit-test: deps-build
	$(SWIFT) build --build-tests
	tools/unit-test.sh '$(call tier_filter,$(INTEGRATION_TEST_TARGETS))'

integration-test: deps-test build cross-check
	$(SWIFT) build --build-tests
	@$(MAKE) --no-print-directory integration-tier

test: deps-test build cross-check
	$(SWIFT) build --build-tests
	tools/unit-test.sh '$(call tier_filter,$(INTEGRATION_TEST_TARGETS))'
	@$(MAKE) --no-print-directory integration-tier

# The integration tier from a test build already made (test, integration-test).
integration-tier:
	@tools/host-check.sh snapshot $(HOST_SNAPSHOT)
	HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) $(SWIFT) test --skip-build --parallel \
	  --filter '$(call tier_filter,$(INTEGRATION_TEST_TARGETS))' 2>&1 | tee $(TEST_LOG); \
	  status=$${PIPESTATUS[0]}; \
	  tools/host-check.sh compare $(HOST_SNAPSHOT) || status=1; \
	  HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/vm-test.sh || status=1; \
	  exit $$status

# The cgroup v2 tier alone (the last tier of `make test`): Debian's kernel in
# QEMU with cgroup2 only, running the cgroup and device suites of the test
# bundle (docs/architecture.md, "Tests"). `tools/vm-test.sh --shell` gives a shell in the VM.
vm-test: deps-test build
	$(SWIFT) build --build-tests
	HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/vm-test.sh

# The multi-node cluster (three Pis in network namespaces, each a coordinator
# and an agent, a registry on their underlay; the leader and then a node
# killed); demo-local: one engine's container lifecycle.
demo: deps-demo build
	@HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/demo-cluster.sh

demo-local: deps-demo build
	@HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/demo.sh

bench: deps-bench build
	@tools/host-check.sh snapshot $(HOST_SNAPSHOT)-bench
	@HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/bench.sh; status=$$?; \
	  tools/host-check.sh compare $(HOST_SNAPSHOT)-bench || status=1; \
	  exit $$status

# DESTDIR, PREFIX (default /usr/local), SYSCONFDIR (/etc/hako): see deploy/install.sh.
install: build deps-run
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SYSCONFDIR="$(SYSCONFDIR)" deploy/install.sh --no-build

uninstall:
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" deploy/uninstall.sh

# docs/cli.md from the command-line declarations (committed; a test checks it is current).
docs: build
	@tools/gen-cli-docs.sh $(BIN_DIR)/hako > docs/cli.md

clean:
	rm -rf .build
