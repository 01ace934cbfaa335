// tests/support/mpi_test.hpp — what domdec's tests need from the MPI test harness.
//
// Conventions (the harness cannot enforce them, the tests follow them):
// - CHECK for facts local to one rank: a failed CHECK does not leave the test, so every rank
//   still reaches the same collective calls.
// - REQUIRE(on_every_rank(cond)) where a test must stop: every rank leaves together.
// - Every test case is entered by every rank, in declaration order.
#pragma once

#include <boost/mpi/collectives.hpp>
#include <boost/mpi/communicator.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace domdec_test {

/// MPI_COMM_WORLD as a Boost.MPI communicator.
inline boost::mpi::communicator world() { return boost::mpi::communicator(); }

/// Collective: true on every rank when `ok` holds on every rank.
inline bool on_every_rank(bool ok, const boost::mpi::communicator& comm = world()) {
  int mine = ok ? 1 : 0;
  int all = 0;
  boost::mpi::all_reduce(comm, mine, all, boost::mpi::minimum<int>());
  return all == 1;
}

/// Collective: the sum of `value` over every rank.
template <class T>
T sum_over_ranks(T value, const boost::mpi::communicator& comm = world()) {
  T total{};
  boost::mpi::all_reduce(comm, value, total, std::plus<T>());
  return total;
}

/// Collective: every rank's `values`, concatenated in rank order, on every rank.
template <class T>
std::vector<T> gather_everywhere(const std::vector<T>& values,
                                 const boost::mpi::communicator& comm = world()) {
  std::vector<std::vector<T>> parts;
  boost::mpi::all_gather(comm, values, parts);
  std::vector<T> all;
  for (const auto& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

}  // namespace domdec_test
