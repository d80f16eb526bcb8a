# tracer-agent — see README.md.
GO      ?= go
BIN     ?= bin/tracer-agent
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME ?= 30s

.PHONY: all generate check-generated vmlinux build test e2e fuzz demo bench clean

all: build

# Rebuild the committed BPF objects and their Go loaders (needs clang, libbpf-dev).
generate:
	$(GO) generate ./bpf/...

# CI: the committed objects must match the C sources.
check-generated: generate
	@git diff --exit-code --stat -- bpf/ || { echo "bpf/: generated files are stale: run 'make generate' and commit"; exit 1; }

# Refresh bpf/headers/vmlinux.h from the running kernel's BTF (rarely needed: CO-RE relocates).
vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/headers/vmlinux.h

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/tracer-agent

# All tests. The e2e tests load real eBPF programs: run as root. With
# TRACER_E2E=required (CI) they fail instead of skipping when they cannot run.
test: build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

e2e: build
	$(GO) test -count=1 -v -timeout 20m ./e2e/...

# Short fuzzing of every protocol parser.
fuzz:
	@for pkg in $$($(GO) list ./probes/...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Sample services + the agent, printing their traces as waterfalls (root).
demo: build
	./demo/run.sh $(BIN)

# Overhead benchmark (root, wrk, python3): one table of baseline vs agent runs.
bench: build
	$(GO) run ./bench -agent $(BIN) $(BENCH_FLAGS)

clean:
	rm -rf bin
