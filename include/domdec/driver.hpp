// domdec/driver.hpp — the step loop, owned by the library so migration cannot be forgotten:
// propagate -> boundary rule -> migrate -> conservation check -> observers, with progress
// lines, a LAMMPS-style run summary, and errors on one rank turned into errors on every rank.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <array>
#include <boost/core/demangle.hpp>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "domdec/conservation.hpp"
#include "domdec/coordinates.hpp"
#include "domdec/decomposition.hpp"
#include "domdec/detail/agreement.hpp"
#include "domdec/detail/collective_error.hpp"
#include "domdec/detail/format.hpp"
#include "domdec/detail/mpi_check.hpp"
#include "domdec/domain.hpp"
#include "domdec/error.hpp"
#include "domdec/exchanger.hpp"  // MigrateContext
#include "domdec/migration_stats.hpp"
#include "domdec/run_summary.hpp"

namespace domdec {

/// The user's code — the propagation functor, an observer or the id function — threw on some
/// rank. Thrown by Driver::run on every rank in the same step, with the lowest failing rank's
/// message (which names the step, the rank, the exception's type and its what()).
class RunError : public Error {
 public:
  using Error::Error;
};

/// How a Driver runs. Every rank must use the same check_every (checked by run()).
struct DriverOptions {
  /// Steps between conservation checks of the global particle count and id checksum. The
  /// check points are also where progress lines are printed; the last step of a run is always
  /// checked. (Errors do not wait for a check point: see the class comment.) The default, 100,
  /// costs about 0.3 % of a step's time (docs/driver.md: measured with --check-every 1 on the
  /// demo); 1 checks every step.
  std::int64_t check_every = 100;
  /// Minimum seconds between two progress lines on rank 0 (lines come at check points only).
  /// 0 prints one at every check point.
  double progress_seconds = 1.0;
  /// No progress lines (the summary is still printed when `summary` is set).
  bool quiet = false;
  /// Print the run summary on rank 0 at the end of run().
  bool summary = true;
  /// Where rank 0 writes progress lines and the summary. Other ranks write nothing.
  std::ostream* log = &std::cout;
  /// After each call of a per-particle functor, check that the new position is finite and keep
  /// the old one, so that a NaN or Inf is reported with where the particle was before the step
  /// (see the class comment). Off: the functor runs in a plain loop and a broken particle is
  /// still found by migrate in the same step, only without its old position. The check costs
  /// about 0.3-0.6 ns per particle and step: 1.5-2 times the Propagate time of a functor as
  /// trivial as the demo's `x += v dt` (docs/driver.md: measured); heavier physics hides it.
  bool check_positions = true;
};

/// What an observer is told about the state it is looking at.
struct StepInfo {
  std::int64_t step = 0;         ///< steps taken so far: the particles are in their state after
                                 ///< this step (0: the initial state)
  std::int64_t first_step = 1;   ///< first step of the current run
  std::int64_t last_step = 0;    ///< last step of the current run
  double elapsed_seconds = 0.0;  ///< wall time since the run started, on this rank
};

namespace detail {
template <class D>
struct decomposition_dimension;
template <int Dim>
struct decomposition_dimension<Decomposition<Dim>> : std::integral_constant<int, Dim> {};
template <class M>
inline constexpr int migrator_dimension = decomposition_dimension<
    std::decay_t<decltype(std::declval<const M&>().decomposition())>>::value;
template <class>
inline constexpr bool always_false = false;
template <class M, class = void>
struct takes_migrate_context : std::false_type {};
template <class M>
struct takes_migrate_context<M, std::void_t<decltype(std::declval<M&>().migrate(
                                    std::declval<std::vector<typename M::Particle>&>(),
                                    std::declval<const MigrateContext<typename M::Particle>&>()))>>
    : std::true_type {};
}  // namespace detail

/// Runs the step loop of a particle simulation over a migrator — an `Exchanger` (particles go
/// to their new owner: the default) or an `AllgatherExchanger` (the tutorial's approach); any
/// type with `migrate(std::vector<Particle>&, const MigrateContext<Particle>&)` with their
/// behaviour will do.
///
/// One step, for s = first .. last:
///   1. propagate: the user's functor moves the local particles (no communication); after each
///      call of a per-particle functor the Driver checks that the new position is finite;
///   2. boundary: the Domain's rules put every particle back into the box (periodic wrap,
///      reflection — flipping the velocity when the Driver knows where it is —, removal at
///      open sides, counted);
///   3. migrate: every particle goes to the rank owning its new position (collective);
///   4. checks, every `check_every` steps and at the last step (collective): the global count
///      and id checksum must equal those at the start of the run minus what left through open
///      sides; progress line on rank 0;
///   5. observers due at s (the user's output), see observe().
///
/// Errors — every path ends with every rank throwing the same exception with the same message,
/// in the same step; no rank is left waiting in a collective:
/// - a particle whose position is NaN or infinite after the functor (or outside the box after
///   the boundary rule): `migrate` throws ParticleError on every rank in that step. Its message
///   names the step, the rank, the particle (index and id), its position, what is wrong and
///   that rank's slab; for a per-particle functor the Driver adds where the particle was before
///   the step, where the functor put it and its velocity ("In step 5 the propagation functor
///   moved it from (0.3375) to (nan); its velocity is (0.001)."). For a whole-vector functor
///   the position before the step is not known (the Driver copies nothing). The Driver
///   remembers the first such particle of the step and matches it by id (by index and
///   position when it knows no ids), since removals at open sides shift indices.
/// - the propagation functor (or the boundary rule) throws on some ranks: the Driver catches
///   the exception there and hands it to that step's `migrate` (MigrateContext::failure), which
///   every rank still calls: every rank throws RunError in that step, with the lowest failing
///   rank's message ("... rank 1 of 3 failed before migrate: the propagation functor threw
///   std::runtime_error: boom ..."). Cost: nothing extra — the flag rides in the allreduce
///   (allgather) every migrate makes anyway.
/// - an observer, or the id function given to identify_with(), throws on some ranks: every rank
///   throws RunError right after that observer (each observer call is followed by one
///   allreduce of an int) or that check, naming the step, the rank and the observer. An
///   observer that itself makes collective calls must not throw on one rank *before* them (the
///   others would wait in that collective); domdec's writers agree on their own errors.
/// - particles lost or duplicated: every rank throws ConservationError naming the step and
///   the counts.
/// - ranks that disagree on the run (steps, check_every, observers): SetupError on every rank.
/// - an MPI failure (CommunicationError) or std::bad_alloc happens on one rank only and is not
///   shared: abort the job (docs/reliability.md).
/// After an exception the Driver can run again; step() is the last completed step. The rank
/// whose functor threw keeps its particles as the functor left them; every other rank's
/// vector holds its particles after that step's propagation and boundary rule (nothing was
/// migrated).
///
/// Steady state allocates nothing: the loop reuses the migrator's buffers, the checks reduce
/// fixed arrays, progress lines are formatted into a fixed buffer.
template <class Migrator>
class Driver {
 public:
  using Particle = typename Migrator::Particle;
  static constexpr int dimension = detail::migrator_dimension<Migrator>;
  using Observer = std::function<void(const std::vector<Particle>&, const StepInfo&)>;
  static_assert(detail::takes_migrate_context<Migrator>::value,
                "domdec: the Driver needs a migrator with migrate(std::vector<Particle>&, const "
                "domdec::MigrateContext<Particle>&), as Exchanger and AllgatherExchanger have: it "
                "hands each step's failures to migrate so every rank stops together");

  /// A Driver over `migrator` (which must outlive it). Boundary rules move positions only.
  explicit Driver(Migrator& migrator, DriverOptions options = {})
      : migrator_(&migrator), options_(options) {}

  /// As above; reflections also flip the matching component of `velocity`.
  Driver(Migrator& migrator, Coordinates<Particle, dimension> velocity, DriverOptions options = {})
      : migrator_(&migrator), options_(options), velocity_(velocity) {}

  /// Calls `observer(particles, info)` on every rank with the local particles after every
  /// step that is a multiple of `every` (including the initial state, step 0) and after the
  /// last step of every run. Local registration; every rank must register the same observers
  /// in the same order (run() checks the intervals). Precondition: every >= 1.
  void observe(std::int64_t every, Observer observer) {
    observers_.push_back({every, std::move(observer), -1});
  }

  /// How the conservation check reads a particle's id. By default an integral member `id`
  /// is used when Particle has one; without either, only counts are checked.
  void identify_with(std::function<std::uint64_t(const Particle&)> id_of) {
    id_of_ = std::move(id_of);
  }

  /// Runs `steps` steps (numbered step()+1 .. step()+steps) on `particles`, this rank's
  /// particles. Collective over the decomposition's communicator: every rank calls it with the
  /// same `steps`. The particles may start anywhere in the box: they are first migrated to
  /// their owners (the set-up), then counted for the conservation checks.
  ///
  /// `propagate` is called on this rank's particles, without communication, in one of three
  /// forms (write the parameter types, not `auto`):
  ///   void(Particle& p, std::int64_t step)   — per particle, `step` being the step taken;
  ///   void(Particle& p)                       — per particle;
  ///   void(std::vector<Particle>& particles, std::int64_t step) — the whole vector, which it
  ///       may resize (particles created or removed are then reported by the check).
  /// Returns the run's summary (the same on every rank); prints it on rank 0 unless
  /// options().summary is false. Throws as described in the class comment.
  template <class Propagate>
  RunSummary run(std::vector<Particle>& particles, std::int64_t steps, Propagate&& propagate) {
    const std::int64_t first = step_ + 1;
    const std::int64_t last = step_ + steps;
    agree_on_run(steps);
    run_ = RunState{};
    run_.first = first;
    run_.last = last;
    last_check_ = first - 1;
    last_full_check_ = first - 1;
    printed_progress_ = false;
    per_particle_ = !std::is_invocable_v<Propagate&, std::vector<P>&, std::int64_t>;
    checked_positions_ = options_.check_positions;
    context_.explain = [this](const P& p, std::size_t index) { return explain(p, index); };
    const Clock::time_point start = Clock::now();
    run_start_ = start;
    last_progress_ = start;

    // Set-up: every particle to its owner, the reference tally, the initial observers.
    place(particles, first);
    removed_ = IdTally{};
    reference_ = reduce_tally(particles, true, first - 1).first;
    call_observers_due(particles, step_);
    const MigrationStats before = migrator_->totals();
    const Clock::time_point loop_start = Clock::now();
    loop_start_ = loop_start;
    run_.setup_seconds = seconds(start, loop_start);

    for (std::int64_t s = first; s <= last; ++s) {
      const Clock::time_point t0 = Clock::now();
      run_.particle_steps += particles.size();
      context_.step = s;
      context_.failure = nullptr;
      non_finite_.count = 0;
      propagate_guarded(particles, s, propagate);
      const Clock::time_point t1 = Clock::now();
      // A rank whose functor threw keeps its particles as the functor left them; it still
      // migrates, which is where every rank learns of the failure.
      if (!context_.failure) apply_boundaries_guarded(particles);
      const Clock::time_point t2 = Clock::now();
      migrate_step(particles);
      const Clock::time_point t3 = Clock::now();
      const bool observe_now = observers_due(s);
      const bool full_check = s % options_.check_every == 0 || s == last;
      if (full_check || observe_now) check(particles, s, full_check);
      const Clock::time_point t4 = Clock::now();
      if (observe_now) call_observers_due(particles, s);
      const Clock::time_point t5 = Clock::now();
      step_ = s;
      add(Section::propagate, t0, t1);
      add(Section::boundary, t1, t2);
      add(Section::migrate, t2, t3);
      add(Section::checks, t3, t4);
      add(Section::output, t4, t5);
    }
    const Clock::time_point loop_end = Clock::now();
    run_.loop_seconds = seconds(loop_start, loop_end);
    MigrationStats during = migrator_->totals();
    during.messages_sent -= before.messages_sent;
    during.bytes_sent -= before.bytes_sent;
    during.collectives -= before.collectives;
    const RunSummary summary = summarize(particles, during);
    if (options_.summary && rank() == 0 && options_.log != nullptr) {
      *options_.log << '\n' << summary.text() << std::flush;
    }
    return summary;
  }

  /// Steps taken so far over all runs (the particles are in their state after this step).
  std::int64_t step() const noexcept { return step_; }
  const DriverOptions& options() const noexcept { return options_; }
  DriverOptions& options() noexcept { return options_; }
  Migrator& migrator() noexcept { return *migrator_; }

 private:
  using Clock = std::chrono::steady_clock;
  using P = Particle;

  struct ObserverEntry {
    std::int64_t every;
    Observer call;
    std::int64_t last_called;
  };

  struct RunState {
    std::int64_t first = 1;
    std::int64_t last = 0;
    std::array<double, section_count> section_seconds{};
    double loop_seconds = 0.0;
    double setup_seconds = 0.0;
    std::uint64_t particle_steps = 0;
    BoundaryCounts boundary;
    std::int64_t checks = 0;        // full: count and ids
    std::int64_t count_checks = 0;  // at observer steps between full checks: count only
  };

  static constexpr std::size_t dims = static_cast<std::size_t>(dimension);
  using Vector = std::array<double, dims>;

  // The first particle of this step on this rank whose position the functor made non-finite.
  struct NonFinite {
    std::size_t count = 0;  // how many this step (0: none)
    std::size_t index = 0;  // of the first, in the vector the functor saw
    std::uint64_t id = 0;   // of the first, when ids are known
    bool id_known = false;  // id holds its id
    Vector before{};        // its position before the call
    Vector after{};         // and after
    Vector velocity{};      // its velocity after the call (when the Driver knows where it is)
  };

  static double seconds(Clock::time_point a, Clock::time_point b) noexcept {
    return std::chrono::duration<double>(b - a).count();
  }
  void add(Section s, Clock::time_point a, Clock::time_point b) noexcept {
    run_.section_seconds[static_cast<std::size_t>(s)] += seconds(a, b);
  }

  const Decomposition<dimension>& decomposition() const { return migrator_->decomposition(); }
  MPI_Comm comm() const { return MPI_Comm(decomposition().communicator()); }
  int rank() const { return decomposition().rank(); }
  int size() const { return decomposition().size(); }
  bool ids_known() const noexcept { return static_cast<bool>(id_of_) || has_integral_id_v<P>; }

  std::uint64_t id_of(const P& p) const {
    if (id_of_) return id_of_(p);
    if constexpr (has_integral_id_v<P>) {
      return static_cast<std::uint64_t>(p.id);
    } else {
      return 0;
    }
  }

  // Every rank must run the same steps with the same checks and observers, or the
  // collective calls of the loop would not match.
  void agree_on_run(std::int64_t steps) {
    std::uint64_t intervals = detail::digest<std::int64_t>(nullptr, 0);
    for (const ObserverEntry& o : observers_) intervals = detail::digest(&o.every, 1, intervals);
    const std::array<detail::AgreedField, 6> fields{{
        {"number of steps", static_cast<std::uint64_t>(steps)},
        {"first step", static_cast<std::uint64_t>(step_ + 1)},
        {"check_every", static_cast<std::uint64_t>(options_.check_every)},
        {"number of observers", observers_.size()},
        {"observer intervals", intervals, true},
        {"id checking (0 count only, 1 ids)", ids_known() ? 1u : 0u},
    }};
    // (steps and check_every are agreed on above, so the checks below fail on every rank alike.)
    const std::string mismatch = detail::agreement_problem(comm(), fields, "Driver run", {});
    if (!mismatch.empty()) throw SetupError(mismatch);
    if (steps < 0)
      throw SetupError(detail::message("domdec: Driver::run needs steps >= 0, got ", steps));
    if (options_.check_every < 1) {
      throw SetupError(detail::message(
          "domdec: DriverOptions::check_every must be at least 1, got ", options_.check_every));
    }
    for (std::size_t i = 0; i < observers_.size(); ++i) {
      if (observers_[i].every < 1) {
        throw SetupError(detail::message("domdec: observer ", i, " was registered with every = ",
                                         observers_[i].every, "; it must be at least 1"));
      }
    }
  }

  // "std::runtime_error: boom" (the type and what() of the exception being handled), or a
  // phrase for an exception that is not a std::exception.
  static std::string describe_current_exception() {
    try {
      throw;
    } catch (const std::exception& e) {
      return detail::message(boost::core::demangle(typeid(e).name()), ": ", e.what());
    } catch (...) {
      return "an exception that is not a std::exception";
    }
  }

  // Inside a catch block: hands the exception to this step's migrate, which every rank calls,
  // so every rank stops in this step with its message.
  void hand_on(const char* who) {
    if (context_.failure) return;
    context_.failure = std::make_exception_ptr(
        RunError(detail::message(who, " threw ", describe_current_exception())));
  }

  template <class Propagate>
  void propagate_guarded(std::vector<P>& particles, std::int64_t s, Propagate& propagate) {
    try {
      if constexpr (std::is_invocable_v<Propagate&, P&, std::int64_t>) {
        propagate_each(particles, [&propagate, s](P& p) { propagate(p, s); });
      } else if constexpr (std::is_invocable_v<Propagate&, P&>) {
        propagate_each(particles, [&propagate](P& p) { propagate(p); });
      } else if constexpr (std::is_invocable_v<Propagate&, std::vector<P>&, std::int64_t>) {
        propagate(particles, s);
      } else {
        static_assert(detail::always_false<Propagate>,
                      "domdec: the propagation functor must be callable as f(Particle&, "
                      "std::int64_t step), f(Particle&) or f(std::vector<Particle>&, "
                      "std::int64_t step); write its parameter types instead of auto");
      }
    } catch (...) {
      hand_on("the propagation functor");
    }
  }

  // The functor on every particle; after each call the new position must be finite. The
  // particles go in blocks: while the functor runs over a block, each position before the call
  // goes to a small buffer on the stack (in L1) and the new one is folded into a branch-free
  // flag (the exponent bits: see non_finite_bit); only a block whose flag is set is searched
  // for the broken particle, whose old position is then still in the buffer. The coordinates
  // are read at fixed byte offsets found once per call, so the loop stays as plain as the
  // user's functor (docs/driver.md: what it costs on the demo).
  static constexpr std::size_t block = 256;

  template <class Call>
  void propagate_each(std::vector<P>& particles, Call&& call) {
    const std::size_t n = particles.size();
    if (n == 0) return;
    P* const data = particles.data();
    if (!checked_positions_) {
      for (std::size_t i = 0; i < n; ++i) call(data[i]);
      return;
    }
    std::array<std::ptrdiff_t, dims> offset{};
    for (std::size_t a = 0; a < dims; ++a)
      offset[a] = migrator_->position().byte_offset(data[0], static_cast<int>(a));
    std::array<double, block * dims> before;
    for (std::size_t start = 0; start < n; start += block) {
      P* const b = data + start;
      const std::size_t m = std::min(block, n - start);
      std::uint64_t flags = 0;
      for (std::size_t k = 0; k < m; ++k) {
        for (std::size_t a = 0; a < dims; ++a) before[k * dims + a] = coordinate(b[k], offset[a]);
        call(b[k]);
        for (std::size_t a = 0; a < dims; ++a) flags |= non_finite_bit(coordinate(b[k], offset[a]));
      }
      if ((flags >> 63) == 0) continue;
      for (std::size_t k = 0; k < m; ++k) {
        bool bad = false;
        Vector old{};
        for (std::size_t a = 0; a < dims; ++a) {
          bad = bad || !std::isfinite(coordinate(b[k], offset[a]));
          old[a] = before[k * dims + a];
        }
        if (bad) note_non_finite(b[k], start + k, old);
      }
    }
  }

  static double coordinate(const P& p, std::ptrdiff_t offset) noexcept {
    return Coordinates<P, dimension>::at(p, offset);
  }

  // Bit 63 is set exactly when x is NaN or infinite (all exponent bits set: adding one to the
  // exponent carries into the sign bit), so OR-ing these over many x finds any of them with
  // integer operations that vectorize.
  static std::uint64_t non_finite_bit(double x) noexcept {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &x, sizeof bits);
    return (bits & 0x7ff0000000000000u) + (std::uint64_t{1} << 52);
  }

  void note_non_finite(const P& p, std::size_t index, const Vector& before) {
    if (non_finite_.count++ > 0) return;
    non_finite_.index = index;
    non_finite_.before = before;
    non_finite_.after = migrator_->position().get(p);
    if (velocity_) non_finite_.velocity = velocity_->get(p);
    non_finite_.id_known = false;
    if (ids_known()) {
      try {
        non_finite_.id = id_of(p);
        non_finite_.id_known = true;
      } catch (...) {
        // The id function throws: match by index and position instead.
      }
    }
  }

  static bool same_bits(const Vector& a, const Vector& b) noexcept {
    return std::memcmp(a.data(), b.data(), sizeof(Vector)) == 0;
  }

  // MigrateContext::explain: what the Driver knows about the invalid particle `p`, found by
  // migrate at `index` of this rank's vector. Called on that rank only, before the message is
  // shared; it must not communicate.
  std::string explain(const P& p, std::size_t index) const {
    if (placing_) {
      return detail::message(
          "It is one of the particles given to Driver::run, which must all be "
          "inside the box before step ",
          run_.first, ".");
    }
    const std::int64_t s = context_.step;
    const auto velocity = [this](const Vector& v) {
      return velocity_ ? detail::message("; its velocity is ", v) : std::string();
    };
    if (non_finite_.count == 0) {
      if (per_particle_ && !checked_positions_) {
        return detail::message(
            "(DriverOptions::check_positions is off, so the Driver did not record where it was "
            "before step ",
            s, ".)");
      }
      if (per_particle_) return {};
      return detail::message(
          "The propagation functor takes the whole vector, so the Driver did not record where "
          "this particle was before step ",
          s, velocity_ ? velocity(velocity_->get(p)) : std::string(), ".");
    }
    const NonFinite& f = non_finite_;
    const bool same = f.id_known
                          ? id_of(p) == f.id
                          : index == f.index && same_bits(migrator_->position().get(p), f.after);
    if (same) {
      return detail::message("In step ", s, " the propagation functor moved it from ", f.before,
                             " to ", f.after, velocity(f.velocity), ".");
    }
    return detail::message("In step ", s, " the propagation functor gave ", f.count,
                           f.count == 1 ? " particle" : " particles",
                           " on this rank a non-finite position; the first",
                           f.id_known ? detail::message(" [id ", f.id, "]")
                                      : detail::message(" (index ", f.index, ")"),
                           " moved from ", f.before, " to ", f.after, velocity(f.velocity), ".");
  }

  void apply_boundaries_guarded(std::vector<P>& particles) {
    const Domain<dimension>& box = decomposition().domain();
    const Coordinates<P, dimension>& position = migrator_->position();
    if (has_open_axis() && ids_known()) {
      try {
        tally_leaving(particles, box, position);
      } catch (...) {
        hand_on("the id function (Driver::identify_with)");
        return;
      }
    }
    try {
      const BoundaryCounts counts = velocity_
                                        ? box.apply_boundaries(particles, position, *velocity_)
                                        : box.apply_boundaries(particles, position);
      run_.boundary += counts;
      if (!ids_known()) removed_.count += counts.removed;
    } catch (...) {
      hand_on("the boundary rule");
    }
  }

  bool has_open_axis() const {
    for (int a = 0; a < dimension; ++a)
      if (decomposition().domain().boundary(a) == Boundary::open) return true;
    return false;
  }

  // The particles about to leave through an open side, tallied before apply_boundaries
  // removes them (the same test it makes: finite and outside on an open axis; NaN and Inf stay
  // for migrate to report), so the checks can account for them.
  void tally_leaving(const std::vector<P>& particles, const Domain<dimension>& box,
                     const Coordinates<P, dimension>& position) {
    for (const P& p : particles) {
      for (int a = 0; a < dimension; ++a) {
        if (box.boundary(a) != Boundary::open) continue;
        const double x = position.get(p, a);
        if (std::isfinite(x) && (x < box.lower(a) || x > box.upper(a))) {
          removed_.add(id_of(p));
          break;
        }
      }
    }
  }

  // The set-up migration: the particles as given to run(), to their owners.
  void place(std::vector<P>& particles, std::int64_t first) {
    context_.step = -1;
    context_.failure = nullptr;
    non_finite_.count = 0;
    placing_ = true;
    try {
      migrator_->migrate(particles, context_);
    } catch (const ParticleError& e) {
      placing_ = false;
      std::string text = e.what();
      const std::string prefix = "domdec: ";
      if (text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
      throw ParticleError(
          detail::message("domdec: placing the particles before step ", first, ": ", text));
    } catch (...) {
      placing_ = false;
      throw;
    }
    placing_ = false;
  }

  // The step's migration. Every rank calls it, also the one whose functor threw: the context
  // carries that failure, and migrate throws on every rank — ParticleError for an invalid
  // particle (its message names the step), domdec::Error for a failure, rethrown as RunError.
  void migrate_step(std::vector<P>& particles) {
    try {
      migrator_->migrate(particles, context_);
    } catch (const Error& e) {
      if (typeid(e) != typeid(Error)) throw;
      throw RunError(e.what());
    }
  }

  // Collective: the global tally (count and, when `with_ids`, checksum), the removed tally
  // and the min/max particles per rank, in two allreduces. The id function is user code: if it
  // throws on some rank, every rank throws RunError here.
  struct Reduced {
    IdTally removed;
    std::uint64_t max_particles = 0;
    std::uint64_t min_particles = 0;
  };
  std::pair<IdTally, Reduced> reduce_tally(const std::vector<P>& particles, bool with_ids,
                                           std::int64_t s) {
    IdTally local{particles.size(), 0};
    std::string problem;
    if (with_ids && ids_known()) {
      try {
        if (id_of_) {
          local = tally_ids(particles, id_of_);
        } else if constexpr (has_integral_id_v<P>) {
          local = tally_ids(particles);
        }
      } catch (...) {
        problem = detail::message("domdec: step ", s, " on rank ", rank(), " of ", size(),
                                  ": the id function (Driver::identify_with) threw ",
                                  describe_current_exception());
      }
    }
    std::array<std::uint64_t, 4> sums{local.count, local.checksum, removed_.count,
                                      removed_.checksum};
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, sums.data(), 4, MPI_UINT64_T, MPI_SUM, comm()),
                      "MPI_Allreduce");
    // MAX of (size - rank) picks the lowest failing rank; 0: nobody failed.
    std::array<std::uint64_t, 3> maxes{
        problem.empty() ? 0u : static_cast<std::uint64_t>(size() - rank()), local.count,
        ~local.count};
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, maxes.data(), 3, MPI_UINT64_T, MPI_MAX, comm()),
                      "MPI_Allreduce");
    if (maxes[0] != 0) {
      throw RunError(
          detail::broadcast_text(comm(), size() - static_cast<int>(maxes[0]), std::move(problem)));
    }
    Reduced r;
    r.removed = {sums[2], sums[3]};
    r.max_particles = maxes[1];
    r.min_particles = ~maxes[2];
    return {IdTally{sums[0], sums[1]}, r};
  }

  void check(const std::vector<P>& particles, std::int64_t s, bool full) {
    const auto [now, r] = reduce_tally(particles, full, s);
    ++(full ? run_.checks : run_.count_checks);
    const std::uint64_t expected = reference_.count - r.removed.count;
    const bool count_ok = now.count == expected;
    const bool ids_ok =
        !full || !ids_known() || now.checksum + r.removed.checksum == reference_.checksum;
    if (!count_ok || !ids_ok) throw ConservationError(conservation_message(s, now, r, expected));
    last_check_ = s;
    if (full) last_full_check_ = s;
    progress(s, r, now.count);
  }

  std::string conservation_message(std::int64_t s, const IdTally& now, const Reduced& r,
                                   std::uint64_t expected) const {
    // A wrong count would have been seen at any check, a wrong checksum only at a full one.
    const std::int64_t previous = now.count != expected ? last_check_ : last_full_check_;
    std::string what;
    if (now.count < expected) {
      what = detail::message(expected - now.count, " lost");
    } else if (now.count > expected) {
      what = detail::message(now.count - expected, " too many (duplicated or created)");
    } else {
      what = detail::message(
          "the count is right but the ids are not: the id checksum is ",
          now.checksum + r.removed.checksum, " where ", reference_.checksum,
          " was expected (some particle was lost and another duplicated, or an id changed)");
    }
    return detail::message(
        "domdec: conservation check failed after step ", s, " on ", size(), " ranks: ", now.count,
        " particles where ", expected, " were expected (", reference_.count,
        " at the start of the run",
        r.removed.count > 0
            ? detail::message(" minus ", r.removed.count, " that left through open sides")
            : std::string(),
        "): ", what, ". It happened after the check of step ", previous,
        previous == run_.first - 1 ? " (the start of the run)" : "",
        ". Particles are lost or duplicated by a propagation functor that removes or copies "
        "them, or by a migration bug; the check runs every ",
        options_.check_every, " steps (DriverOptions::check_every = 1 finds the step).");
  }

  void progress(std::int64_t s, const Reduced& r, std::uint64_t particles) {
    if (options_.quiet || rank() != 0 || options_.log == nullptr) return;
    const Clock::time_point now = Clock::now();
    const bool due = seconds(last_progress_, now) >= options_.progress_seconds;
    const bool closing = s == run_.last && printed_progress_;
    if (!due && !closing) return;
    last_progress_ = now;
    printed_progress_ = true;
    const double elapsed = seconds(run_start_, now);
    const double looping = seconds(loop_start_, now);  // the rate excludes the set-up
    const auto done = static_cast<double>(s - run_.first + 1);
    const auto total = static_cast<double>(run_.last - run_.first + 1);
    const double rate = looping > 0.0 ? done / looping : 0.0;
    const double left = rate > 0.0 ? (total - done) / rate : 0.0;
    const double avg = static_cast<double>(particles) / size();
    const double imbalance =
        avg > 0.0 ? 100.0 * (static_cast<double>(r.max_particles) - avg) / avg : 0.0;
    std::array<char, 256> line{};
    const int n = std::snprintf(
        line.data(), line.size(),
        "step %lld/%lld %5.1f%% | elapsed %.4g s | eta %.4g s | %.4g steps/s | particles/proc "
        "min %llu max %llu | imbalance %.2f%%\n",
        static_cast<long long>(s), static_cast<long long>(run_.last),
        total > 0.0 ? 100.0 * done / total : 100.0, elapsed, left, rate,
        static_cast<unsigned long long>(r.min_particles),
        static_cast<unsigned long long>(r.max_particles), imbalance);
    if (n > 0) {
      options_.log->write(line.data(), std::min<std::streamsize>(n, line.size() - 1));
      options_.log->flush();
    }
  }

  bool observers_due(std::int64_t s) const {
    for (const ObserverEntry& o : observers_)
      if ((s % o.every == 0 || s == run_.last) && o.last_called != s) return true;
    return false;
  }

  // Collective when any observer is due: every rank calls the same observers, and after each
  // one agrees on whether it threw anywhere (one allreduce of an int), so a rank whose
  // observer threw never skips a later observer that the others enter (it may communicate).
  void call_observers_due(const std::vector<P>& particles, std::int64_t s) {
    if (!observers_due(s)) return;
    const StepInfo info{s, run_.first, run_.last, seconds(run_start_, Clock::now())};
    for (std::size_t i = 0; i < observers_.size(); ++i) {
      ObserverEntry& o = observers_[i];
      if (!((s % o.every == 0 || s == run_.last) && o.last_called != s)) continue;
      o.last_called = s;
      std::string problem;
      try {
        o.call(particles, info);
      } catch (...) {
        problem = detail::message("domdec: step ", s, " on rank ", rank(), " of ", size(),
                                  ": observer ", i, " threw ", describe_current_exception());
      }
      const std::string agreed = detail::agree_on_error(comm(), problem);
      if (!agreed.empty()) throw RunError(agreed);
    }
  }

  RunSummary summarize(const std::vector<P>& particles, const MigrationStats& during) {
    RunSummary out;
    out.ranks = size();
    out.first_step = run_.first;
    out.last_step = run_.last;
    out.steps = run_.last - run_.first + 1;
    out.check_every = options_.check_every;
    out.initial_particles = reference_.count;
    out.checks = run_.checks;
    out.count_checks = run_.count_checks;
    out.ids_checked = ids_known();

    // Per rank: the sections (with "other" = loop - the rest), loop, set-up, particles,
    // messages, bytes; reduced by min, max and sum.
    constexpr std::size_t nd = section_count + 5;
    std::array<double, nd> mine{};
    double accounted = 0.0;
    for (std::size_t i = 0; i + 1 < section_count; ++i) {
      mine[i] = run_.section_seconds[i];
      accounted += mine[i];
    }
    mine[section_count - 1] = std::max(0.0, run_.loop_seconds - accounted);
    mine[section_count + 0] = run_.loop_seconds;
    mine[section_count + 1] = run_.setup_seconds;
    mine[section_count + 2] = static_cast<double>(particles.size());
    mine[section_count + 3] = static_cast<double>(during.messages_sent);
    mine[section_count + 4] = static_cast<double>(during.bytes_sent);
    std::array<double, nd> lo = mine, hi = mine, sum = mine;
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, lo.data(), nd, MPI_DOUBLE, MPI_MIN, comm()),
                      "MPI_Allreduce");
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, hi.data(), nd, MPI_DOUBLE, MPI_MAX, comm()),
                      "MPI_Allreduce");
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, sum.data(), nd, MPI_DOUBLE, MPI_SUM, comm()),
                      "MPI_Allreduce");
    const double p = static_cast<double>(size());
    for (std::size_t i = 0; i < section_count; ++i) out.sections[i] = {lo[i], sum[i] / p, hi[i]};
    out.loop_seconds_over_ranks = {lo[section_count], sum[section_count] / p, hi[section_count]};
    out.loop_seconds = hi[section_count];
    out.setup_seconds = hi[section_count + 1];
    out.particles_per_rank = {lo[section_count + 2], sum[section_count + 2] / p,
                              hi[section_count + 2]};
    out.max_rank_messages = hi[section_count + 3];
    out.max_rank_bytes = hi[section_count + 4];

    std::array<std::uint64_t, 8> counts{
        particles.size(),      run_.particle_steps,     during.messages_sent,  during.bytes_sent,
        run_.boundary.wrapped, run_.boundary.reflected, run_.boundary.removed, during.collectives};
    // The first 7 are summed; the last (collectives) is the same on every rank: kept local.
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, counts.data(), 7, MPI_UINT64_T, MPI_SUM, comm()),
                      "MPI_Allreduce");
    out.particles = counts[0];
    out.particle_steps = counts[1];
    out.messages = counts[2];
    out.bytes = counts[3];
    out.wrapped = counts[4];
    out.reflected = counts[5];
    out.removed = counts[6];
    out.collectives = counts[7];
    return out;
  }

  Migrator* migrator_;
  DriverOptions options_;
  std::optional<Coordinates<P, dimension>> velocity_;
  std::vector<ObserverEntry> observers_;
  std::function<std::uint64_t(const P&)> id_of_;
  std::int64_t step_ = 0;
  RunState run_;
  std::int64_t last_check_ = 0;       // last check that passed (count)
  std::int64_t last_full_check_ = 0;  // last full check that passed (count and ids)
  IdTally reference_;
  IdTally removed_;            // this rank's particles that left through open sides during the run
  MigrateContext<P> context_;  // handed to every migrate: step, failure, explain
  NonFinite non_finite_;       // this step's first particle made non-finite by the functor
  bool per_particle_ = true;   // the functor of the current run is called per particle
  bool checked_positions_ = true;  // options_.check_positions at the start of the run
  bool placing_ = false;           // in the set-up migration of run()
  Clock::time_point run_start_{};
  Clock::time_point loop_start_{};
  Clock::time_point last_progress_{};
  bool printed_progress_ = false;
};

}  // namespace domdec
