#!/usr/bin/env bash
# CI job (part of .ci/run): domdec's tests built with AddressSanitizer + UndefinedBehaviorSanitizer
# (clang, separate build directory build-asan) and run through CTest at 2 and 3 ranks; then the
# planted over-read (tests/CMakeLists.txt: domdec_tests_planted) must make the same kind of run
# FAIL with an AddressSanitizer report, which proves this job can fail. Exits non-zero when a
# test fails under the sanitizers or the planted bug goes unnoticed.
#   bash scripts/ci-sanitizers.sh
source "$(dirname "$0")/common.sh"

build="${DOMDEC_ASAN_BUILD:-$DOMDEC_ROOT/build-asan}"
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
start=$(date +%s)
install_dependencies
mpi_environment
# Leak detection off: Open MPI's plugins leak thousands of blocks that suppressions cannot name
# (valgrind's job checks leaks, with suppressions). Any other error stops the rank.
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

log "sanitizers: configuring $build (clang, $sanitize)"
cmake -S "$DOMDEC_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS="$sanitize" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DDOMDEC_WARNINGS_AS_ERRORS=ON -DDOMDEC_BUILD_EXAMPLES=OFF -DDOMDEC_BUILD_BENCHMARKS=OFF
log "sanitizers: building the tests"
# Everything the default build makes (every test program CTest will look for), and the planted bug.
cmake --build "$build" -j "$DOMDEC_JOBS"
cmake --build "$build" -j "$DOMDEC_JOBS" --target domdec_tests_planted
built=$(date +%s)

log "sanitizers: the MPI tests at 2 and 3 ranks"
status=0
(cd "$build" && ctest --output-on-failure -L mpi -LE tcp -R '\.np[23]$' --timeout 600) || status=$?

log "sanitizers: the planted over-read must be caught"
planted_log="$build/planted.log"
planted=0
timeout 300 mpirun -np 2 "$build/tests/domdec_tests_planted" "[reliability]" >"$planted_log" 2>&1 ||
  planted=$?
if [ "$planted" -ne 0 ] && grep -q "AddressSanitizer: heap-buffer-overflow" "$planted_log" &&
  grep -q "ids_of" "$planted_log"; then
  echo "the planted over-read made the run fail (exit $planted) with:"
  grep -m1 "AddressSanitizer: heap-buffer-overflow" "$planted_log"
else
  echo "ERROR: the planted over-read was not caught (exit $planted); output follows" >&2
  cat "$planted_log" >&2
  status=1
fi
log "sanitizers: build $((built - start)) s, runs $(($(date +%s) - built)) s, status $status"
exit $status
