# hako — the two commands on a fresh machine are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
RELEASE := -c release --static-swift-stdlib
BIN_DIR := .build/release

# Debian packages the build, the tests, the demo and the benchmarks need.
DEB_PACKAGES := busybox-static libcap-dev libseccomp-dev libmnl-dev libnftnl-dev zlib1g-dev \
	libssl-dev libsqlite3-dev tar gzip util-linux procps iproute2 nftables jq hyperfine runc crun time

.PHONY: all deps build test unit-test integration-test demo bench clean install

all: build

deps:
	@tools/install-deps.sh $(DEB_PACKAGES)

build: deps
	$(SWIFT) build $(RELEASE) --product hako
	$(SWIFT) build $(RELEASE) --product hako-monitor

# Unit tests need no root; integration tests run containers (root) with the
# release binaries just built. tools/host-check.sh fails the run if the suite
# left mounts, cgroups, links or processes behind.
test: deps build
	@tools/host-check.sh snapshot /tmp/hako-host-before
	HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) $(SWIFT) test --parallel 2>&1 | tee /tmp/hako-test.log; \
	  status=$${PIPESTATUS[0]}; \
	  tools/host-check.sh compare /tmp/hako-host-before || status=1; \
	  exit $$status

demo: deps build
	@HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/demo.sh

bench: deps build
	@HAKO_BIN_DIR=$(CURDIR)/$(BIN_DIR) tools/bench.sh

install: build
	@deploy/install.sh

clean:
	rm -rf .build
