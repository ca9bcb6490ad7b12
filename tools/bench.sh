#!/usr/bin/env bash
# make bench: runs the benchmarks the issues name, BENCHCOUNT times each, and
# prints medians with each figure beside its comparison from the same run.
set -euo pipefail
GO=${GO:-go}
COUNT=${BENCHCOUNT:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "== foundation: share-list codec, QUIC transport (count=$COUNT; 1 GiB per throughput run)" >&2
$GO test -run '^$' -bench 'BenchmarkShareList' -benchtime 2000x -count "$COUNT" ./proto | tee -a "$out" >&2
$GO test -run '^$' -bench 'BenchmarkStreamThroughput' -benchtime 1x -count "$COUNT" ./internal/transport/quicnet | tee -a "$out" >&2
$GO test -run '^$' -bench 'BenchmarkHandshake' -benchtime 500x -count "$COUNT" ./internal/transport/quicnet | tee -a "$out" >&2
for extra in tools/bench.d/*.sh; do
  [ -e "$extra" ] || continue
  echo "== $extra" >&2
  GO=$GO COUNT=$COUNT bash "$extra" | tee -a "$out" >&2
done
P=()
P+=(-pair 'share list encode (lower is better)|BenchmarkShareList/codec=msgpack/op=encode|BenchmarkShareList/codec=json/op=encode|ns/entry|<=1')
P+=(-pair 'share list decode (lower is better)|BenchmarkShareList/codec=msgpack/op=decode|BenchmarkShareList/codec=json/op=decode|ns/entry|<=1')
P+=(-pair 'share list decode allocs|BenchmarkShareList/codec=msgpack/op=decode|BenchmarkShareList/codec=json/op=decode|allocs/op')
P+=(-pair '1 GiB one stream vs plain quic-go|BenchmarkStreamThroughput/impl=strata|BenchmarkStreamThroughput/impl=quic-go-default|MB/s|>=0.95')
P+=(-pair 'handshake + peer ID verify vs plain quic-go|BenchmarkHandshake/impl=strata|BenchmarkHandshake/impl=quic-go-default|handshakes/s')
if [ -f tools/bench.d/pairs ]; then
  while IFS= read -r line; do [ -n "$line" ] && P+=(-pair "$line"); done < tools/bench.d/pairs
fi
echo
$GO run ./tools/benchratio "${P[@]}" < "$out"
