# scripts/common.sh — shared by the set-up scripts: dependencies from Debian's packages, MPI
# as root, the build. Sourced, not run.
set -euo pipefail

DOMDEC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOMDEC_BUILD="${DOMDEC_BUILD:-$DOMDEC_ROOT/build}"
DOMDEC_JOBS="${DOMDEC_JOBS:-$(nproc)}"

# Everything domdec, its tests, examples, demo and benchmarks use; all from Debian 12.
DOMDEC_PACKAGES=(
  g++ cmake make
  openmpi-bin libopenmpi-dev
  libboost-mpi-dev libboost-serialization-dev
  catch2
  librandom123-dev
  python3 python3-matplotlib python3-numpy python3-mpi4py
  valgrind libclang-rt-14-dev clang
)

log() { printf '\n==> %s\n' "$*"; }

# Installs the packages that are missing (apt-get update first). Needs root or sudo.
install_dependencies() {
  local missing=()
  for pkg in "${DOMDEC_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "dependencies: all present"
    return
  fi
  log "installing from Debian's packages: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else
      echo "error: missing packages (${missing[*]}) and not root; install them or run as root" >&2
      exit 1
    fi
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# Open MPI refuses to start as root without these (CI runs as root); more ranks than cores
# needs oversubscription.
mpi_environment() {
  if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  export OMPI_MCA_rmaps_base_oversubscribe=1
}

# Configures and builds domdec in $DOMDEC_BUILD with the given extra CMake arguments.
build_domdec() {
  log "configuring in $DOMDEC_BUILD"
  cmake -S "$DOMDEC_ROOT" -B "$DOMDEC_BUILD" -DCMAKE_BUILD_TYPE=Release "$@"
  log "building with $DOMDEC_JOBS jobs"
  cmake --build "$DOMDEC_BUILD" -j "$DOMDEC_JOBS"
}
