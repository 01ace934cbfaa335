// domdec/allgather_exchanger.hpp — the tutorial's migration strategy as a real alternative to
// the Exchanger: after every step every rank receives every particle and keeps the ones in its
// slab. Simple and always correct, but its cost grows with the whole system on every rank;
// it is here so the two strategies can be compared on the same run (`--strategy allgather`).
#pragma once

#include <mpi.h>

#include <array>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "domdec/conservation.hpp"
#include "domdec/coordinates.hpp"
#include "domdec/decomposition.hpp"
#include "domdec/detail/agreement.hpp"
#include "domdec/detail/byte_archive.hpp"
#include "domdec/detail/byte_buffer.hpp"
#include "domdec/detail/format.hpp"
#include "domdec/detail/mpi_check.hpp"
#include "domdec/error.hpp"
#include "domdec/exchanger.hpp"  // MigrateContext
#include "domdec/migration_stats.hpp"
#include "domdec/transport.hpp"

namespace domdec {

/// Moves particles of type P between the ranks of a Decomposition<Dim> the way the mpi4py
/// tutorial does: every rank gathers all particles of all ranks (MPI_Allgatherv) and keeps the
/// ones inside its slab. Same interface and result as `Exchanger` (the same particle set on
/// every rank after `migrate`; the order within a rank differs), so the Driver and the
/// benchmarks can use either.
///
/// Cost per call: two collectives (an allgather of three words per rank — count, bytes and the
/// caller's failure flag —, then the allgatherv of every particle), N particles received and
/// scanned by every rank, memory for N particles on every rank. The Exchanger's cost is
/// proportional to what crosses a slab boundary instead.
///
/// MigrationStats count the logical traffic: every rank sends its n particles to each of the
/// P-1 others (messages_sent = P-1, particles_sent = n (P-1), bytes likewise) and receives the
/// other ranks' particles (messages_received = P-1); `collectives` = 2 per call. How the MPI
/// library routes an allgather internally (rings, recursive doubling) is not counted.
///
/// Limits: MPI counts are ints, so one call moves at most 2^31 - 1 particles in total (typed)
/// or 2 GiB of serialized bytes in total; beyond that every rank throws CommunicationError.
template <class P, int Dim = 1, class Transport = default_transport_t<P>>
class AllgatherExchanger : private TransportRequirements<P, Transport> {
 public:
  using Particle = P;
  using TransportTag = Transport;

  /// Collective over the decomposition's communicator, like Exchanger's constructor: throws
  /// SetupError on every rank when ranks disagree on the particle size or transport, or when
  /// P's MPI datatype does not match its layout (typed). `decomposition` must outlive this.
  AllgatherExchanger(const Decomposition<Dim>& decomposition, Coordinates<P, Dim> position)
      : decomposition_(&decomposition), position_(position) {
    const detail::Channel<P, Transport> channel(std::size_t{1} << 30);
    const std::string layout = channel.layout_problem();
    const std::string name = type_name<P>();
    const std::array<detail::AgreedField, 5> fields{{
        {"particle size in bytes", sizeof(P)},
        {"particle type", detail::digest(name.data(), name.size()), true},
        {"transport (0 typed, 1 serialized)", std::is_same_v<Transport, Typed> ? 0u : 1u},
        {"dimension", static_cast<std::uint64_t>(Dim)},
        {"validity of the particle datatype", layout.empty() ? 0u : 1u},
    }};
    const std::string problem =
        detail::agreement_problem(comm(), fields, "AllgatherExchanger", layout);
    if (!problem.empty()) throw SetupError(problem);
    if constexpr (std::is_same_v<Transport, Typed>)
      datatype_ = boost::mpi::get_mpi_datatype<P>(P());
    const auto size = static_cast<std::size_t>(decomposition.size());
    sizes_.resize(words * size);
    counts_.resize(size);
    displacements_.resize(size);
  }

  /// Every rank receives every particle and keeps those in its slab; `particles` is replaced
  /// by them (in ascending order of source rank, each in its sender's order). Collective:
  /// every rank must call it, the same number of times. Precondition, as for Exchanger: every
  /// position is inside the box on every axis; otherwise every rank throws the same
  /// ParticleError naming the rank, the particle, its position and that rank's slab, and
  /// `particles` is left unchanged. Steady state allocates nothing (the buffers keep their
  /// capacity; `particles` grows only past its capacity).
  MigrationStats migrate(std::vector<P>& particles) { return migrate(particles, no_context_); }

  /// As above, with what the caller knows about the step — the same MigrateContext as
  /// Exchanger::migrate, with the same behaviour: `step` is named in errors, `explain` adds the
  /// caller's text to an invalid particle's message (called on that particle's rank only), and
  /// a `failure` on some rank makes every rank throw domdec::Error with the lowest failing
  /// rank's message, before anything is moved. The failure flag rides in the first allgather.
  MigrationStats migrate(std::vector<P>& particles, const MigrateContext<P>& context) {
    ++calls_;
    const MPI_Comm c = comm();
    const int size = decomposition_->size();
    MigrationStats stats;
    stats.calls = 1;

    // 1. Everyone's particle count, payload size and failure flag.
    std::size_t my_bytes = 0;
    if constexpr (std::is_same_v<Transport, Typed>) {
      my_bytes = particles.size() * sizeof(P);
    } else {
      outgoing_.clear();
      detail::ByteWriter writer(outgoing_);
      for (const P& p : particles) writer << p;
      my_bytes = outgoing_.size();
    }
    const std::array<std::uint64_t, words> mine{particles.size(), my_bytes,
                                                context.failure ? 1u : 0u};
    detail::mpi_check(
        MPI_Allgather(mine.data(), words, MPI_UINT64_T, sizes_.data(), words, MPI_UINT64_T, c),
        "MPI_Allgather");
    for (int r = 0; r < size; ++r)
      if (sizes_[words * static_cast<std::size_t>(r) + 2] != 0) raise_failure(r, context);
    std::uint64_t total = 0, total_bytes = 0;
    for (int r = 0; r < size; ++r) {
      total += count_of(r);
      total_bytes += sizes_[words * static_cast<std::size_t>(r) + 1];
    }
    const std::uint64_t units = std::is_same_v<Transport, Typed> ? total : total_bytes;
    if (units > static_cast<std::uint64_t>(INT_MAX)) {
      throw CommunicationError(
          detail::message("domdec: the allgather strategy cannot move ", total, " particles (",
                          total_bytes, " bytes) in one call: MPI counts are limited to 2^31 - 1 ",
                          std::is_same_v<Transport, Typed> ? "particles" : "bytes",
                          ". Use the Exchanger (the exchange strategy), whose traffic is what "
                          "crosses a boundary."));
    }
    int offset = 0;
    for (int r = 0; r < size; ++r) {
      const auto i = static_cast<std::size_t>(r);
      counts_[i] = static_cast<int>(std::is_same_v<Transport, Typed> ? sizes_[words * i]
                                                                     : sizes_[words * i + 1]);
      displacements_[i] = offset;
      offset += counts_[i];
    }

    // 2. Every particle to every rank.
    const auto n_total = static_cast<std::size_t>(total);
    if (all_.size() < n_total) all_.resize(n_total);  // never shrinks: no re-initialisation
    if constexpr (std::is_same_v<Transport, Typed>) {
      detail::mpi_check(
          MPI_Allgatherv(particles.data(), static_cast<int>(particles.size()), datatype_,
                         all_.data(), counts_.data(), displacements_.data(), datatype_, c),
          "MPI_Allgatherv");
    } else {
      incoming_.resize_uninitialized(static_cast<std::size_t>(total_bytes));
      detail::mpi_check(
          MPI_Allgatherv(outgoing_.data(), static_cast<int>(my_bytes), MPI_BYTE, incoming_.data(),
                         counts_.data(), displacements_.data(), MPI_BYTE, c),
          "MPI_Allgatherv");
      detail::ByteReader reader(incoming_.data(), incoming_.data() + incoming_.size());
      for (std::size_t i = 0; i < n_total; ++i) reader >> all_[i];
    }
    stats.collectives += 2;

    // 3. Keep what is mine. Every rank scans the same array with the same tests, so every
    // rank finds the same first invalid particle (on any axis) and throws the same error
    // before touching `particles`.
    const Interval slab = decomposition_->local_bounds();
    const int axis = decomposition_->axis();
    std::size_t kept = 0;
    for (std::size_t i = 0; i < n_total; ++i) {
      const double x = position_.get(all_[i], axis);
      const bool across = inside_across(all_[i], axis);
      if (slab.contains(x) && across) {
        if (kept != i) all_[kept] = all_[i];
        ++kept;
      } else if (!across || !decomposition_->domain().contains(x, axis)) {
        raise_particle_error(i, total, particles, context);
      }
    }
    particles.assign(all_.begin(), all_.begin() + static_cast<std::ptrdiff_t>(kept));

    const auto others = static_cast<std::size_t>(size - 1);
    const auto n_mine = static_cast<std::size_t>(mine[0]);
    stats.messages_sent = others;
    stats.messages_received = others;
    stats.particles_sent = n_mine * others;
    stats.particles_received = n_total - n_mine;
    stats.bytes_sent = my_bytes * others;
    stats.bytes_received = static_cast<std::size_t>(total_bytes) - my_bytes;
    totals_ += stats;
    return stats;
  }

  /// Sum of the statistics of every migrate call so far on this rank.
  const MigrationStats& totals() const noexcept { return totals_; }
  const Decomposition<Dim>& decomposition() const noexcept { return *decomposition_; }
  const Coordinates<P, Dim>& position() const noexcept { return position_; }

  /// How error messages name a particle (default: its integral member `id`, when it has one).
  void describe_particles_with(std::function<std::string(const P&)> describe) {
    describe_ = std::move(describe);
  }

 private:
  static constexpr std::size_t words = 3;  // per rank in sizes_: count, bytes, failed

  MPI_Comm comm() const { return MPI_Comm(decomposition_->communicator()); }
  std::size_t count_of(int rank) const {
    return static_cast<std::size_t>(sizes_[words * static_cast<std::size_t>(rank)]);
  }

  // True when every coordinate other than the decomposition axis is inside the box (a NaN
  // there would otherwise be kept unnoticed). Free for Dim == 1.
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

  // "step 5, allgather migrate call 6" or "allgather migrate call 6".
  std::string call_name(const MigrateContext<P>& context) const {
    return context.step >= 0
               ? detail::message("step ", context.step, ", allgather migrate call ", calls_)
               : detail::message("allgather migrate call ", calls_);
  }

  // Every rank calls this when the first allgather reported that `culprit` (the lowest such
  // rank) failed before migrate: its message is broadcast so every rank throws the same.
  [[noreturn]] void raise_failure(int culprit, const MigrateContext<P>& context) const {
    std::string text;
    if (decomposition_->rank() == culprit) {
      std::string what;
      try {
        std::rethrow_exception(context.failure);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        what = "an exception that is not a std::exception";
      }
      text = detail::message("domdec: ", call_name(context), ": rank ", culprit, " of ",
                             decomposition_->size(), " failed before migrate: ", what,
                             " (every rank stops here; nothing was moved)");
    }
    throw Error(detail::broadcast_text(comm(), culprit, std::move(text)));
  }

  // Every rank calls this with the same `global_index` (every rank scanned the same array).
  // The particle's own rank adds the caller's explanation, which is then shared.
  [[noreturn]] void raise_particle_error(std::size_t global_index, std::uint64_t total,
                                         const std::vector<P>& particles,
                                         const MigrateContext<P>& context) const {
    // Which rank sent it, and where it is in that rank's vector.
    int source = 0;
    while (source + 1 < decomposition_->size() &&
           global_index >= count_of(source) + first_index(source))
      ++source;
    const std::size_t local = global_index - first_index(source);
    const P& p = all_[global_index];
    const Domain<Dim>& box = decomposition_->domain();
    std::string name;
    try {
      if (describe_) {
        name = " [" + describe_(p) + "]";
      } else if constexpr (has_integral_id_v<P>) {
        name = detail::message(" [id ", p.id, "]");
      }
    } catch (const std::exception& e) {
      name = std::string(" [describe_particles_with threw: ") + e.what() + "]";
    } catch (...) {
      name = " [describe_particles_with threw]";
    }
    // The first axis that is wrong, the decomposition axis checked first (as Exchanger does).
    int bad = decomposition_->axis();
    for (int a = 0; a < Dim && box.contains(position_.get(p, bad), bad); ++a)
      if (!box.contains(position_.get(p, a), a)) bad = a;
    const double x = position_.get(p, bad);
    const std::string wrong =
        std::isfinite(x)
            ? detail::message("its coordinate along axis ", bad, ", ", x, ", is outside the box [",
                              box.lower(bad), ", ", box.upper(bad),
                              box.boundary(bad) == Boundary::periodic ? ")" : "]", " (",
                              to_string(box.boundary(bad)), ")")
            : detail::message("its coordinate along axis ", bad, ", ", x,
                              ", is not a finite number");
    std::string extra;
    if (decomposition_->rank() == source && context.explain) {
      try {
        extra = context.explain(particles[local], local);
      } catch (const std::exception& e) {
        extra = std::string("(MigrateContext::explain threw: ") + e.what() + ")";
      } catch (...) {
        extra = "(MigrateContext::explain threw)";
      }
    }
    extra = detail::broadcast_text(comm(), source, std::move(extra));
    const Interval slab = decomposition_->bounds_of(source);
    throw ParticleError(detail::message(
        "domdec: ", call_name(context), ": particle ", local, " of ", count_of(source), " on rank ",
        source, " of ", decomposition_->size(), name, " is at ", position_.get(p), "; ", wrong,
        ". Rank ", source, "'s slab is [", slab.lower, ", ", slab.upper,
        slab.includes_upper ? "]" : ")", " along axis ", decomposition_->axis(), "; ", total,
        " particles in total.", extra.empty() ? std::string() : " " + extra,
        " A non-finite position means the propagation produced NaN or Inf;"
        " otherwise apply Domain::apply_boundaries before migrate. Nothing was moved."));
  }

  std::size_t first_index(int rank) const {
    std::size_t first = 0;
    for (int r = 0; r < rank; ++r) first += count_of(r);
    return first;
  }

  const Decomposition<Dim>* decomposition_;
  Coordinates<P, Dim> position_;
  MPI_Datatype datatype_ = MPI_DATATYPE_NULL;
  std::vector<std::uint64_t> sizes_;  // per rank: particle count, payload bytes, failed
  std::vector<int> counts_;           // per rank, in MPI units (particles or bytes)
  std::vector<int> displacements_;
  std::vector<P> all_;           // every particle of every rank (never shrinks)
  detail::ByteBuffer outgoing_;  // serialized: this rank's particles
  detail::ByteBuffer incoming_;  // serialized: everyone's
  std::function<std::string(const P&)> describe_;
  MigrateContext<P> no_context_;
  std::size_t calls_ = 0;
  MigrationStats totals_;
};

}  // namespace domdec
