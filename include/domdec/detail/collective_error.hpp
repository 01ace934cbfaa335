// domdec/detail/collective_error.hpp — turning a failure on some ranks into the same error on
// every rank: the lowest failing rank's message is broadcast, so no rank is left waiting in a
// collective the others have abandoned.
#pragma once

#include <mpi.h>

#include <string>

#include "domdec/detail/mpi_check.hpp"

namespace domdec::detail {

/// Collective: every rank returns `text` as held by rank `root`.
inline std::string broadcast_message(MPI_Comm comm, int root, const std::string& text) {
  int rank = 0;
  mpi_check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  unsigned long length = rank == root ? text.size() : 0;
  mpi_check(MPI_Bcast(&length, 1, MPI_UNSIGNED_LONG, root, comm), "MPI_Bcast");
  std::string out = rank == root ? text : std::string(length, '\0');
  mpi_check(MPI_Bcast(out.data(), static_cast<int>(length), MPI_CHAR, root, comm), "MPI_Bcast");
  return out;
}

/// Collective over `comm`: every rank passes its own problem (empty when it has none). Returns
/// the empty string on every rank when no rank had a problem; otherwise the lowest failing
/// rank's message, the same on every rank. Cost: one allreduce of one int, plus two broadcasts
/// when some rank failed.
inline std::string agree_on_error(MPI_Comm comm, const std::string& local_problem) {
  int rank = 0, size = 1;
  mpi_check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  // MAX of (size - rank) picks the lowest failing rank; 0 means nobody failed.
  int code = local_problem.empty() ? 0 : size - rank;
  mpi_check(MPI_Allreduce(MPI_IN_PLACE, &code, 1, MPI_INT, MPI_MAX, comm), "MPI_Allreduce");
  if (code == 0) return {};
  return broadcast_message(comm, size - code, local_problem);
}

}  // namespace domdec::detail
