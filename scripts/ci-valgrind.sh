#!/usr/bin/env bash
# CI job (part of .ci/run): the test suite at 2 ranks under valgrind memcheck, with Open
# MPI's suppressions plus domdec's own (tests/valgrind/domdec.supp: Open MPI internals only).
# Fails on any invalid read or write, use of uninitialised memory, or definite leak that is not
# suppressed. Then the planted over-read and leak (domdec_tests_planted) must make the same run
# FAIL, which proves the job can fail. Builds in build-valgrind (-O2 -g).
#   bash scripts/ci-valgrind.sh                    # the whole suite
#   DOMDEC_VALGRIND_TESTS="[chunks]" bash scripts/ci-valgrind.sh
source "$(dirname "$0")/common.sh"

build="${DOMDEC_VALGRIND_BUILD:-$DOMDEC_ROOT/build-valgrind}"
# The whole suite: ~35 s at 2 ranks under memcheck on this project's 2-core CI machine.
tests="${DOMDEC_VALGRIND_TESTS:-*}"
start=$(date +%s)
install_dependencies
mpi_environment

log "valgrind: configuring and building $build"
cmake -S "$DOMDEC_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDOMDEC_BUILD_EXAMPLES=OFF -DDOMDEC_BUILD_BENCHMARKS=OFF
cmake --build "$build" -j "$DOMDEC_JOBS" --target domdec_tests domdec_tests_planted
built=$(date +%s)

logs="$build/valgrind-logs"
rm -rf "$logs"
mkdir -p "$logs"
memcheck=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite
  --errors-for-leak-kinds=definite --error-exitcode=97 --num-callers=40
  --suppressions=/usr/share/openmpi/openmpi-valgrind.supp
  --suppressions="$DOMDEC_ROOT/tests/valgrind/domdec.supp")

# Runs program $2 with Catch test spec $3 at 2 ranks under memcheck, logs to $logs/$1.rank*.log;
# returns mpirun's status.
under_memcheck() {
  local status=0
  timeout 1500 mpirun -np 2 "${memcheck[@]}" --log-file="$logs/$1.rank%q{OMPI_COMM_WORLD_RANK}.log" \
    "$2" "$3" >"$logs/$1.out" 2>&1 || status=$?
  return $status
}

log "valgrind: $tests at 2 ranks"
status=0
under_memcheck tests "$build/tests/domdec_tests" "$tests" || status=$?
for f in "$logs"/tests.rank*.log; do
  if ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
    echo "ERROR: memcheck found errors, $f:" >&2
    cat "$f" >&2
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "ERROR: the tests failed under memcheck (status $status); their output:" >&2
  cat "$logs/tests.out" >&2
else
  tail -n 3 "$logs/tests.out"
  grep -h "ERROR SUMMARY" "$logs"/tests.rank*.log
fi

log "valgrind: the planted over-read and leak must be caught"
planted=0
under_memcheck planted "$build/tests/domdec_tests_planted" "[domain][reliability]" || planted=$?
if [ "$planted" -ne 0 ] && grep -A2 "Invalid read of size 8" "$logs"/planted.rank0.log | grep -q ids_of &&
  grep -A3 "definitely lost" "$logs"/planted.rank0.log | grep -q ids_of; then
  echo "the planted over-read and leak made the run fail (exit $planted) with:"
  grep -h -m1 -A1 "Invalid read of size 8" "$logs"/planted.rank0.log
  grep -h -m1 -A3 "definitely lost" "$logs"/planted.rank0.log
else
  echo "ERROR: the planted over-read or leak was not caught (exit $planted)" >&2
  cat "$logs"/planted.* >&2
  status=1
fi
log "valgrind: build $((built - start)) s, runs $(($(date +%s) - built)) s, status $status"
exit $status
