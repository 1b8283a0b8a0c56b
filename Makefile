# Ferry — build, test, demo, benchmarks.
#
#   make demo    the lab demo: a 3-node cluster in namespaces, agents on every node,
#                curl through every kind of Service, a result table (root)
#   make test    every test: unit tests, Linux I/O tests and the end-to-end lab (root)
#   make bench   microbenchmarks and the kernel-vs-Ferry datapath benchmark (root)

SWIFT        ?= swift
SWIFT_FLAGS  ?=
FERRY_DEBUG  := .build/debug/ferry
FERRY_REL    := .build/release/ferry

# Debian packages the build, the tests and the lab use. Installed only when missing.
APT_PACKAGES := libnl-3-dev libnl-route-3-dev pkg-config iproute2 nftables iptables conntrack \
                curl python3 python3-scapy nginx-light tcpdump ethtool netsniff-ng sockperf iperf3 wrk

.PHONY: all build release test unit-test e2e-test demo bench bench-micro bench-datapath bench-sync deps clean lab-down

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

release: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS)

# Unit tests (no root needed), Linux I/O tests (root; they skip without it) and the
# end-to-end lab run against Ferry's own agent.
test: unit-test e2e-test

unit-test: deps
	$(SWIFT) build $(SWIFT_FLAGS)
	$(SWIFT) test $(SWIFT_FLAGS)

# The lab twice: pods on point-to-point veths (Calico/Cilium's shape) and on a bridge
# (the bridge CNI's shape); the agent learns either from netlink. The second run's
# agents busy-poll their rings (--busy-poll), so every check also drives that loop.
e2e-test: deps build
	FERRY_BIN=$(CURDIR)/$(FERRY_DEBUG) netns-lab/e2e --dataplane ferry --pod-network bridge
	FERRY_BIN=$(CURDIR)/$(FERRY_DEBUG) FERRY_AGENT_ARGS="--busy-poll 50" netns-lab/e2e --dataplane ferry --pod-network p2p

demo: deps build
	FERRY_BIN=$(CURDIR)/$(FERRY_DEBUG) netns-lab/demo

bench: bench-micro bench-datapath bench-sync

bench-micro: deps
	cd Tests/Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

bench-datapath: deps release
	FERRY_BIN=$(CURDIR)/$(FERRY_REL) netns-lab/bench

bench-sync: deps
	netns-lab/sync-bench

lab-down:
	netns-lab/lab down --all

clean:
	rm -rf .build Tests/Benchmarks/.build
