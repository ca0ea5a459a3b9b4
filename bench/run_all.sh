#!/usr/bin/env bash
# Runs every benchmark one after the other (never in parallel: they would slow each other).
# Usage: bench/run_all.sh [--quick]     Logs: $MAMMO_BENCH_WORK (default /tmp/mammo-bench)/logs
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
LOGS=${MAMMO_BENCH_WORK:-/tmp/mammo-bench}/logs
mkdir -p "$LOGS"
for b in train_throughput input_pipeline cascade_inference predict_memory reference_loop; do
  echo "== $b $*"
  "$PY" "bench/$b.py" "$@" >"$LOGS/$b$*.log" 2>&1 || echo "!! $b failed: see $LOGS/$b$*.log"
  grep -E '^\||^$|ratio' "$LOGS/$b$*.log"
done
