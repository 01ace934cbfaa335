#!/usr/bin/env bash
# Runs domdec's main job on a fresh Debian machine: installs what is missing, builds, and runs
# the example on every core of this machine.
#   ./scripts/run-demo.sh
source "$(dirname "$0")/common.sh"

install_dependencies
mpi_environment
build_domdec
ranks="${DOMDEC_RANKS:-$(nproc)}"
log "running quickstart on $ranks ranks"
mpirun -np "$ranks" "$DOMDEC_BUILD/examples/quickstart"
