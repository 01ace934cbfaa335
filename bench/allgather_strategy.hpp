// bench/allgather_strategy.hpp — the tutorial's approach, for comparison: after every step
// every rank receives every particle of every rank (MPI_Allgatherv) and keeps the ones in its
// own slab. Simple and always correct, but each rank receives the whole system every step.
//
// This is the benchmark's own version until the step driver's `allgather` strategy lands;
// bench_step.cpp constructs it in one place (make_allgather) so switching to the driver's is
// a local change.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bench_common.hpp"
#include "hand_written.hpp"

namespace bench {

/// What a strategy moved on this rank (the same meaning as domdec::MigrationStats' fields).
struct ExchangeCounts {
  std::uint64_t messages_sent = 0, messages_received = 0;
  std::uint64_t bytes_sent = 0, bytes_received = 0;
  std::uint64_t collectives = 0;
};

template <class P>
class AllgatherStrategy {
 public:
  explicit AllgatherStrategy(MPI_Comm comm)
      : comm_(comm),
        type_(particle_datatype<P>()),
        counts_(static_cast<std::size_t>(size_of(comm))),
        offsets_(static_cast<std::size_t>(size_of(comm))) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    lo_ = cut(rank_, size_);
    hi_ = rank_ == size_ - 1 ? std::nextafter(1.0, 2.0) : cut(rank_ + 1, size_);
  }
  AllgatherStrategy(const AllgatherStrategy&) = delete;
  AllgatherStrategy& operator=(const AllgatherStrategy&) = delete;
  ~AllgatherStrategy() { MPI_Type_free(&type_); }

  /// Collective. Replaces `mine` by the particles of every rank that lie in this rank's slab.
  void exchange(std::vector<P>& mine) {
    const int n = static_cast<int>(mine.size());
    MPI_Allgather(&n, 1, MPI_INT, counts_.data(), 1, MPI_INT, comm_);
    std::size_t total = 0;
    for (std::size_t r = 0; r < counts_.size(); ++r) {
      offsets_[r] = static_cast<int>(total);
      total += static_cast<std::size_t>(counts_[r]);
    }
    everyone_.resize(total);  // same size every step: no allocation, no zeroing
    MPI_Allgatherv(mine.data(), n, type_, everyone_.data(), counts_.data(), offsets_.data(), type_,
                   comm_);
    mine.clear();
    for (const P& p : everyone_)
      if (p.x >= lo_ && p.x < hi_) mine.push_back(p);
    // Counted as if every rank sent its part to every other rank (a ring: Open MPI's choice
    // for large messages). Bytes received are exact for any algorithm: everything not local.
    const auto others = static_cast<std::uint64_t>(size_ - 1);
    counts.collectives += 2;
    counts.messages_sent += others;
    counts.messages_received += others;
    counts.bytes_sent += others * static_cast<std::uint64_t>(n) * sizeof(P);
    counts.bytes_received += (total - static_cast<std::size_t>(n)) * sizeof(P);
  }

  ExchangeCounts counts;

 private:
  MPI_Comm comm_;
  MPI_Datatype type_;
  int rank_ = 0, size_ = 1;
  double lo_ = 0, hi_ = 1;
  std::vector<int> counts_, offsets_;
  std::vector<P> everyone_;
};

}  // namespace bench
