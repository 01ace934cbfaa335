// domdec/detail/mpi_check.hpp — turning MPI return codes into exceptions with MPI's own words.
#pragma once

#include <mpi.h>

#include <string>

#include "domdec/error.hpp"

namespace domdec::detail {

/// Throws CommunicationError naming the call when `rc` is not MPI_SUCCESS. Boost.MPI's
/// environment sets MPI_ERRORS_RETURN on the world communicator, and duplicates inherit it, so
/// failures arrive here instead of aborting without a word.
inline void mpi_check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw CommunicationError(std::string("domdec: ") + call + " failed: " + std::string(text, length));
}

}  // namespace domdec::detail
