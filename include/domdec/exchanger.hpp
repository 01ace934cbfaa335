// domdec/exchanger.hpp — migration: after the user moved particles, hand every particle that
// left this rank's slab to the rank that now owns it, over the typed or serialized transport.
#pragma once

#include <mpi.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
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
  /// Largest single message in bytes (the chunk size); a larger payload to one rank travels
  /// as several messages of this size and one shorter message that ends the stream, so a
  /// migration of any size works. MPI and Boost.MPI count in `int` (2^31) and Boost.MPI
  /// crashes on serialized messages over 2 GiB (boostorg/mpi#122), hence the default of
  /// 1 GiB; values from 1 to INT_MAX (2^31 - 1) are accepted. Tests lower it to a few bytes or
  /// KiB to exercise chunking cheaply. A typed message holds whole particles: at least one,
  /// however small the limit.
  std::size_t max_message_bytes = std::size_t{1} << 30;
  /// Whether the particles that arrive from one rank keep the relative order they had there.
  /// Either way arrivals are grouped by source rank in ascending order, and the same input
  /// gives the same order (so results stay reproducible). Off by default: keeping it costs a
  /// second read of the leavers that the scan finds from the back of the vector, about a
  /// fifth of a migration's time when half the particles leave, nothing measurable below a
  /// tenth (docs/performance.md). Turn it on when arrivals must come in the sender's order.
  bool keep_sender_order = false;
};

/// What the caller of `migrate` knows about the step in progress, so that an error names it
/// and the job ends cleanly. All optional; it costs nothing while nothing goes wrong. A step
/// driver keeps one, sets `explain` once and `step` and `failure` every step.
template <class P>
struct MigrateContext {
  /// The caller's step number, named in error messages ("step 5, migrate call 5 ..."); a
  /// negative value is not printed. It must be the same on every rank.
  std::int64_t step = -1;

  /// Adds what only the caller knows to the message of an invalid particle (its position
  /// before the step, the force on it, ...). Called on the rank that found the particle
  /// (only there, once) with the particle and its index in the vector given to migrate;
  /// the returned text is added to the message every rank throws. It must not communicate.
  /// If it throws, the text of its exception is added instead.
  std::function<std::string(const P& particle, std::size_t index)> explain;

  /// Set it (`failure = std::current_exception()`) when this rank failed before migrate —
  /// typically the user's propagation functor threw. Then every rank throws domdec::Error
  /// with this rank's message (the lowest such rank's, if several failed) and nothing is
  /// moved: the failing rank still calls migrate, so no other rank waits for it forever.
  std::exception_ptr failure;
};

namespace detail {
template <class P, class = void>
struct has_integral_id : std::false_type {};
template <class P>
struct has_integral_id<P, std::void_t<decltype(std::declval<const P&>().id)>>
    : std::is_integral<std::decay_t<decltype(std::declval<const P&>().id)>> {};

// Library tags on the library's own communicator (user tags can never collide with them).
inline constexpr int migrate_tag = 1;

// The update of a plain migrate(particles): nothing.
struct NoUpdate {
  template <class P>
  void operator()(P&) const noexcept {}
};
template <class T, class P>
inline constexpr bool is_migrate_context_v =
    std::is_same_v<std::remove_cv_t<std::remove_reference_t<T>>, MigrateContext<P>>;
}  // namespace detail

/// Moves particles of type P between the ranks of a Decomposition<Dim>.
///
/// The protocol of one `migrate` (see docs/design.md):
/// 1. every rank sorts its particles into stayers and leavers in one pass, packing each
///    leaver into its owner's bucket (no communication);
/// 2. one allreduce of three integers tells every rank whether any particle anywhere went
///    further than a neighbouring slab, whether any rank found an invalid particle (then
///    every rank throws ParticleError with the culprit's message; nothing was moved), and
///    whether any rank reported a failure of its own (MigrateContext::failure, or an
///    exception from `update`: then every rank throws Error with that rank's message);
/// 3. local motion: each rank sends one stream to each neighbouring rank (possibly an empty
///    message) and receives one from each; far motion: an alltoall of flags finds who sends to
///    whom, then streams go straight to their owners. Either way every particle is delivered
///    in this call, however far it went;
/// 4. arrivals are appended in ascending order of source rank, those of one source in a
///    deterministic order (the sender's order when ExchangerOptions::keep_sender_order is on).
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
  /// layout (typed transport), or when max_message_bytes is 0 or above INT_MAX; the message
  /// names the rank and what differs.
  Exchanger(const Decomposition<Dim>& decomposition, Coordinates<P, Dim> position,
            ExchangerOptions options = {})
      : decomposition_(&decomposition),
        position_(position),
        options_(options),
        channel_(options.max_message_bytes),
        buckets_(static_cast<std::size_t>(decomposition.size())) {
    std::string local_problem = channel_.layout_problem();
    if (local_problem.empty() &&
        (options.max_message_bytes == 0 || options.max_message_bytes > detail::max_int_count)) {
      local_problem = detail::message(
          "domdec: ExchangerOptions::max_message_bytes must be between 1 and ",
          detail::max_int_count, " (MPI counts are int); got ", options.max_message_bytes);
    }
    const std::string name = type_name<P>();
    const std::array<detail::AgreedField, 7> fields{{
        {"particle size in bytes", sizeof(P)},
        {"particle type", detail::digest(name.data(), name.size()), true},
        {"transport (0 typed, 1 serialized)", std::is_same_v<Transport, Typed> ? 0u : 1u},
        {"MPI datatype extent", channel_.extent()},
        {"max_message_bytes", static_cast<std::uint64_t>(options.max_message_bytes)},
        {"keep_sender_order", options.keep_sender_order ? 1u : 0u},
        {"dimension", static_cast<std::uint64_t>(Dim)},
    }};
    const std::string problem =
        detail::agreement_problem(comm(), fields, "Exchanger", local_problem);
    if (!problem.empty()) throw SetupError(problem);
    sends_to_.resize(buckets_.size());
    back_leavers_.resize(buckets_.size());
    receives_from_.resize(buckets_.size());
  }

  /// Moves every particle of `particles` that is outside this rank's slab to its owner and
  /// appends the particles that arrive. Collective: every rank of the decomposition must call
  /// it, the same number of times. Precondition: every position is inside the box on every
  /// axis (apply Domain::apply_boundaries first). Otherwise — a NaN, an infinity, a position
  /// outside — every rank throws ParticleError naming the migrate call, the rank, the
  /// particle (index and id), its position, the box and this rank's slab, and `particles` is
  /// left unchanged on every rank. Returns this call's statistics (also added to totals()).
  template <class Alloc>
  MigrationStats migrate(std::vector<P, Alloc>& particles) {
    return migrate(particles, detail::NoUpdate{}, no_context_);
  }

  /// As above, with what the caller knows about the step: `context` adds the step number and
  /// the caller's own explanation to the message of an invalid particle, and carries a
  /// failure of this rank to every rank (see MigrateContext).
  template <class Alloc>
  MigrationStats migrate(std::vector<P, Alloc>& particles, const MigrateContext<P>& context) {
    return migrate(particles, detail::NoUpdate{}, context);
  }

  /// A whole step in one pass over memory: calls `update(p)` once for every particle, in an
  /// unspecified order (the physics of the step and the walls, e.g. with Domain::reflect or
  /// Domain::wrap), then migrates as migrate(particles) does. The user's own loop,
  /// Domain::apply_boundaries and migrate(particles) read and write every particle three
  /// times; this reads and writes each once, which is about twice as fast when the particles
  /// do not fit in cache (docs/performance.md). Collective, with the precondition, statistics
  /// and errors of migrate(particles), except that on error `update` has already been applied
  /// to every particle (none has moved to another rank). `update` must not add or remove
  /// particles. If `update` throws on one rank, the pass stops there, the particles are put
  /// back in their input order (some updated, some not) and every rank throws domdec::Error
  /// with that exception's message: nobody is left waiting.
  template <class Alloc, class Update,
            class = std::enable_if_t<!detail::is_migrate_context_v<Update, P>>>
  MigrationStats migrate(std::vector<P, Alloc>& particles, Update&& update) {
    return migrate(particles, std::forward<Update>(update), no_context_);
  }

  /// The general form: a pass with `update`, and the caller's `context`.
  template <class Alloc, class Update>
  MigrationStats migrate(std::vector<P, Alloc>& particles, Update&& update,
                         const MigrateContext<P>& context) {
    ++calls_;
    MigrationStats stats;
    stats.calls = 1;
    const MPI_Comm c = comm();
    const Decomposition<Dim>& d = *decomposition_;

    // 1. One pass: update each particle, sort the stayers to the front and the leavers to
    // the back of `particles` (by swaps, logged), pack each leaver into its owner's bucket.
    // A rank that already failed (context.failure) skips it; one whose `update` throws stops.
    std::exception_ptr failure = context.failure;
    bool far = false;
    sorted_ = false;
    first_invalid_ = -1;
    invalid_count_ = 0;
    if (!failure) {
      try {
        far = sort_out_leavers(particles, update);
      } catch (...) {
        failure = std::current_exception();
      }
    }

    // 2. One allreduce: anyone far? anyone invalid? anyone failed? The last two are encoded
    // as size - rank so the lowest such rank wins.
    const int code = d.size() - d.rank();
    std::array<int, 3> flags{far ? 1 : 0, first_invalid_ >= 0 ? code : 0, failure ? code : 0};
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, flags.data(), 3, MPI_INT, MPI_MAX, c),
                      "MPI_Allreduce");
    ++stats.collectives;
    if (flags[1] > 0 || flags[2] > 0) {
      undo_sort(particles);  // every particle back in its place: nothing was moved
      if (flags[2] > 0) raise_failure(d.size() - flags[2], failure, !context.failure, context);
      raise_particle_error(d.size() - flags[1], particles, context);
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
  /// printed when P has one. Called on one rank only, while the others wait for the message:
  /// it must not communicate (if it throws, its exception's text is printed instead).
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
    if (words > swapped_.capacity()) swapped_.reserve(2 * std::max(words, swapped_.capacity()));
    swapped_.assign(words, 0);
    std::uint64_t* const swapped = swapped_.data();
    sorted_ = true;  // from here on undo_sort knows how to put every particle back
    bool far = false;

    // The particles through a local pointer, and the lambda's inputs by value: the stores of
    // the packing (bytes, for the serialized transport) could otherwise alias the vector's
    // own pointers and the bounds, which the compiler would then reload for every particle.
    P* const data = particles.data();

    // The owner of particle k, already updated; `me` for the particles that stay, and for
    // invalid ones (recorded: they stay where they are until the error is raised).
    auto owner_after_update = [&far, &d, this, data, position, axis, me, lower, upper, below_lower,
                     above_upper, below, above](std::size_t k) -> int {
      const P& p = data[k];
      const double x = position.get(p, axis);
      const bool across = inside_across(p, position, axis);  // free in 1-D
      if (x >= lower && across) {
        if (x < upper) return me;  // stays: the common case
        if (x < above_upper) return me + 1;
      } else if (x >= below_lower && across) {
        return me - 1;
      }
      const int owner = across ? d.owner_or_negative(x) : -1;
      if (owner < 0) {
        const auto index = static_cast<std::ptrdiff_t>(k);
        if (first_invalid_ < 0 || index < first_invalid_) first_invalid_ = index;
        ++invalid_count_;
        return me;
      }
      far = far || (owner != me && owner != below && owner != above);
      return owner;  // == me cannot happen with consistent cuts; the particle then stays
    };
    auto destination = [&update, &owner_after_update, data](std::size_t k) -> int {
      update(data[k]);
      return owner_after_update(k);
    };
    // The coordinate along the axis, read at a fixed byte offset: no scalar-or-array branch
    // in the loop over the stayers below.
    const std::ptrdiff_t axis_offset =
        particles.empty() ? 0 : position.byte_offset(data[0], axis);

    const bool in_order = options_.keep_sender_order;
    std::size_t i = 0, end = particles.size();
    // If `update` throws, [0, i) and the logged swaps are consistent: undo_sort restores the
    // input order from them. The lists of back leavers are dropped (their particles were packed
    // into buckets that undo_sort empties, or not packed at all).
    struct PassGuard {
      std::size_t& kept;
      const std::size_t& front;
      std::vector<std::vector<std::size_t>>& lists;
      bool done = false;
      ~PassGuard() {
        if (done) return;
        kept = front;
        for (auto& l : lists) l.clear();
      }
    } guard{kept_, i, back_leavers_};
    while (i < end) {
      // The common case, particles that stay, in a loop of its own: few live values, so they
      // stay in registers. (With every case in one loop g++ kept the bounds and cursors on
      // the stack and tested the scalar-or-array coordinate per particle: bench_step's typed
      // step went from 0.71-0.80x the hand-written one to 0.89-1.08x with this loop.)
      for (; i < end; ++i) {
        P& p = data[i];
        update(p);
        const double x = Coordinates<P, Dim>::at(p, axis_offset);
        if (!(x >= lower && x < upper && inside_across(p, position, axis))) break;
      }
      if (i == end) break;
      const int owner = owner_after_update(i);  // updated above
      if (owner == me) {  // invalid (recorded), or a stayer after all: it stays
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
    guard.done = true;
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
    if (!sorted_) return;  // the pass did not run: nothing was touched
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

  // True when every coordinate other than the decomposition axis is inside the box (a NaN
  // there would otherwise stay on this rank unnoticed). Free for Dim == 1.
  bool inside_across(const P& p, const Coordinates<P, Dim>& position, int axis) const noexcept {
    if constexpr (Dim == 1) {
      (void)p;
      (void)position;
      (void)axis;
      return true;
    } else {
      const Domain<Dim>& box = decomposition_->domain();
      for (int a = 0; a < Dim; ++a)
        if (a != axis && !box.contains(position.get(p, a), a)) return false;
      return true;
    }
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

  // " [id 42]", or the user's description; never throws (it runs while others wait).
  std::string describe(const P& p) const noexcept {
    try {
      if (describe_) return " [" + describe_(p) + "]";
      if constexpr (detail::has_integral_id<P>::value) return detail::message(" [id ", p.id, "]");
    } catch (const std::exception& e) {
      return std::string(" [describe_particles_with threw: ") + e.what() + "]";
    } catch (...) {
      return " [describe_particles_with threw]";
    }
    return {};
  }

  // "step 5, migrate call 5" or "migrate call 5".
  std::string call_name(const MigrateContext<P>& context) const {
    return context.step >= 0 ? detail::message("step ", context.step, ", migrate call ", calls_)
                             : detail::message("migrate call ", calls_);
  }

  // Why position `r` is not in the box: the first bad axis, the slab checked first.
  std::string what_is_wrong(const P& p) const {
    const Decomposition<Dim>& d = *decomposition_;
    const Domain<Dim>& box = d.domain();
    int bad = d.axis();
    for (int a = 0; a < Dim && box.contains(position_.get(p, bad), bad); ++a)
      if (!box.contains(position_.get(p, a), a)) bad = a;
    const double x = position_.get(p, bad);
    if (!std::isfinite(x)) {
      return detail::message("its coordinate along axis ", bad, ", ", x,
                             ", is not a finite number");
    }
    const bool periodic = box.boundary(bad) == Boundary::periodic;
    return detail::message("its coordinate along axis ", bad, ", ", x, ", is outside the box [",
                           box.lower(bad), ", ", box.upper(bad), periodic ? ")" : "]", " (",
                           to_string(box.boundary(bad)), ")");
  }

  // Every rank calls this after the allreduce reported an invalid particle on `culprit`: the
  // culprit's message is broadcast so every rank throws the same, complete error.
  template <class Alloc>
  [[noreturn]] void raise_particle_error(int culprit, const std::vector<P, Alloc>& particles,
                                         const MigrateContext<P>& context) {
    const Decomposition<Dim>& d = *decomposition_;
    std::string text;
    if (d.rank() == culprit) {
      const auto i = static_cast<std::size_t>(first_invalid_);
      const P& p = particles[i];
      const Interval slab = d.local_bounds();
      std::string extra;
      if (context.explain) {
        try {
          extra = context.explain(p, i);
        } catch (const std::exception& e) {
          extra = std::string("(MigrateContext::explain threw: ") + e.what() + ")";
        } catch (...) {
          extra = "(MigrateContext::explain threw)";
        }
      }
      text = detail::message(
          "domdec: ", call_name(context), " on rank ", culprit, " of ", d.size(), ": particle ", i,
          " of ", particles.size(), " on this rank", describe(p), " is at ", position_.get(p), "; ",
          what_is_wrong(p), ". This rank's slab is [", slab.lower, ", ", slab.upper,
          slab.includes_upper ? "]" : ")", " along axis ", d.axis(), ".",
          extra.empty() ? std::string() : " " + extra,
          invalid_count_ > 1
              ? detail::message(" (", invalid_count_ - 1, " more invalid particles on this rank.)")
              : std::string(),
          " A non-finite position means the propagation produced NaN or Inf; a finite one "
          "outside the box means Domain::apply_boundaries was not applied before migrate. "
          "Nothing was moved.");
    }
    throw ParticleError(detail::broadcast_text(comm(), culprit, std::move(text)));
  }

  // Every rank calls this after the allreduce reported that `culprit` failed (before migrate,
  // or in `update`); `failure` is that rank's exception (empty elsewhere).
  [[noreturn]] void raise_failure(int culprit, const std::exception_ptr& failure,
                                  bool in_update, const MigrateContext<P>& context) {
    const Decomposition<Dim>& d = *decomposition_;
    std::string text;
    if (d.rank() == culprit) {
      std::string what;
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        what = "an exception that is not a std::exception";
      }
      text = detail::message("domdec: ", call_name(context), ": rank ", culprit, " of ", d.size(),
                             in_update ? " failed in the update of migrate: " : " failed before migrate: ", what,
                             " (every rank stops here; nothing was moved)");
    }
    throw Error(detail::broadcast_text(comm(), culprit, std::move(text)));
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
  MigrateContext<P> no_context_;
  bool sorted_ = false;  // sort_out_leavers ran in this call (undo_sort has work)
  std::ptrdiff_t first_invalid_ = -1;
  std::size_t invalid_count_ = 0;
  std::size_t calls_ = 0;
  MigrationStats totals_;
};

}  // namespace domdec
