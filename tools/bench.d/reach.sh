#!/usr/bin/env bash
# Reachability benchmark (issue: staying up, reachability): a download
# relayed by a supernode (holder behind a NAT, getter behind a symmetric NAT,
# in network namespaces) beside a direct one in the same run: rates, and the
# supernode's CPU seconds per MB. Needs root, ip and iptables (else the
# benchmark skips, saying why). STRATA_BENCH_REACH_MB sets the size (32).
set -euo pipefail
GO=${GO:-go}
COUNT=${COUNT:-5}
STRATA_E2E_RACE=0 $GO test -run '^$' -bench 'BenchmarkReach' -benchtime 1x -count "$COUNT" -timeout 30m ./test/e2e
