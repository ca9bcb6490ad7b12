#!/usr/bin/env bash
# Keyword index at 1,000,000 files beside bleve's in-memory index on the same
# corpus (a separate module, so the strata binary never links bleve). It
# prints its own table of figures, bleve's, and their ratio; medians of runs.
set -euo pipefail
RUNS=${COUNT:-3}
[ "$RUNS" -gt 3 ] && RUNS=3 # each run builds bleve over 200,000 files (~30 s)
cd bench/bleve
$GO run ./cmd/indexbench -files "${INDEX_FILES:-1000000}" -runs "$RUNS" >&2
# Holders of one content ID (a download's lookup on every supernode its query
# reaches): the content-ID chains beside a scan of the records, same index.
cd ../..
$GO test -run '^$' -bench 'BenchmarkByContentID' -benchtime 200x -count "${COUNT:-5}" ./internal/index -args -files="${INDEX_FILES:-1000000}"
