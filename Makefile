# rls — build, test and tooling entry points. Every target is a thin wrapper
# around a command you can also run by hand; see README.md.

GO        ?= go
TOOLS     := $(GO) tool -modfile=tools/go.mod
BIN       := bin
# `git describe` fails in a tarball without history; fall back to "dev".
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# -X on a variable that does not exist is ignored by the linker, so this is
# harmless for a main package that reads its version from build info instead.
LDFLAGS   := -X main.version=$(VERSION)
GOBUILD   := $(GO) build -trimpath -ldflags '$(LDFLAGS)'

TEST_TIMEOUT ?= 15m
# Rounds of each fault test (kill -9 of an LRC, an RLI, a pull and its
# source, the mirror; partitions) in `make test-faults`; `make test` runs 2
# (the mirror's crash loop at least 6, one per kill moment).
FAULT_ROUNDS ?= 25
FUZZTIME     ?= 30s
# Fuzz targets as PACKAGE:TARGET. By default every `func FuzzX` in a
# _test.go file of this module is found; override to pick some, e.g.
# make fuzz FUZZ_TARGETS='./catalog/:FuzzNameKey' FUZZTIME=2m
FUZZ_TARGETS ?= $(shell grep -rE --include='*_test.go' --exclude-dir=tools --exclude-dir=.git \
	-o '^func Fuzz[A-Za-z0-9_]+' . | sed -E 's|^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+)$$|\1/:\2|' | sort)
BENCH_PKGS   ?= ./...
BENCHTIME    ?= 1s

.PHONY: all build test test-faults demo demo-postgres proto lint bench bench-go bench-lrc bench-index bench-transfer bench-mirror bench-overload fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/rlsd ./cmd/rlsd
	$(GOBUILD) -o $(BIN)/rlsctl ./cmd/rlsctl

# Tests start real PostgreSQL servers (internal/pgtest) and real rlsd
# processes on loopback; with CI=true a missing PostgreSQL is a failure.
test:
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

# The fault tests alone, for FAULT_ROUNDS rounds each (kill, restart,
# check). Set RLS_FAULT_SEED to repeat a run's random choices.
test-faults:
	RLS_FAULT_ROUNDS=$(FAULT_ROUNDS) $(GO) test -count=1 -timeout 60m -run '^TestFault' -v ./cmd/rlsd ./cmd/rlsctl

# An index and three sites on loopback (jsoc authoritative, nso tier-1 and
# sao tier-2 mirrors) bring N (200) synthetic units from jsoc to nso and
# sao; needs jq. demo-postgres does the same with the PostgreSQL intake
# (a throwaway cluster and the shipped sunum_queue trigger).
demo: build
	$(GO) build -o $(BIN)/mkunits ./scripts/mkunits
	NO_BUILD=1 ./scripts/demo.sh

demo-postgres: build
	$(GO) build -o $(BIN)/mkunits ./scripts/mkunits
	NO_BUILD=1 INTAKE=postgres ./scripts/demo.sh

proto:
	$(TOOLS) buf lint
	$(TOOLS) buf generate

lint:
	$(TOOLS) golangci-lint run ./...

bench: bench-go bench-lrc bench-index bench-transfer

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 30m $(BENCH_PKGS)

bench-lrc:
	./scripts/bench-lrc.sh

# Full list and Bloom updates of 1M LFNs between real rlsd processes, and the
# index package's in-process figures, against Globus RLS's published ones.
bench-index:
	./scripts/bench-index.sh

# rlsctl transfer pull against scp and rsync over a private sshd and a local
# cp + sha256sum, on loopback; needs root (sshd, drop_caches) and installs
# openssh-server and rsync with apt when missing.
bench-transfer:
	./scripts/bench-transfer.sh

# The mirror across the demo federation: 10,000 small units on loopback,
# 1,000 over a 50 ms RTT toxiproxy link against scp, 1 GiB units against
# rlsctl transfer pull, and RSS with 1M sunums queued; each figure beside
# its baseline from the same run. Needs root (sshd), installs
# openssh-server and toxiproxy when missing. Not part of `make bench`
# (it takes several minutes).
bench-mirror:
	./scripts/bench-mirror.sh

# ghz at c=2,000 and greedy BulkQuery calls against one rlsd on loopback,
# while a probe times health calls and samples rlsd's RSS; not part of
# `make bench` (it is about failure behaviour, not speed).
bench-overload:
	./scripts/bench-overload.sh

# Runs each fuzz target for FUZZTIME; `go test -fuzz` accepts one target per
# run, hence the loop. A failing input is written to the package's
# testdata/fuzz/ (commit it with the fix, as a regression case).
fuzz:
	@test -n "$(strip $(FUZZ_TARGETS))" || { echo "no fuzz targets found" >&2; exit 1; }
	@failed=""; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name in $$pkg ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed (inputs saved under testdata/fuzz/)" >&2; exit 1; fi

clean:
	rm -rf $(BIN) scripts/out
