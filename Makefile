# Strata build, test and benchmark entry points. `make test` is what CI runs.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# A count, not a duration: with a duration Go 1.26's fuzz coordinator can fail
# a target with a spurious "context deadline exceeded" at the end of its time
# on a busy machine (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME  ?= 50000x
BENCHCOUNT ?= 5
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test vet staticcheck unit fuzz bench bench-quick clean image lab lab-down lab-test

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

## fuzz: every Fuzz* target for FUZZTIME (executions, or a duration) each
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash tools/fuzzall.sh

## bench: the benchmarks issues name, each figure beside its comparison (medians of BENCHCOUNT runs)
bench:
	BENCHCOUNT=$(BENCHCOUNT) GO=$(GO) bash tools/bench.sh

clean:
	rm -rf bin

## The container lab (deploy/compose.yaml). Nothing is pulled: strata-lab is
## FROM scratch with the static binary; strata-lab-fw (NAT router, firewalled
## nodes) adds it to a Debian made with debootstrap (deploy/rootfs.sh, cached).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
LAB     = $(COMPOSE) -f deploy/compose.yaml -p strata-lab

## image: the lab's images strata-lab:latest and strata-lab-fw:latest
image: build
	bash deploy/rootfs.sh
	DOCKER_BUILDKIT=0 docker build -q -f deploy/Dockerfile -t strata-lab:latest .
	DOCKER_BUILDKIT=0 docker build -q -f deploy/Dockerfile.fw -t strata-lab-fw:latest .

## lab: start the container lab (or bring back what is stopped)
lab: image
	$(LAB) up -d --remove-orphans

## lab-down: remove the lab's containers, networks and volumes
lab-down:
	$(LAB) down -v --remove-orphans

## lab-test: the scenario of test/lab against a freshly started lab; non-zero on any failure
lab-test: lab
	STRATA_LAB=1 STRATA_LAB_COMPOSE="$(LAB)" $(GO) test -count=1 -v -timeout 8m -run TestComposeLab ./test/lab/
