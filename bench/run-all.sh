#!/usr/bin/env bash
# bench/run-all.sh — the whole performance study in one command: builds the benchmarks
# (Release, in build-bench/), runs every one of them, and writes docs/performance.md with its
# plots (docs/performance-*.png). About 10 minutes on the project's 2-core machine when it is
# otherwise idle; run it on a quiet machine, the numbers are only as good as the machine.
#   bench/run-all.sh           # everything, results kept in build-bench/results/<time>/
#   bench/run-all.sh --quick   # tiny sizes: checks the pipeline in about a minute
#   bench/run-all.sh --report build-bench/results/<time>   # only rewrite the report
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DOMDEC_BUILD="${DOMDEC_BUILD:-$ROOT/build-bench}"
source "$ROOT/scripts/common.sh"
PYTHON=/usr/bin/python3  # Debian's interpreter: sees python3-mpi4py, numpy, matplotlib

if [ "${1:-}" = "--report" ]; then
  "$PYTHON" "$ROOT/bench/report.py" "$2" "$ROOT/docs"
  exit 0
fi
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

start=$(date +%s)
install_dependencies
mpi_environment
log "building the benchmarks (Release) in $DOMDEC_BUILD"
cmake -S "$ROOT" -B "$DOMDEC_BUILD" -DCMAKE_BUILD_TYPE=Release -DDOMDEC_BUILD_TESTS=OFF \
  -DDOMDEC_BUILD_EXAMPLES=OFF -DDOMDEC_BUILD_BENCHMARKS=ON >/dev/null
cmake --build "$DOMDEC_BUILD" -j "$DOMDEC_JOBS" --target bench_step bench_migrate bench_pingpong
BIN="$DOMDEC_BUILD/bench"
OUT="$DOMDEC_BUILD/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"

if [ $QUICK = 1 ]; then
  STEP_SIZES=1e4,1e5; MIGRATE_SIZES=1e5; FAT_SIZES=2e4; PING_SIZES=1e3,1e4,1e5; REPS=3
  MEMORY_SIZE=1e5; PER_RANK=2000; PINGPONG_ROUNDS=1; LONG_STEPS=100
else
  STEP_SIZES=1e5,1e6,1e7; MIGRATE_SIZES=1e6,1e7; FAT_SIZES=1e6; PING_SIZES=1e3,1e4,1e5,1e6,1e7
  REPS=5; MEMORY_SIZE=1e7; PER_RANK=20000; PINGPONG_ROUNDS=3; LONG_STEPS=1000
fi

# The machine, for the record (and the warning in the report when it was busy).
{
  printf '{"cores": %s, ' "$(nproc)"
  printf '"cpu": "%s", ' "$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
  printf '"memory_gib": %s, ' "$(free -g | awk '/^Mem:/ {print $2}')"
  printf '"kernel": "%s", ' "$(uname -r)"
  printf '"thp": "%s", ' "$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
  printf '"mpi": "%s", ' "$(mpirun --version 2>/dev/null | head -1)"
  printf '"load_before": "%s", ' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf '"date": "%s", "quick": %s}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$QUICK"
} >"$OUT/machine.json"

run() {  # run <ranks> <output file> <program and arguments...>
  local ranks=$1 file=$2
  shift 2
  log "mpirun -np $ranks $(basename "$1") ${*:2}"
  timeout 1800 mpirun -np "$ranks" --oversubscribe "$@" | tee -a "$OUT/$file" | grep -c "\"bench\"" \
    | sed "s/^/  JSON lines: /"
}

run 2 step.jsonl "$BIN/bench_step" --sizes "$STEP_SIZES" --reps "$REPS"
run 2 migrate.jsonl "$BIN/bench_migrate" --sizes "$MIGRATE_SIZES" \
  --fractions 0.001,0.01,0.1,0.5 --reps "$REPS"
run 2 migrate.jsonl "$BIN/bench_migrate" --fat --sizes "$FAT_SIZES" \
  --fractions 0.001,0.01,0.1,0.5 --reps "$REPS"
# C++ and Python cannot share one invocation: they alternate, round after round.
for round in $(seq 1 $PINGPONG_ROUNDS); do
  run 2 "pingpong-cpp-$round.jsonl" "$BIN/bench_pingpong" --sizes "$PING_SIZES" --reps 3
  run 2 "pingpong-py-$round.jsonl" "$PYTHON" "$ROOT/bench/pingpong_mpi4py.py" \
    --sizes "$PING_SIZES" --reps 3
done
# Allocations in steady state: a warm-up as long as each repetition (LONG_STEPS steps), so the
# buffers have reached the sizes the motion needs; the figure is per step over 3 repetitions.
run 2 allocations.jsonl "$BIN/bench_step" --sizes 1e5 --steps $LONG_STEPS --reps 3 \
  --variants hand,typed,serialized,typed-loop
for variant in hand typed typed-loop allgather; do  # one process per variant: its own peak
  run 2 memory.jsonl "$BIN/bench_step" --memory --variants $variant --sizes $MEMORY_SIZE
done
for ranks in 2 4 8 16; do  # counts, not times: oversubscription does not matter
  run $ranks counts.jsonl "$BIN/bench_step" --counts --per-rank $PER_RANK --steps 20
done

printf '{"load_after": "%s", "seconds": %s}\n' "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "$(($(date +%s) - start))" >"$OUT/finished.json"
log "writing docs/performance.md from $OUT"
"$PYTHON" "$ROOT/bench/report.py" "$OUT" "$ROOT/docs"
log "done in $(($(date +%s) - start)) s; raw results in $OUT"
