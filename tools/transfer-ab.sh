#!/usr/bin/env bash
# transfer-ab.sh OLD NEW [ROUNDS]: is the 1 GiB download of git revision NEW
# faster than OLD's? Builds internal/transfer's test binary at each revision
# (OLD and NEW are anything git rev-parse takes; "." is the work tree as it
# is), then runs ROUNDS rounds (default 12, rounded up to whole cycles of 6)
# of three processes: OLD's download, NEW's download and the raw quic-go
# copy (NEW's binary). The orders cycle through all six permutations, so
# each runs in each position, and after each other, equally often. Prints,
# for OLD and NEW, the median MB/s and the median of the round-by-round
# ratios to raw quic-go, and NEW/OLD round by round. The machine is noisy:
# a difference under a few percent needs more rounds than that.
set -euo pipefail
GO=${GO:-go}
[ $# -ge 2 ] || { echo "usage: $0 OLD NEW [ROUNDS]   (revisions, or . for the work tree)" >&2; exit 2; }
old=$1 new=$2
rounds=${3:-12}
rounds=$(( (rounds + 5) / 6 * 6 ))
top=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
cleanup() {
  for w in "$tmp"/wt-*; do [ -d "$w" ] && git -C "$top" worktree remove --force "$w" >/dev/null 2>&1; done
  rm -rf "$tmp"
}
trap cleanup EXIT

build() { # build NAME REV
  local src=$top
  if [ "$2" != "." ]; then
    src=$tmp/wt-$1
    git -C "$top" worktree add --detach "$src" "$2" >/dev/null 2>&1 ||
      { echo "transfer-ab: cannot check out $2" >&2; exit 1; }
  fi
  (cd "$src" && $GO test -c -o "$tmp/$1.test" ./internal/transfer)
}
echo "building $old and $new" >&2
build old "$old"
build new "$new"

export STRATA_BENCH_SOURCES=$tmp/sources
"$tmp/new.test" -test.run '^TestBenchSources$' >/dev/null

run() { # run NAME: prints "MB/s" of one 1 GiB run
  local bin=$tmp/new.test impl=strata
  case $1 in old) bin=$tmp/old.test ;; raw) impl=quic-go-raw ;; esac
  sync
  "$bin" -test.run '^$' -test.bench "BenchmarkTransfer1GiB/impl=$impl\$" -test.benchtime 1x -test.timeout 30m |
    awk '/^Benchmark/ {for (i = 1; i < NF; i++) if ($(i+1) == "MB/s") print $i}'
}
perms=("old new raw" "old raw new" "new old raw" "new raw old" "raw old new" "raw new old")
out=$tmp/rounds
for r in $(seq 0 $((rounds - 1))); do
  declare -A got=()
  for c in ${perms[$((r % 6))]}; do
    got[$c]=$(run "$c")
    [ -n "${got[$c]}" ] || { echo "transfer-ab: the $c run printed no MB/s figure" >&2; exit 1; }
  done
  echo "${got[old]} ${got[new]} ${got[raw]}" | tee -a "$out" | awk -v r=$((r + 1)) -v n=$rounds \
    '{printf "round %d/%d: old %.0f  new %.0f  raw %.0f MB/s\n", r, n, $1, $2, $3}' >&2
  unset got
done
awk -v old="$old" -v new="$new" '
function median(a, n,   i, j, t) {
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
  return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{ n++; o[n] = $1; w[n] = $2; q[n] = $3; ro[n] = $1 / $3; rn[n] = $2 / $3; nw[n] = $2 / $1 }
END {
  printf "%-10s %10s %18s\n", "", "MB/s", "paired vs raw"
  printf "%-10s %10.1f %18.3f\n", "old " old, median(o, n), median(ro, n)
  printf "%-10s %10.1f %18.3f\n", "new " new, median(w, n), median(rn, n)
  printf "%-10s %10.1f\n", "raw", median(q, n)
  printf "new/old, paired: %.3f over %d rounds\n", median(nw, n), n
}' "$out"
