#!/usr/bin/env bash
# CI job (part of .ci/run): every MPI test of the suite again at 2 and 3 ranks over Open MPI's
# TCP transport (--mca btl tcp,self: the one used between machines) instead of shared memory.
# Uses the build that scripts/run-tests.sh made (builds it if missing). Exits non-zero when a
# test fails.
#   bash scripts/ci-tcp.sh
source "$(dirname "$0")/common.sh"

start=$(date +%s)
install_dependencies
mpi_environment
if [ ! -x "$DOMDEC_BUILD/tests/domdec_tests" ]; then
  build_domdec -DDOMDEC_WARNINGS_AS_ERRORS=ON
fi
export OMPI_MCA_btl=tcp,self  # every mpiexec CTest starts inherits it
log "tcp: the MPI tests at 2 and 3 ranks over TCP"
status=0
(cd "$DOMDEC_BUILD" && ctest --output-on-failure -L mpi -LE tcp -R '\.np[23]$' --timeout 900) || status=$?
log "tcp: $(($(date +%s) - start)) s, status $status"
exit $status
