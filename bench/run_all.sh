#!/usr/bin/env bash
# Run every benchmark (or the ones named) against the local stack and print one markdown report.
#   bench/run_all.sh                 all eight, default sizes
#   bench/run_all.sh --quick         small sizes (smoke test of the harness)
#   bench/run_all.sh throughput      one of them
# Results: bench/results/*.json and bench/results/report-*.md. See docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
deploy/local/stack.sh status >/dev/null 2>&1 || deploy/local/stack.sh start
exec "$PY" -m bench "$@"
