#!/usr/bin/env bash
# Runs domdec's whole test suite on a fresh Debian machine: installs what is missing, builds
# (warnings are errors), and runs every test through CTest (MPI tests at 1-4 ranks, each with
# a timeout). Exits non-zero when any test fails.
#   ./scripts/run-tests.sh            # everything
#   ./scripts/run-tests.sh -R core    # extra arguments go to ctest
source "$(dirname "$0")/common.sh"

start=$(date +%s)
install_dependencies
mpi_environment
build_domdec -DDOMDEC_WARNINGS_AS_ERRORS=ON
built=$(date +%s)

log "running the tests"
cd "$DOMDEC_BUILD"
status=0
ctest --output-on-failure --timeout 900 -j "$DOMDEC_JOBS" "$@" || status=$?
done_at=$(date +%s)
log "build $((built - start)) s, tests $((done_at - built)) s, status $status"
exit $status
