#!/usr/bin/env bash
# Runs domdec's main job on a fresh Debian machine: installs what is missing, builds the
# particle_box demo, runs it on every core of this machine (1,000,000 particles, 1000 steps),
# prints its run summary, and draws the space-time picture into an output folder it names.
#
#   ./scripts/run-demo.sh                                   # the defaults, on all cores
#   ./scripts/run-demo.sh --particles 1e7 --steps 500       # arguments go to particle_box
#   ./scripts/run-demo.sh --strategy allgather --initial left
#   DOMDEC_RANKS=4 DOMDEC_OUTPUT=/tmp/box ./scripts/run-demo.sh
#
# Environment: DOMDEC_RANKS (default: nproc), DOMDEC_OUTPUT (default:
# build/demo-output/<date-time>), DOMDEC_BUILD (default: build), DOMDEC_JOBS (default: nproc).
# `./scripts/run-demo.sh --help` lists particle_box's options. docs/driver.md explains it all.
source "$(dirname "$0")/common.sh"

# --output in the arguments wins over DOMDEC_OUTPUT; --help only shows the options.
output="${DOMDEC_OUTPUT:-$DOMDEC_BUILD/demo-output/$(date +%Y%m%d-%H%M%S)}"
help=0
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  case "${args[i]}" in
    --output) output="${args[i + 1]:-}" ;;
    --help | -h) help=1 ;;
  esac
done
has_output=0
for a in "$@"; do [ "$a" = "--output" ] && has_output=1; done

install_dependencies
mpi_environment
log "configuring in $DOMDEC_BUILD"
cmake -S "$DOMDEC_ROOT" -B "$DOMDEC_BUILD" -DCMAKE_BUILD_TYPE=Release
log "building the demo with $DOMDEC_JOBS jobs"
cmake --build "$DOMDEC_BUILD" -j "$DOMDEC_JOBS" --target particle_box
demo="$DOMDEC_BUILD/examples/particle_box/particle_box"

if [ "$help" -eq 1 ]; then
  "$demo" --help
  exit 0
fi

ranks="${DOMDEC_RANKS:-$(nproc)}"
extra=()
[ "$has_output" -eq 0 ] && extra=(--output "$output")
mkdir -p "$output"
log "running: mpirun -np $ranks $demo ${extra[*]} $*"
start_ns=$(date +%s%N)
mpirun -np "$ranks" "$demo" "${extra[@]}" "$@"
run_ms=$((($(date +%s%N) - start_ns) / 1000000))

log "drawing the space-time picture"
/usr/bin/python3 "$DOMDEC_ROOT/examples/particle_box/plot_spacetime.py" "$output"

printf '\n==> done: mpirun took %d.%03d s of wall time (start-up, run and output)\n' \
  $((run_ms / 1000)) $((run_ms % 1000))
echo "    the run summary is above; it is also in $output/summary.txt"
echo "    the picture:   $output/spacetime.png"
echo "    snapshots:     $output/particles.lammpstrj (OVITO, VMD), $output/particles.pvd (ParaView)"
echo "    output folder: $output"
