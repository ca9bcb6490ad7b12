#!/usr/bin/env bash
# Transfer benchmarks (issue: peer-to-peer file transfer): a 1 GiB download
# through the whole Strata path (piece list, ranges, verification, disk,
# fsync, rename) beside plain copies of the same file with quic-go, crypto/tls
# over TCP and nginx over HTTPS to curl; and 4 holders capped at 50 MB/s
# each beside one; and 128 MiB over a 40 ms, 50 MB/s path (a delay line)
# beside raw quic-go over the same path. Every run is a single iteration.
# TRANSFER_ROUNDS overrides how many rounds the 1 GiB comparison runs.
set -euo pipefail
GO=${GO:-go}
COUNT=${COUNT:-5}

# The nginx-https baseline needs nginx and curl; without them it is skipped
# (the benchmark says why). Debian may try to start the nginx service on
# install; the benchmark runs its own nginx on a free loopback port.
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  echo "installing ${need[*]} for the nginx-https baseline" >&2
  { $sudo apt-get install -y --no-install-recommends "${need[@]}" ||
    { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${need[@]}"; }; } >&2 ||
    echo "could not install ${need[*]}; the nginx-https figure will be missing" >&2
fi

# One test binary. Each round runs every implementation once, each in its
# own process, so none inherits another's heap, goroutines or files, and a
# busy spell on the machine hits all of them instead of one. The orders
# form a balanced Latin square (Williams): over every 4 rounds each
# implementation runs once in each position and comes right after each
# other one once. The source files are written and fsynced first, in a
# process of their own (STRATA_BENCH_SOURCES), so every timed process
# serves the same bytes from the page cache; `sync` between processes
# finishes what the last one left for the disk (a deleted 1 GiB download)
# before the next starts. The machine is noisy (2 shared cores): the 1 GiB
# comparison runs at least 9 rounds, rounded up to whole squares.
ROUNDS=${TRANSFER_ROUNDS:-$(( COUNT > 9 ? COUNT : 9 ))}
ROUNDS=$(( (ROUNDS + 3) / 4 * 4 ))
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
$GO test -c -o "$bin/transfer.test" ./internal/transfer
# The piece hash every received byte goes through, beside the BLAKE3 package
# proto.HashPiece uses.
$GO test -run '^$' -bench 'BenchmarkPieceHash' -count "$COUNT" ./internal/piecehash
export STRATA_BENCH_SOURCES="$bin/sources"
"$bin/transfer.test" -test.run '^TestBenchSources$' >&2
impls=(strata quic-go-raw tls-tcp nginx-https)
square=("0 1 3 2" "1 2 0 3" "2 3 1 0" "3 0 2 1")
for r in $(seq 0 $((ROUNDS - 1))); do
  for k in ${square[$((r % 4))]}; do
    sync
    "$bin/transfer.test" -test.run '^$' -test.bench "BenchmarkTransfer1GiB/impl=${impls[$k]}\$" -test.benchtime 1x -test.timeout 30m
  done
done
for _ in $(seq "$COUNT"); do
  sync
  "$bin/transfer.test" -test.run '^$' -test.bench 'BenchmarkMultiSource' -test.benchtime 1x -test.timeout 30m
done
# The download over a long, narrow path beside raw quic-go over the same
# path: a delay line in the test process (no netem on this kernel) gives a
# 40 ms round trip and 50 MB/s each way. Not a target of the issue; it
# shows whether ranges asked for one after another keep such a path full.
wan=(strata quic-go-raw)
for r in $(seq 0 $((COUNT - 1))); do
  for k in $((r % 2)) $(((r + 1) % 2)); do
    sync
    "$bin/transfer.test" -test.run '^$' -test.bench "BenchmarkTransferWAN/impl=${wan[$k]}\$" -test.benchtime 1x -test.timeout 10m
  done
done
