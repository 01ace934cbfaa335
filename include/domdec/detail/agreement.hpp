// domdec/detail/agreement.hpp — turning a problem found on one rank into the same error on
// every rank: the set-up fingerprint check (same box, same cuts, same particle type and
// transport on every rank) and the sharing of the first failing rank's message. A rank that
// disagrees or fails alone would otherwise leave the others waiting in a collective forever.
#pragma once

#include <mpi.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "domdec/detail/format.hpp"
#include "domdec/detail/mpi_check.hpp"

namespace domdec::detail {

/// One value that every rank must agree on. `hashed` values (a digest of many doubles) are
/// reported as "differs" rather than printed.
struct AgreedField {
  const char* name;
  std::uint64_t value;
  bool hashed = false;
};

/// FNV-1a over the bytes of the values: the same doubles give the same digest on every rank.
template <class T>
std::uint64_t digest(const T* values, std::size_t count, std::uint64_t seed = 1469598103934665603ull) {
  std::uint64_t h = seed;
  const auto* bytes = reinterpret_cast<const unsigned char*>(values);
  for (std::size_t i = 0; i < count * sizeof(T); ++i) {
    h ^= bytes[i];
    h *= 1099511628211ull;
  }
  return h;
}

/// Longest text shared by broadcast_text: an error message, not a data channel.
inline constexpr std::size_t max_shared_text = std::size_t{1} << 16;

/// Collective over `comm`: rank `root`'s `text` on every rank (cut at max_shared_text bytes).
/// Cost: two broadcasts, on error paths only.
inline std::string broadcast_text(MPI_Comm comm, int root, std::string text) {
  if (text.size() > max_shared_text) {
    text.resize(max_shared_text - 6);
    text += " [...]";
  }
  std::uint64_t length = text.size();
  mpi_check(MPI_Bcast(&length, 1, MPI_UINT64_T, root, comm), "MPI_Bcast");
  text.resize(static_cast<std::size_t>(length));
  mpi_check(MPI_Bcast(text.data(), static_cast<int>(length), MPI_CHAR, root, comm), "MPI_Bcast");
  return text;
}

/// `text` with its leading "domdec: " replaced by "domdec: rank r of p: ".
inline std::string attributed(const std::string& text, int rank, int size) {
  const std::string prefix = "domdec: ";
  const std::string body =
      text.compare(0, prefix.size(), prefix) == 0 ? text.substr(prefix.size()) : text;
  return message(prefix, "rank ", rank, " of ", size, ": ", body);
}

/// Collective over `comm`: every rank must call with the same field names. Returns the same
/// text on every rank:
/// - when some rank has a non-empty `local_problem` (its own arguments are invalid), the
///   lowest such rank's problem, attributed to it ("domdec: rank 2 of 4: ...");
/// - else, when some rank's values differ from rank 0's, one message naming each rank and
///   field that differs;
/// - else an empty string.
/// Cost: one allgather of N + 1 words (and two broadcasts when a rank has a problem), at
/// set-up only.
template <std::size_t N>
std::string agreement_problem(MPI_Comm comm, const std::array<AgreedField, N>& fields,
                              const std::string& what, const std::string& local_problem) {
  int size = 0;
  mpi_check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  constexpr std::size_t W = N + 1;  // the fields, then "has a local problem"
  std::array<std::uint64_t, W> mine{};
  for (std::size_t i = 0; i < N; ++i) mine[i] = fields[i].value;
  mine[N] = local_problem.empty() ? 0 : 1;
  std::vector<std::uint64_t> all(W * static_cast<std::size_t>(size));
  mpi_check(MPI_Allgather(mine.data(), static_cast<int>(W), MPI_UINT64_T, all.data(),
                          static_cast<int>(W), MPI_UINT64_T, comm),
            "MPI_Allgather");
  for (int r = 0; r < size; ++r) {
    if (all[static_cast<std::size_t>(r) * W + N] != 0) {
      int me = 0;
      mpi_check(MPI_Comm_rank(comm, &me), "MPI_Comm_rank");
      return attributed(broadcast_text(comm, r, me == r ? local_problem : std::string()), r, size);
    }
  }
  std::string problems;
  for (int r = 1; r < size; ++r) {
    for (std::size_t i = 0; i < N; ++i) {
      const std::uint64_t theirs = all[static_cast<std::size_t>(r) * W + i];
      const std::uint64_t reference = all[i];
      if (theirs == reference) continue;
      problems += problems.empty() ? "" : "; ";
      problems += fields[i].hashed
                      ? message("rank ", r, " has a different ", fields[i].name, " than rank 0")
                      : message("rank ", r, " has ", fields[i].name, " = ", theirs,
                                " where rank 0 has ", reference);
    }
  }
  if (problems.empty()) return problems;
  return "domdec: ranks disagree on the " + what + ": " + problems +
         " (every rank must construct it with the same arguments)";
}

}  // namespace domdec::detail
