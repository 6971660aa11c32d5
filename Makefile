# Entry points shared by humans and CI. `make test` is the README's test command.
SHELL := /bin/bash
CARGO ?= cargo
DEB_PKGS := conntrack conntrackd nftables iproute2 keepalived tcpdump socat iputils-ping netcat-openbsd fonts-dejavu-core
DEPS_STAMP := target/.deps-ok

.PHONY: deps build test lint fmt perf bench demo clean

# Idempotent: installs only what is missing; `apt-get update` runs once per machine.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  [ -f /var/lib/apt/lists/.conntrackd-rs-updated ] || { apt-get update && touch /var/lib/apt/lists/.conntrackd-rs-updated; }; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	  systemctl disable --now conntrackd keepalived >/dev/null 2>&1 || true; \
	else echo "deps: all present"; fi

build:
	$(CARGO) build --workspace --release --all-targets

test: deps
	$(CARGO) build --workspace --tests
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

fmt:
	$(CARGO) fmt --all

# The two physical limits (creation rate alone and with a bare event drain); see perf/README.md.
perf:
	perf/limits.sh

# Side-by-side: Debian's C conntrackd 1.4.7 and ours on the same namespace testbed, same
# config, same ctgen load; ratios ours/C, replication latency and PNG charts in
# bench/runs/<date>-<host>/ (see bench/README.md). Needs root. `bench-quick` takes about
# 2 minutes, `bench` (full) about 30–40.
BENCH_OUT ?= bench/runs/$(shell date -u +%Y-%m-%d)-$(shell hostname)
.PHONY: bench-quick
bench-quick: deps
	$(CARGO) build --release -p conntrackd -p conntrackd-perf -p conntrackd-bench --bins
	target/release/sidebyside --quick --out $(BENCH_OUT)

bench: deps
	$(CARGO) build --release -p conntrackd -p conntrackd-perf -p conntrackd-bench --bins
	target/release/sidebyside --full --out $(BENCH_OUT)-full

# Two firewalls in namespaces, keepalived + conntrackd, a hard failover (tests/demo/README.md).
# CONNTRACKD=/usr/sbin/conntrackd runs it with Debian's C daemon; SYNC_MODE=ALARM switches mode.
demo:
	@if [ -z "$$CONNTRACKD" ]; then $(CARGO) build --release --bin conntrackd; fi
	./tests/demo/demo.sh

clean:
	$(CARGO) clean

# Hot-path micro-benchmarks (bench/micro/*.rs): plain mains printing ns/op, each under ~10 s.
# Absolute numbers are noisy on a shared VM; `make profile` gives the repeatable counts.
MICRO_BENCHES := micro-wire micro-netlink micro-cache micro-filter micro-ring micro-hotpath micro-link micro-hop
.PHONY: bench-micro profile
bench-micro:
	$(CARGO) build --release -p conntrackd-bench
	@for b in $(MICRO_BENCHES); do $(CARGO) run --release -q -p conntrackd-bench --bin $$b || exit 1; echo; done

# Instructions per replicated event (callgrind) and a perf flame graph of the hot path.
profile:
	perf/callgrind.sh
	perf/flamegraph.sh
