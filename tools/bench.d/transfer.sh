#!/usr/bin/env bash
# Transfer benchmarks (issue: peer-to-peer file transfer): a 1 GiB download
# through the whole Strata path (piece list, ranges, verification, disk,
# fsync, rename) beside plain copies of the same file with quic-go, crypto/tls
# over TCP and nginx over HTTPS to curl; and 4 holders capped at 50 MB/s
# each beside one. Every 1 GiB or 512 MiB run is a single iteration.
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

# One test binary, run COUNT times: each round runs every implementation once,
# so a busy spell on the machine hits all of them instead of one.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
$GO test -c -o "$bin/transfer.test" ./internal/transfer
for _ in $(seq "$COUNT"); do
  "$bin/transfer.test" -test.run '^$' -test.bench 'BenchmarkTransfer1GiB|BenchmarkMultiSource' -test.benchtime 1x -test.timeout 30m
done
