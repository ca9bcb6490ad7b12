#!/usr/bin/env bash
# Reachability benchmark (issue: staying up, reachability): a download
# relayed by a supernode (holder behind a NAT, getter behind a symmetric NAT,
# in network namespaces) beside a direct one in the same run: rates, and the
# supernode's CPU seconds per MB. Needs root, ip and iptables (else the
# benchmark skips, saying why). STRATA_BENCH_REACH_MB sets the size (32).
set -euo pipefail
GO=${GO:-go}
COUNT=${COUNT:-5}
# One run per process: each builds its own namespaces and nodes (a second
# run on the same nodes met the holder's once-a-second dial limit and the
# getter's memory of the first run).
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
$GO test -c -o "$bin/e2e.test" ./test/e2e
for _ in $(seq "$COUNT"); do
  (cd test/e2e && STRATA_E2E_RACE=0 "$bin/e2e.test" -test.run '^$' -test.bench 'BenchmarkReach' -test.benchtime 1x -test.timeout 30m)
done
