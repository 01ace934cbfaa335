// domdec/exchanger.hpp — migration: after the user moved particles, hand every particle that
// left this rank's slab to the rank that now owns it, over the typed or serialized transport.
#pragma once

#include <mpi.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "domdec/coordinates.hpp"
#include "domdec/decomposition.hpp"
#include "domdec/detail/agreement.hpp"
#include "domdec/detail/format.hpp"
#include "domdec/detail/mpi_check.hpp"
#include "domdec/error.hpp"
#include "domdec/migration_stats.hpp"
#include "domdec/transport.hpp"

namespace domdec {

/// Tuning of an Exchanger. Every rank must use the same values (checked at construction).
struct ExchangerOptions {
  /// Largest single message in bytes; a larger payload travels as several messages to the
  /// same rank. MPI and Boost.MPI count in `int` (2^31) and Boost.MPI crashes on serialized
  /// messages over 2 GiB (boostorg/mpi#122), hence the default of 1 GiB. Tests lower it to a
  /// few KiB to exercise chunking cheaply.
  std::size_t max_message_bytes = std::size_t{1} << 30;
  /// Whether the particles that arrive from one rank keep the relative order they had there.
  /// Either way arrivals are grouped by source rank in ascending order, and the same input
  /// gives the same order. Keeping it costs a second read of the leavers that the scan finds
  /// from the back of the vector: about a fifth of a migration's time when half the
  /// particles leave, nothing measurable below a tenth (docs/performance.md).
  bool keep_sender_order = true;
};

namespace detail {
template <class P, class = void>
struct has_integral_id : std::false_type {};
template <class P>
struct has_integral_id<P, std::void_t<decltype(std::declval<const P&>().id)>>
    : std::is_integral<std::decay_t<decltype(std::declval<const P&>().id)>> {};

// Library tags on the library's own communicator (user tags can never collide with them).
inline constexpr int migrate_tag = 1;
}  // namespace detail

/// Moves particles of type P between the ranks of a Decomposition<Dim>.
///
/// The protocol of one `migrate` (see docs/design.md):
/// 1. every rank scans its particles for the ones outside its slab (no communication);
/// 2. one allreduce of two integers tells every rank whether any particle anywhere went
///    further than a neighbouring slab, and whether any rank found an invalid particle (then
///    every rank throws ParticleError with the culprit's message; nothing was moved);
/// 3. local motion: each rank sends one stream to each neighbouring rank (possibly an empty
///    message) and receives one from each; far motion: an alltoall of flags finds who sends to
///    whom, then streams go straight to their owners. Either way every particle is delivered
///    in this call, however far it went;
/// 4. arrivals are appended in ascending order of source rank, each in its sender's order
///    (unless ExchangerOptions::keep_sender_order is false: then in a deterministic order).
///
/// Steady state allocates nothing: buckets and request lists keep their capacity, arrivals are
/// received straight into the particle vector (which grows only past its capacity). Any
/// std::vector<P, Alloc> works; `domdec::ParticleVector<P>` (allocator.hpp) is the fastest:
/// huge pages, and arrivals are not zeroed before they are received.
template <class P, int Dim = 1, class Transport = default_transport_t<P>>
class Exchanger : private TransportRequirements<P, Transport> {
 public:
  using Particle = P;
  using TransportTag = Transport;

  /// Collective over the decomposition's communicator. `decomposition` must outlive the
  /// Exchanger (its cuts are read at every migrate, so load balancing takes effect at once).
  /// `position` names where P keeps its position. Throws SetupError on every rank when ranks
  /// disagree (particle size, transport, options) or when P's MPI datatype does not match its
  /// layout (typed transport).
  Exchanger(const Decomposition<Dim>& decomposition, Coordinates<P, Dim> position,
            ExchangerOptions options = {})
      : decomposition_(&decomposition),
        position_(position),
        options_(options),
        channel_(options.max_message_bytes),
        buckets_(static_cast<std::size_t>(decomposition.size())) {
    const std::string layout = channel_.layout_problem();
    const std::string name = type_name<P>();
    const std::array<detail::AgreedField, 8> fields{{
        {"particle size in bytes", sizeof(P)},
        {"particle type", detail::digest(name.data(), name.size()), true},
        {"transport (0 typed, 1 serialized)", std::is_same_v<Transport, Typed> ? 0u : 1u},
        {"MPI datatype extent", channel_.extent()},
        {"max_message_bytes", static_cast<std::uint64_t>(options.max_message_bytes)},
        {"keep_sender_order", options.keep_sender_order ? 1u : 0u},
        {"dimension", static_cast<std::uint64_t>(Dim)},
        {"validity of the particle datatype", layout.empty() ? 0u : 1u},
    }};
    const std::string mismatch = detail::disagreement(comm(), fields, "Exchanger");
    if (!layout.empty()) throw SetupError(layout);
    if (!mismatch.empty()) throw SetupError(mismatch);
    if (options.max_message_bytes == 0) {
      throw SetupError("domdec: ExchangerOptions::max_message_bytes must be positive");
    }
    sends_to_.resize(buckets_.size());
    back_leavers_.resize(buckets_.size());
    receives_from_.resize(buckets_.size());
  }

  /// Moves every particle of `particles` that is outside this rank's slab to its owner and
  /// appends the particles that arrive. Collective: every rank of the decomposition must call
  /// it, the same number of times. Precondition: every position is inside the box (apply
  /// Domain::apply_boundaries first). Otherwise — a NaN, an infinity, a position outside —
  /// every rank throws ParticleError naming the rank, the particle and its position, and
  /// `particles` is left unchanged. Returns this call's statistics (also added to totals()).
  template <class Alloc>
  MigrationStats migrate(std::vector<P, Alloc>& particles) {
    return migrate(particles, [](P&) {});
  }

  /// A whole step in one pass over memory: calls `update(p)` once for every particle, in an
  /// unspecified order (the physics of the step and the walls, e.g. with Domain::reflect or
  /// Domain::wrap), then migrates as migrate(particles) does. The user's own loop,
  /// Domain::apply_boundaries and migrate(particles) read and write every particle three
  /// times; this reads and writes each once, which is about twice as fast when the particles
  /// do not fit in cache (docs/performance.md). Collective, with the precondition, statistics
  /// and errors of migrate(particles), except that on error `update` has already been applied
  /// to every particle (none has moved to another rank). `update` must not add or remove
  /// particles.
  template <class Alloc, class Update>
  MigrationStats migrate(std::vector<P, Alloc>& particles, Update&& update) {
    ++calls_;
    MigrationStats stats;
    stats.calls = 1;
    const MPI_Comm c = comm();
    const Decomposition<Dim>& d = *decomposition_;

    // 1. One pass: update each particle, sort the stayers to the front and the leavers to
    // the back of `particles` (by swaps, logged), pack each leaver into its owner's bucket.
    const bool far = sort_out_leavers(particles, update);

    // 2. One allreduce: anyone far? anyone invalid (encoded so the lowest such rank wins)?
    std::array<int, 2> flags{far ? 1 : 0, first_invalid_ >= 0 ? d.size() - d.rank() : 0};
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, flags.data(), 2, MPI_INT, MPI_MAX, c),
                      "MPI_Allreduce");
    ++stats.collectives;
    if (flags[1] > 0) {
      undo_sort(particles);  // every particle back in its place: nothing was moved
      raise_particle_error(d.size() - flags[1], particles);
    }

    // 3. The leavers are packed: drop them from the back.
    particles.erase(particles.begin() + static_cast<std::ptrdiff_t>(kept_), particles.end());

    // 4. Who talks to whom.
    if (flags[0] == 0) {
      neighbour_peers();
    } else {
      ++stats.general_path_calls;
      ++stats.collectives;
      all_peers(c);
    }

    // 5. Post every send, then receive in ascending source order: no deadlock is possible
    // because no rank waits on a send before it has received everything.
    requests_.clear();
    for (int dest : send_peers_) {
      const detail::StreamCounts s =
          channel_.send(c, dest, detail::migrate_tag, bucket(dest), requests_);
      stats.particles_sent += s.particles;
      stats.messages_sent += s.messages;
      stats.bytes_sent += s.bytes;
    }
    for (int source : receive_peers_) {
      const detail::StreamCounts r = channel_.receive(c, source, detail::migrate_tag, particles);
      stats.particles_received += r.particles;
      stats.messages_received += r.messages;
      stats.bytes_received += r.bytes;
    }
    detail::mpi_check(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(),
                                  MPI_STATUSES_IGNORE),
                      "MPI_Waitall");
    for (int dest : send_peers_) Chan::clear(bucket(dest));
    totals_ += stats;
    return stats;
  }

  /// Sum of the statistics of every migrate call so far on this rank.
  const MigrationStats& totals() const noexcept { return totals_; }
  const Decomposition<Dim>& decomposition() const noexcept { return *decomposition_; }
  const ExchangerOptions& options() const noexcept { return options_; }
  const Coordinates<P, Dim>& position() const noexcept { return position_; }

  /// How error messages name a particle. By default a member `id` of integral type is
  /// printed when P has one.
  void describe_particles_with(std::function<std::string(const P&)> describe) {
    describe_ = std::move(describe);
  }

 private:
  using Chan = detail::Channel<P, Transport>;

  MPI_Comm comm() const { return MPI_Comm(decomposition_->communicator()); }
  typename Chan::Bucket& bucket(int rank) { return buckets_[static_cast<std::size_t>(rank)]; }

  // The pass of step 1. Two cursors: `i` walks up from the front over the particles that
  // stay; each leaver it meets is packed and swapped with the last particle that stays, found
  // by `end` walking down from the back (leavers met there are packed afterwards, in
  // ascending order). Every particle is updated and classified exactly once; afterwards
  // [0, kept_) stay, [kept_, n) leave, and each bucket holds its leavers in ascending order of
  // their index in `particles` (the sender's order; without keep_sender_order, those found
  // from the back are packed at once, in descending order). The final order of the stayers
  // is that of filling each hole with the last stayer. One read and at most one write per
  // particle, as in hand-written code, instead of a search, a packing and a hole-filling pass.
  // Invalid particles stay (and are recorded); swapped_ lets undo_sort restore the input order.
  // Returns whether any leaver goes further than a neighbouring slab.
  template <class Alloc, class Update>
  bool sort_out_leavers(std::vector<P, Alloc>& particles, Update& update) {
    const Decomposition<Dim>& d = *decomposition_;
    const int axis = d.axis();
    const int me = d.rank();
    const Interval slab = d.local_bounds();
    // [lower, upper) tests; a closed upper side becomes the next double up.
    const double lower = slab.lower;
    const double upper = open_upper(slab);
    const int below = d.lower_neighbour().value_or(-1);
    const int above = d.upper_neighbour().value_or(-1);
    // The slabs just below and above along the axis (not across a periodic wrap): leavers
    // into them, the common case, need no search. Empty ranges where there is no such slab.
    const double below_lower = me > 0 ? d.bounds_of(me - 1).lower : lower;
    const double above_upper = me < d.size() - 1 ? open_upper(d.bounds_of(me + 1)) : upper;
    // A local copy: the compiler can keep it in registers and hoist its scalar-or-array test
    // out of the loop (the member could, as far as it knows, be changed by the stores below).
    const Coordinates<P, Dim> position = position_;
    // One bit per particle. It grows geometrically, as the vector does: a count that creeps up
    // must not reallocate it at every new maximum.
    const std::size_t words = particles.size() / 64 + 1;
    if (words > swapped_.capacity()) swapped_.reserve(std::max(words, 2 * swapped_.capacity()));
    swapped_.assign(words, 0);
    std::uint64_t* const swapped = swapped_.data();
    first_invalid_ = -1;
    invalid_count_ = 0;
    bool far = false;

    // The particles through a local pointer, and the lambda's inputs by value: the stores of
    // the packing (bytes, for the serialized transport) could otherwise alias the vector's
    // own pointers and the bounds, which the compiler would then reload for every particle.
    P* const data = particles.data();

    // Updates particle k and returns its owner; `me` for the particles that stay, and for
    // invalid ones (recorded: they stay where they are until the error is raised).
    auto destination = [&update, &far, &d, this, data, position, axis, me, lower, upper,
                        below_lower, above_upper, below, above](std::size_t k) -> int {
      P& p = data[k];
      update(p);
      const double x = position.get(p, axis);
      if (x >= lower) {
        if (x < upper) return me;  // stays: the common case
        if (x < above_upper) return me + 1;
      } else if (x >= below_lower) {
        return me - 1;
      }
      const int owner = d.owner_or_negative(x);
      if (owner < 0) {
        const auto index = static_cast<std::ptrdiff_t>(k);
        if (first_invalid_ < 0 || index < first_invalid_) first_invalid_ = index;
        ++invalid_count_;
        return me;
      }
      far = far || (owner != me && owner != below && owner != above);
      return owner;  // == me cannot happen with consistent cuts; the particle then stays
    };

    const bool in_order = options_.keep_sender_order;
    std::size_t i = 0, end = particles.size();
    while (i < end) {
      const int owner = destination(i);
      if (owner == me) {
        ++i;
        continue;
      }
      Chan::put(bucket(owner), data[i]);
      while (--end > i) {  // the last particle that stays takes this one's place
        const int back_owner = destination(end);
        if (back_owner == me) {
          using std::swap;
          swap(data[i], data[end]);
          swapped[i / 64] |= std::uint64_t{1} << (i % 64);
          swapped[end / 64] |= std::uint64_t{1} << (end % 64);
          ++i;
          break;
        }
        if (in_order) {
          back_leavers_[static_cast<std::size_t>(back_owner)].push_back(end);
        } else {
          Chan::put(bucket(back_owner), data[end]);
        }
      }
    }
    kept_ = i;
    // Leavers met from the back were found in descending order: pack them ascending, after
    // the ones met from the front (which all have smaller indices). One list per owner, so
    // this loop does not branch on each particle's owner (a mispredicted branch per particle
    // when half of them go each way).
    for (std::size_t r = 0; r < back_leavers_.size(); ++r) {
      std::vector<std::size_t>& found = back_leavers_[r];
      for (auto k = found.rbegin(); k != found.rend(); ++k)
        Chan::put(buckets_[r], particles[*k]);
      found.clear();
    }
    return far;
  }

  // After an error: undoes sort_out_leavers' swaps (particles are back in their input order,
  // as `update` left them) and empties the buckets. The k-th marked index below kept_ was
  // swapped with the k-th marked index from the top: the cursors met them in that order.
  template <class Alloc>
  void undo_sort(std::vector<P, Alloc>& particles) {
    using std::swap;
    auto marked = [this](std::size_t k) { return (swapped_[k / 64] >> (k % 64)) & 1u; };
    std::size_t back = particles.size();
    for (std::size_t front = 0; front < kept_; ++front) {
      if (!marked(front)) continue;
      do --back; while (!marked(back));
      swap(particles[front], particles[back]);
    }
    for (auto& b : buckets_) Chan::clear(b);
  }

  static double open_upper(const Interval& slab) noexcept {
    return slab.includes_upper
               ? std::nextafter(slab.upper, std::numeric_limits<double>::infinity())
               : slab.upper;
  }

  void neighbour_peers() {
    const Decomposition<Dim>& d = *decomposition_;
    send_peers_.clear();
    const int me = d.rank();
    const int below = d.lower_neighbour().value_or(me);
    const int above = d.upper_neighbour().value_or(me);
    if (below != me) send_peers_.push_back(below);
    if (above != me && above != below) send_peers_.push_back(above);
    if (send_peers_.size() == 2 && send_peers_[0] > send_peers_[1])
      std::swap(send_peers_[0], send_peers_[1]);
    receive_peers_ = send_peers_;  // neighbourhood is symmetric; capacity is reused
  }

  void all_peers(MPI_Comm c) {
    const int size = decomposition_->size();
    for (int r = 0; r < size; ++r)
      sends_to_[static_cast<std::size_t>(r)] = Chan::count(bucket(r)) > 0 ? 1 : 0;
    detail::mpi_check(MPI_Alltoall(sends_to_.data(), 1, MPI_INT, receives_from_.data(), 1,
                                   MPI_INT, c),
                      "MPI_Alltoall");
    send_peers_.clear();
    receive_peers_.clear();
    for (int r = 0; r < size; ++r) {
      if (sends_to_[static_cast<std::size_t>(r)] != 0) send_peers_.push_back(r);
      if (receives_from_[static_cast<std::size_t>(r)] != 0) receive_peers_.push_back(r);
    }
  }

  std::string describe(const P& p) const {
    if (describe_) return " [" + describe_(p) + "]";
    if constexpr (detail::has_integral_id<P>::value) return detail::message(" [id ", p.id, "]");
    return {};
  }

  // Every rank calls this after the allreduce reported an invalid particle on `culprit`: the
  // culprit's message is broadcast so every rank throws the same, complete error.
  template <class Alloc>
  [[noreturn]] void raise_particle_error(int culprit, const std::vector<P, Alloc>& particles) {
    const Decomposition<Dim>& d = *decomposition_;
    std::string text;
    if (d.rank() == culprit) {
      const auto i = static_cast<std::size_t>(first_invalid_);
      const Interval slab = d.local_bounds();
      const int axis = d.axis();
      text = detail::message(
          "domdec: migrate call ", calls_, " on rank ", culprit, " of ", d.size(), ": particle ",
          i, " of ", particles.size(), " on this rank", describe(particles[i]), " is at ",
          position_.get(particles[i]), ", coordinate ", position_.get(particles[i], axis),
          " along axis ", axis, " is outside the box [", d.domain().lower(axis), ", ",
          d.domain().upper(axis), "] (", to_string(d.domain().boundary(axis)),
          "); this rank's slab is [", slab.lower, ", ", slab.upper, slab.includes_upper ? "]" : ")",
          invalid_count_ > 1 ? detail::message(" (", invalid_count_ - 1,
                                               " more invalid particles on this rank)")
                             : std::string(),
          ". A non-finite position means the propagation produced NaN or Inf; otherwise apply "
          "Domain::apply_boundaries before migrate. Nothing was moved.");
    }
    unsigned long length = text.size();
    detail::mpi_check(MPI_Bcast(&length, 1, MPI_UNSIGNED_LONG, culprit, comm()), "MPI_Bcast");
    text.resize(length);
    detail::mpi_check(MPI_Bcast(text.data(), static_cast<int>(length), MPI_CHAR, culprit, comm()),
                      "MPI_Bcast");
    throw ParticleError(text);
  }

  const Decomposition<Dim>* decomposition_;
  Coordinates<P, Dim> position_;
  ExchangerOptions options_;
  Chan channel_;
  std::vector<typename Chan::Bucket> buckets_;  // one per destination rank
  std::vector<std::vector<std::size_t>> back_leavers_;     // per owner, by the back cursor
  std::vector<std::uint64_t> swapped_;  // bit per particle: swapped by sort_out_leavers
  std::size_t kept_ = 0;                                    // particles that stay
  std::vector<int> send_peers_;
  std::vector<int> receive_peers_;
  std::vector<int> sends_to_;
  std::vector<int> receives_from_;
  std::vector<MPI_Request> requests_;
  std::function<std::string(const P&)> describe_;
  std::ptrdiff_t first_invalid_ = -1;
  std::size_t invalid_count_ = 0;
  std::size_t calls_ = 0;
  MigrationStats totals_;
};

}  // namespace domdec
