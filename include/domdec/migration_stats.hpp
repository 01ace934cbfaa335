// domdec/migration_stats.hpp — what one migration (or all of them) cost: particles, messages
// and bytes, so the cost of communication is visible to the user and checkable in tests.
#pragma once

#include <cstddef>

namespace domdec {

/// Counts of one `Exchanger::migrate` call on one rank (or, summed, of many calls).
struct MigrationStats {
  std::size_t calls = 0;               ///< migrate calls counted here
  std::size_t particles_sent = 0;      ///< particles that left this rank
  std::size_t particles_received = 0;  ///< particles that arrived on this rank
  /// Point-to-point messages, including the short message that ends each stream (a neighbour
  /// is always sent one, possibly empty, so it knows nothing more is coming).
  std::size_t messages_sent = 0;
  std::size_t messages_received = 0;
  std::size_t bytes_sent = 0;      ///< payload bytes (particles, or serialized bytes)
  std::size_t bytes_received = 0;
  /// Collective operations: one 3-integer allreduce per call, plus one alltoall of integers
  /// on the calls that took the general path.
  std::size_t collectives = 0;
  /// Calls in which some particle, on some rank, went further than a neighbouring slab.
  std::size_t general_path_calls = 0;

  MigrationStats& operator+=(const MigrationStats& o) noexcept {
    calls += o.calls;
    particles_sent += o.particles_sent;
    particles_received += o.particles_received;
    messages_sent += o.messages_sent;
    messages_received += o.messages_received;
    bytes_sent += o.bytes_sent;
    bytes_received += o.bytes_received;
    collectives += o.collectives;
    general_path_calls += o.general_path_calls;
    return *this;
  }
};

}  // namespace domdec
