#!/usr/bin/env bash
# Overlay benchmarks (issue: the overlay): search latency per supernode hop
# beside a raw QUIC round trip, and joins.
set -euo pipefail
$GO test -run '^$' -bench 'BenchmarkSearchLatency' -benchtime 300x -count "$COUNT" ./test/overlaybench
$GO test -run '^$' -bench 'BenchmarkJoin' -benchtime 200x -count "$COUNT" ./test/overlaybench
