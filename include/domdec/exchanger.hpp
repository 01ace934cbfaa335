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
}  // namespace detail

/// Moves particles of type P between the ranks of a Decomposition<Dim>.
///
/// The protocol of one `migrate` (see docs/design.md):
/// 1. every rank scans its particles for the ones outside its slab (no communication);
/// 2. one allreduce of three integers tells every rank whether any particle anywhere went
///    further than a neighbouring slab, whether any rank found an invalid particle (then
///    every rank throws ParticleError with the culprit's message; nothing was moved), and
///    whether any rank reported a failure of its own (MigrateContext::failure: then every
///    rank throws Error with that rank's message);
/// 3. local motion: each rank sends one stream to each neighbouring rank (possibly an empty
///    message) and receives one from each; far motion: an alltoall of flags finds who sends to
///    whom, then streams go straight to their owners. Either way every particle is delivered
///    in this call, however far it went;
/// 4. arrivals are appended in ascending order of source rank, each in its sender's order.
///
/// Steady state allocates nothing: buckets and request lists keep their capacity, arrivals are
/// received straight into the particle vector (which grows only past its capacity).
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
    const std::array<detail::AgreedField, 6> fields{{
        {"particle size in bytes", sizeof(P)},
        {"particle type", detail::digest(name.data(), name.size()), true},
        {"transport (0 typed, 1 serialized)", std::is_same_v<Transport, Typed> ? 0u : 1u},
        {"MPI datatype extent", channel_.extent()},
        {"max_message_bytes", static_cast<std::uint64_t>(options.max_message_bytes)},
        {"dimension", static_cast<std::uint64_t>(Dim)},
    }};
    const std::string problem =
        detail::agreement_problem(comm(), fields, "Exchanger", local_problem);
    if (!problem.empty()) throw SetupError(problem);
    sends_to_.resize(buckets_.size());
    receives_from_.resize(buckets_.size());
  }

  /// Moves every particle of `particles` that is outside this rank's slab to its owner and
  /// appends the particles that arrive. Collective: every rank of the decomposition must call
  /// it, the same number of times. Precondition: every position is inside the box on every
  /// axis (apply Domain::apply_boundaries first). Otherwise — a NaN, an infinity, a position
  /// outside — every rank throws ParticleError naming the migrate call, the rank, the
  /// particle (index and id), its position, the box and this rank's slab, and `particles` is
  /// left unchanged on every rank. `context` adds the step number and the caller's own
  /// explanation to that message, and carries a failure of this rank to every rank (see
  /// MigrateContext). Returns this call's statistics (also added to totals()).
  MigrationStats migrate(std::vector<P>& particles) { return migrate(particles, no_context_); }

  /// As above, with what the caller knows about the step (see MigrateContext).
  MigrationStats migrate(std::vector<P>& particles, const MigrateContext<P>& context) {
    ++calls_;
    MigrationStats stats;
    stats.calls = 1;
    const MPI_Comm c = comm();
    const Decomposition<Dim>& d = *decomposition_;

    // 1. Who leaves, and to whom (read-only, so an error leaves `particles` untouched).
    const bool far = find_leavers(particles);

    // 2. One allreduce: anyone far? anyone invalid? anyone failed? The last two are encoded
    // as size - rank so the lowest such rank wins.
    const int code = d.size() - d.rank();
    std::array<int, 3> flags{far ? 1 : 0, first_invalid_ >= 0 ? code : 0,
                             context.failure ? code : 0};
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, flags.data(), 3, MPI_INT, MPI_MAX, c),
                      "MPI_Allreduce");
    ++stats.collectives;
    if (flags[2] > 0) raise_failure(d.size() - flags[2], context);
    if (flags[1] > 0) raise_particle_error(d.size() - flags[1], particles, context);

    // 3. Pack leavers into their owner's bucket and close the holes they left.
    for (const Leaver& l : leavers_) Chan::put(bucket(l.owner), particles[l.index]);
    remove_leavers(particles);

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
  struct Leaver {
    std::size_t index;
    int owner;
  };

  MPI_Comm comm() const { return MPI_Comm(decomposition_->communicator()); }
  typename Chan::Bucket& bucket(int rank) { return buckets_[static_cast<std::size_t>(rank)]; }

  // Fills leavers_ (ascending index), records the first invalid particle; returns whether any
  // leaver goes further than a neighbour.
  bool find_leavers(const std::vector<P>& particles) {
    const Decomposition<Dim>& d = *decomposition_;
    const int axis = d.axis();
    const Interval slab = d.local_bounds();
    // [lower, upper) test for the fast path; a closed upper side becomes the next double up.
    const double lower = slab.lower;
    const double upper =
        slab.includes_upper ? std::nextafter(slab.upper, std::numeric_limits<double>::infinity())
                            : slab.upper;
    const int below = d.lower_neighbour().value_or(-1);
    const int above = d.upper_neighbour().value_or(-1);
    const int me = d.rank();
    leavers_.clear();
    first_invalid_ = -1;
    invalid_count_ = 0;
    bool far = false;
    const std::size_t n = particles.size();
    for (std::size_t i = 0; i < n; ++i) {
      const double x = position_.get(particles[i], axis);
      const bool across = inside_across(particles[i], axis);
      if (x >= lower && x < upper && across) continue;  // stays: the common case
      const int owner = across ? d.owner_or_negative(x) : -1;
      if (owner < 0) {
        if (first_invalid_ < 0) first_invalid_ = static_cast<std::ptrdiff_t>(i);
        ++invalid_count_;
        continue;
      }
      if (owner == me) continue;  // cannot happen with consistent cuts; never drop it
      far = far || (owner != below && owner != above);
      leavers_.push_back({i, owner});
    }
    return far;
  }

  // True when every coordinate other than the decomposition axis is inside the box (a NaN
  // there would otherwise stay on this rank unnoticed). Free for Dim == 1.
  bool inside_across(const P& p, int axis) const noexcept {
    if constexpr (Dim == 1) {
      (void)p;
      (void)axis;
      return true;
    } else {
      const Domain<Dim>& box = decomposition_->domain();
      for (int a = 0; a < Dim; ++a)
        if (a != axis && !box.contains(position_.get(p, a), a)) return false;
      return true;
    }
  }

  // Fills each hole with the last remaining particle: O(leavers) moves instead of O(n), and the
  // resulting order is still a deterministic function of the input.
  void remove_leavers(std::vector<P>& particles) {
    const std::size_t n = particles.size();
    const std::size_t gone = leavers_.size();
    if (gone == 0) return;
    std::size_t back = n;    // particles[back..n) are done with
    std::size_t tail = gone; // leavers_[tail..gone) lie in [back, n)
    for (std::size_t k = 0; k < gone; ++k) {
      const std::size_t hole = leavers_[k].index;
      while (back > 0 && tail > 0 && leavers_[tail - 1].index == back - 1) {
        --tail;  // the last particle left too: skip it
        --back;
      }
      if (back == 0 || back - 1 <= hole) break;  // every remaining hole is past the survivors
      particles[hole] = std::move(particles[back - 1]);
      --back;
    }
    particles.erase(particles.end() - static_cast<std::ptrdiff_t>(gone), particles.end());
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
  [[noreturn]] void raise_particle_error(int culprit, const std::vector<P>& particles,
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

  // Every rank calls this after the allreduce reported that `culprit` failed before migrate.
  [[noreturn]] void raise_failure(int culprit, const MigrateContext<P>& context) {
    const Decomposition<Dim>& d = *decomposition_;
    std::string text;
    if (d.rank() == culprit) {
      std::string what;
      try {
        std::rethrow_exception(context.failure);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        what = "an exception that is not a std::exception";
      }
      text = detail::message("domdec: ", call_name(context), ": rank ", culprit, " of ", d.size(),
                             " failed before migrate: ", what,
                             " (every rank stops here; nothing was moved)");
    }
    throw Error(detail::broadcast_text(comm(), culprit, std::move(text)));
  }

  const Decomposition<Dim>* decomposition_;
  Coordinates<P, Dim> position_;
  ExchangerOptions options_;
  Chan channel_;
  std::vector<typename Chan::Bucket> buckets_;  // one per destination rank
  std::vector<Leaver> leavers_;
  std::vector<int> send_peers_;
  std::vector<int> receive_peers_;
  std::vector<int> sends_to_;
  std::vector<int> receives_from_;
  std::vector<MPI_Request> requests_;
  std::function<std::string(const P&)> describe_;
  MigrateContext<P> no_context_;
  std::ptrdiff_t first_invalid_ = -1;
  std::size_t invalid_count_ = 0;
  std::size_t calls_ = 0;
  MigrationStats totals_;
};

}  // namespace domdec
