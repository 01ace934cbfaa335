// domdec/domdec.hpp — the umbrella header: include this one.
//
// domdec distributes a particle simulation over the ranks of an MPI communicator: the box
// (Domain) is cut into slabs (Decomposition), and after each step the Exchanger moves every
// particle to the rank that owns its new position, over typed or serialized transport.
#pragma once

#include "domdec/allocator.hpp"
#include "domdec/coordinates.hpp"
#include "domdec/decomposition.hpp"
#include "domdec/domain.hpp"
#include "domdec/error.hpp"
#include "domdec/exchanger.hpp"
#include "domdec/migration_stats.hpp"
#include "domdec/transport.hpp"
#include "domdec/version.hpp"
