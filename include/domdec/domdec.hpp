// domdec/domdec.hpp — the umbrella header: include this one.
//
// domdec distributes a particle simulation over the ranks of an MPI communicator: the box
// (Domain) is cut into slabs (Decomposition), and after each step the Exchanger moves every
// particle to the rank that owns its new position, over typed or serialized transport. The
// Driver runs the step loop around them (propagate, boundaries, migrate, conservation checks,
// observers, progress and a run summary); SnapshotWriter writes files that viewers open.
#pragma once

// What every domdec program also needs: boost::mpi::environment and communicator.
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/environment.hpp>

#include "domdec/allgather_exchanger.hpp"
#include "domdec/allocator.hpp"
#include "domdec/conservation.hpp"
#include "domdec/coordinates.hpp"
#include "domdec/decomposition.hpp"
#include "domdec/domain.hpp"
#include "domdec/driver.hpp"
#include "domdec/error.hpp"
#include "domdec/exchanger.hpp"
#include "domdec/migration_stats.hpp"
#include "domdec/ordered_output.hpp"
#include "domdec/run_summary.hpp"
#include "domdec/snapshot.hpp"
#include "domdec/transport.hpp"
#include "domdec/version.hpp"

// RandomStream needs Random123 (header-only, librandom123-dev), which the rest of domdec does
// not: it comes with the umbrella when installed; include domdec/random.hpp to require it.
#if __has_include(<Random123/philox.h>)
#include "domdec/random.hpp"
#endif
