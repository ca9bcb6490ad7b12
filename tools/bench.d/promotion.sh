#!/usr/bin/env bash
# Promotion engine (issue 5), in-process simulation of the real Policy and
# Planner: rounds until a 50-node join settles on the best reachable nodes
# (target <= 3 rounds; each iteration is one seed, so 50x runs seeds 1-50),
# and role changes per node-hour over 24 h of Weibull churn (shape 0.4,
# scale 42 min, ~200 nodes; target <= 0.05), beside the same network with
# every anti-flapping measure off.
set -euo pipefail
$GO test -run '^$' -bench 'BenchmarkConvergence' -benchtime 50x -count "$COUNT" ./promotion
$GO test -run '^$' -bench 'BenchmarkChurn' -benchtime 3x -count "$COUNT" ./promotion
