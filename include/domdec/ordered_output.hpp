// domdec/ordered_output.hpp — output in rank order: every rank's text (or plain values)
// gathered on one rank and printed there rank by rank, so a report reads the same in every run.
// Text that several ranks print themselves reaches the terminal in no fixed order: each rank's
// output travels to mpirun through its own pipe, and no barrier can order the pipes.
#pragma once

#include <mpi.h>

#include <boost/mpi/communicator.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "domdec/detail/format.hpp"
#include "domdec/detail/mpi_check.hpp"
#include "domdec/error.hpp"

namespace domdec {
namespace detail {

/// The most bytes one gather can bring to the root: MPI's counts and displacements are `int`.
inline constexpr std::size_t max_gather_bytes =
    static_cast<std::size_t>(std::numeric_limits<int>::max());

/// Where each rank's bytes land on the root. The same on every rank.
struct GatherPlan {
  std::vector<int> counts;         ///< bytes from each rank
  std::vector<int> displacements;  ///< where each rank's bytes start on the root
  std::size_t total = 0;           ///< sum of counts
};

/// Collective over `comm`: every rank tells every rank how many bytes it will contribute (one
/// MPI_Allgather of one 64-bit word per rank), so every rank can refuse a gather over `limit`
/// bytes together. Throws SetupError (before communicating) when `root` is not a rank of
/// `comm`, CommunicationError on every rank when the total exceeds `limit`.
inline GatherPlan plan_gather(MPI_Comm comm, std::size_t my_bytes, int root, const char* caller,
                              std::size_t limit = max_gather_bytes) {
  int size = 0;
  mpi_check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  if (root < 0 || root >= size) {
    throw SetupError(message("domdec: ", caller, ": root ", root, " is not a rank of a ",
                             "communicator of ", size, " ranks"));
  }
  const auto ranks = static_cast<std::size_t>(size);
  const std::uint64_t mine = my_bytes;
  std::vector<std::uint64_t> sizes(ranks);
  mpi_check(MPI_Allgather(&mine, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, comm),
            "MPI_Allgather");
  std::uint64_t total = 0;
  std::size_t largest = 0;
  for (std::size_t r = 0; r < ranks; ++r) {
    total += sizes[r];
    if (sizes[r] > sizes[largest]) largest = r;
  }
  if (total > limit) {  // the same decision on every rank: nobody waits in the gather alone
    throw CommunicationError(
        message("domdec: ", caller, ": the ranks contribute ", total, " bytes in total (rank ",
                largest, " the most: ", sizes[largest], "), more than one gather can carry (",
                limit, " bytes); gather in parts"));
  }
  GatherPlan plan;
  plan.counts.resize(ranks);
  plan.displacements.resize(ranks);
  int at = 0;
  for (std::size_t r = 0; r < ranks; ++r) {
    plan.counts[r] = static_cast<int>(sizes[r]);
    plan.displacements[r] = at;
    at += plan.counts[r];
  }
  plan.total = static_cast<std::size_t>(total);
  return plan;
}

/// Collective: one MPI_Gatherv of every rank's `my_bytes` bytes at `data` into `receive` on
/// the root (plan.total bytes there; ignored elsewhere).
inline void gather_planned(MPI_Comm comm, const void* data, std::size_t my_bytes, void* receive,
                           const GatherPlan& plan, int root) {
  mpi_check(MPI_Gatherv(data, static_cast<int>(my_bytes), MPI_BYTE, receive, plan.counts.data(),
                        plan.displacements.data(), MPI_BYTE, root, comm),
            "MPI_Gatherv");
}

}  // namespace detail

/// Every rank's `text`, in rank order (rank 0's first, whatever the root), on `root`; an empty
/// vector on the other ranks. Texts may hold any bytes, including '\0' and newlines.
///
/// Collective over `comm`: every rank must call it, with the same root. Cost: one
/// MPI_Allgather of one 64-bit word per rank and one MPI_Gatherv of the texts; the root
/// receives and holds all of them at once (memory: the sum of the texts), so this is for
/// reports, not for bulk data. Throws SetupError when `root` is not a rank of `comm`;
/// CommunicationError on every rank when the texts add up to more than 2^31 - 1 bytes.
inline std::vector<std::string> gather_strings_to_root(const boost::mpi::communicator& comm,
                                                       const std::string& text, int root = 0) {
  const MPI_Comm c(comm);
  const detail::GatherPlan plan =
      detail::plan_gather(c, text.size(), root, "gather_strings_to_root");
  const bool at_root = comm.rank() == root;
  std::string all(at_root ? plan.total : 0, '\0');
  detail::gather_planned(c, text.data(), text.size(), all.data(), plan, root);
  std::vector<std::string> texts;
  if (!at_root) return texts;
  texts.reserve(plan.counts.size());
  for (std::size_t r = 0; r < plan.counts.size(); ++r) {
    texts.emplace_back(all, static_cast<std::size_t>(plan.displacements[r]),
                       static_cast<std::size_t>(plan.counts[r]));
  }
  return texts;
}

/// Every rank's `values` concatenated in rank order on `root` (for example each rank's
/// particles, to write them out or compare them); an empty vector on the other ranks. T must
/// be plain data (trivially copyable): it travels as bytes.
///
/// Collective over `comm`: every rank must call it, with the same root. Cost: one
/// MPI_Allgather of one 64-bit word per rank and one MPI_Gatherv of the values; the root holds
/// all of them. Throws SetupError when `root` is not a rank of `comm`; CommunicationError on
/// every rank when the values add up to more than 2^31 - 1 bytes.
template <class T>
std::vector<T> gather_to_root(const boost::mpi::communicator& comm, const std::vector<T>& values,
                              int root = 0) {
  static_assert(std::is_trivially_copyable_v<T>,
                "domdec: gather_to_root copies values as bytes, so T must be plain data "
                "(trivially copyable); gather text with gather_strings_to_root instead");
  const MPI_Comm c(comm);
  const std::size_t my_bytes = values.size() * sizeof(T);
  const detail::GatherPlan plan = detail::plan_gather(c, my_bytes, root, "gather_to_root");
  std::vector<T> all(comm.rank() == root ? plan.total / sizeof(T) : 0);
  detail::gather_planned(c, values.data(), my_bytes, all.data(), plan, root);
  return all;
}

/// Prints every rank's `text` on `out` of rank `root`, rank 0's first, then rank 1's, ..., and
/// flushes `out`. A newline is added after a text that does not end with one, so two ranks
/// never share a line; an empty text prints nothing. `out` is not touched on the other ranks.
///
/// Collective over `comm`: every rank must call it, with the same root. Cost: that of
/// gather_strings_to_root (one allgather of one word per rank, one gatherv of the texts): the
/// root holds every text at once and nothing is printed until all have arrived. Output that
/// ranks print themselves, before or after, still arrives in no fixed order relative to this.
/// Throws as gather_strings_to_root.
inline void print_in_rank_order(const boost::mpi::communicator& comm, const std::string& text,
                                std::ostream& out, int root = 0) {
  const std::vector<std::string> texts = gather_strings_to_root(comm, text, root);
  for (const std::string& t : texts) {
    out << t;
    if (!t.empty() && t.back() != '\n') out << '\n';
  }
  if (comm.rank() == root) out.flush();
}

}  // namespace domdec
