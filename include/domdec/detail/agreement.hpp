// domdec/detail/agreement.hpp — the collective check that every rank was set up the same way
// (same box, same cuts, same particle size, same transport). A rank that disagrees would
// otherwise hang in a receive or read garbage; this turns it into an error on every rank.
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

/// Collective over `comm`: every rank must call with the same field names. Returns an empty
/// string when every rank has rank 0's values, else one message (the same on every rank)
/// naming each rank and field that differs. Cost: one allgather of N words, at set-up only.
template <std::size_t N>
std::string disagreement(MPI_Comm comm, const std::array<AgreedField, N>& fields,
                         const std::string& what) {
  int size = 0;
  mpi_check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  std::array<std::uint64_t, N> mine{};
  for (std::size_t i = 0; i < N; ++i) mine[i] = fields[i].value;
  std::vector<std::uint64_t> all(N * static_cast<std::size_t>(size));
  mpi_check(MPI_Allgather(mine.data(), static_cast<int>(N), MPI_UINT64_T, all.data(),
                          static_cast<int>(N), MPI_UINT64_T, comm),
            "MPI_Allgather");
  std::string problems;
  for (int r = 1; r < size; ++r) {
    for (std::size_t i = 0; i < N; ++i) {
      const std::uint64_t theirs = all[static_cast<std::size_t>(r) * N + i];
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
