#!/usr/bin/env bash
# Runs every Fuzz* target in the module for $FUZZTIME each: a count like
# 50000x (the default; see the Makefile) or a duration. go test can fuzz
# only one target per invocation.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-50000x}
found=0
for pkg in $($GO list ./...); do
  for target in $($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    found=$((found + 1))
    echo "fuzz: $pkg $target for $FUZZTIME"
    $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
echo "fuzz: ran $found fuzz targets"
[ "$found" -gt 0 ]
