# Strata build, test and benchmark entry points. `make test` is what CI runs.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME  ?= 10s
BENCHCOUNT ?= 5
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test vet staticcheck unit fuzz bench bench-quick clean

all: build

## build: static binary into bin/strata
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/strata ./cmd/strata

## test: vet, staticcheck, race-enabled tests, a short run of every fuzz target
test: vet staticcheck unit fuzz

vet:
	$(GO) vet ./...

staticcheck:
	$(STATICCHECK) ./...

unit:
	$(GO) test -race -timeout 15m ./...

## fuzz: every Fuzz* target for FUZZTIME each
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash tools/fuzzall.sh

## bench: the benchmarks issues name, each figure beside its comparison (medians of BENCHCOUNT runs)
bench:
	BENCHCOUNT=$(BENCHCOUNT) GO=$(GO) bash tools/bench.sh

clean:
	rm -rf bin
