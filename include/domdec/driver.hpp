// domdec/driver.hpp — the step loop, owned by the library so migration cannot be forgotten:
// propagate -> boundary rule -> migrate -> conservation check -> observers, with progress
// lines, a LAMMPS-style run summary, and errors on one rank turned into errors on every rank.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <array>
#include <boost/core/demangle.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
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
#include "domdec/migration_stats.hpp"
#include "domdec/run_summary.hpp"

namespace domdec {

/// The user's code — the propagation functor or an observer — threw on some rank. Thrown by
/// Driver::run on every rank, with the lowest failing rank's message (which names the step,
/// the rank, the exception's type and its what()).
class RunError : public Error {
 public:
  using Error::Error;
};

/// How a Driver runs. Every rank must use the same check_every (checked by run()).
struct DriverOptions {
  /// Steps between conservation checks of the global particle count and id checksum. The
  /// check points are also where an exception thrown by the propagation functor on one rank
  /// becomes an error on every rank, and where progress lines are printed; the last step of a
  /// run is always checked. The default, 100, costs about 0.3 % of a step's time
  /// (docs/driver.md: measured with --check-every 1 on the demo); 1 checks every step.
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
}  // namespace detail

/// Runs the step loop of a particle simulation over a migrator — an `Exchanger` (particles go
/// to their new owner: the default) or an `AllgatherExchanger` (the tutorial's approach).
///
/// One step, for s = first .. last:
///   1. propagate: the user's functor moves the local particles (no communication);
///   2. boundary: the Domain's rules put every particle back into the box (periodic wrap,
///      reflection — flipping the velocity when the Driver knows where it is —, removal);
///   3. migrate: every particle goes to the rank owning its new position (collective);
///   4. checks, every `check_every` steps and at the last step (collective): the global count
///      and id checksum must equal those at the start of the run minus what left through open
///      sides; progress line on rank 0;
///   5. observers due at s (the user's output), see observe().
///
/// Errors — every path ends with every rank throwing, no rank left waiting in a collective:
/// - a particle that cannot be placed (NaN, outside the box): `migrate` throws ParticleError
///   on every rank; run() rethrows it on every rank, prefixed with the step.
/// - the propagation functor throws on some ranks: the Driver catches it there, that rank
///   stops propagating and takes part in migrations with no particles until the next check
///   point (at most check_every - 1 steps later), where every rank learns of it and throws
///   RunError with the lowest failing rank's message. Its particle vector is left as the
///   functor left it; other ranks' vectors hold their state at the check point.
/// - an observer throws on some ranks: every rank throws RunError after the observers of that
///   step. An observer that itself makes collective calls must not throw on one rank only
///   before them (the others would wait in that collective); domdec's writers agree on their
///   own errors.
/// - particles lost or duplicated: every rank throws ConservationError naming the step and
///   the counts.
/// - ranks that disagree on the run (steps, check_every, observers): SetupError on every rank.
/// After an exception the Driver can run again; the particles are where the error left them.
///
/// Steady state allocates nothing: the loop reuses the migrator's buffers, the checks reduce
/// fixed arrays, progress lines are formatted into a fixed buffer.
template <class Migrator>
class Driver {
 public:
  using Particle = typename Migrator::Particle;
  static constexpr int dimension = detail::migrator_dimension<Migrator>;
  using Observer = std::function<void(const std::vector<Particle>&, const StepInfo&)>;

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
    pending_error_.clear();
    scratch_.clear();
    printed_progress_ = false;
    const Clock::time_point start = Clock::now();
    run_start_ = start;
    last_progress_ = start;

    // Set-up: every particle to its owner, the reference tally, the initial observers.
    migrate_or_rethrow(particles, first - 1, "placing the particles before the first step");
    removed_ = IdTally{};
    reference_ = reduce_tally(particles, true).first;
    call_observers_due(particles, step_);
    const MigrationStats before = migrator_->totals();
    const Clock::time_point loop_start = Clock::now();
    loop_start_ = loop_start;
    run_.setup_seconds = seconds(start, loop_start);

    for (std::int64_t s = first; s <= last; ++s) {
      const Clock::time_point t0 = Clock::now();
      run_.particle_steps += particles.size();
      if (!failed()) propagate_guarded(particles, s, propagate);
      const Clock::time_point t1 = Clock::now();
      if (!failed()) apply_boundaries_guarded(particles, s);
      const Clock::time_point t2 = Clock::now();
      if (failed()) {
        scratch_.clear();  // this rank stopped: it only relays migrations until the check
        migrate_or_rethrow(scratch_, s, "migrating");
        scratch_.clear();
      } else {
        migrate_or_rethrow(particles, s, "migrating");
      }
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
    std::int64_t failed_at = 0;     // step at which this rank's functor threw (0: none)
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
  bool failed() const noexcept { return !pending_error_.empty(); }
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

  template <class Propagate>
  void propagate_guarded(std::vector<P>& particles, std::int64_t s, Propagate& propagate) {
    try {
      if constexpr (std::is_invocable_v<Propagate&, P&, std::int64_t>) {
        for (P& p : particles) propagate(p, s);
      } else if constexpr (std::is_invocable_v<Propagate&, P&>) {
        for (P& p : particles) propagate(p);
      } else if constexpr (std::is_invocable_v<Propagate&, std::vector<P>&, std::int64_t>) {
        propagate(particles, s);
      } else {
        static_assert(detail::always_false<Propagate>,
                      "domdec: the propagation functor must be callable as f(Particle&, "
                      "std::int64_t step), f(Particle&) or f(std::vector<Particle>&, "
                      "std::int64_t step); write its parameter types instead of auto");
      }
    } catch (const std::exception& e) {
      record_failure(s, "the propagation functor", e);
    } catch (...) {
      record_failure(s, "the propagation functor", nullptr);
    }
  }

  void apply_boundaries_guarded(std::vector<P>& particles, std::int64_t s) {
    try {
      const Domain<dimension>& box = decomposition().domain();
      const Coordinates<P, dimension>& position = migrator_->position();
      if (has_open_axis() && ids_known()) tally_leaving(particles, box, position);
      const BoundaryCounts counts = velocity_
                                        ? box.apply_boundaries(particles, position, *velocity_)
                                        : box.apply_boundaries(particles, position);
      run_.boundary += counts;
      if (!ids_known()) removed_.count += counts.removed;
    } catch (const std::exception& e) {
      record_failure(s, "the boundary rule", e);
    }
  }

  bool has_open_axis() const {
    for (int a = 0; a < dimension; ++a)
      if (decomposition().domain().boundary(a) == Boundary::open) return true;
    return false;
  }

  // The particles about to leave through an open side, tallied before apply_boundaries
  // removes them (the same comparisons it makes), so the checks can account for them.
  void tally_leaving(const std::vector<P>& particles, const Domain<dimension>& box,
                     const Coordinates<P, dimension>& position) {
    for (const P& p : particles) {
      for (int a = 0; a < dimension; ++a) {
        if (box.boundary(a) != Boundary::open) continue;
        const double x = position.get(p, a);
        if (x < box.lower(a) || x > box.upper(a)) {
          removed_.add(id_of(p));
          break;
        }
      }
    }
  }

  void record_failure(std::int64_t s, const char* what, const std::exception* e) {
    if (failed()) return;
    run_.failed_at = s;
    pending_error_ = detail::message(
        "domdec: step ", s, " on rank ", rank(), " of ", size(), ": ", what, " threw ",
        e != nullptr ? boost::core::demangle(typeid(*e).name()) : std::string("an exception"),
        e != nullptr ? ": " : "", e != nullptr ? e->what() : " that is not a std::exception");
  }
  void record_failure(std::int64_t s, const char* what, const std::exception& e) {
    record_failure(s, what, &e);
  }

  void migrate_or_rethrow(std::vector<P>& particles, std::int64_t s, const char* doing) {
    try {
      migrator_->migrate(particles);
    } catch (const ParticleError& e) {
      std::string text = e.what();
      const std::string prefix = "domdec: ";
      if (text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
      throw ParticleError(detail::message("domdec: step ", s, " (", doing, "): ", text));
    }
  }

  // Collective: the global tally (count and, when `with_ids`, checksum), the removed tally,
  // the error flags and the min/max particles per rank, in two allreduces.
  struct Reduced {
    IdTally removed;
    std::uint64_t error_code = 0;
    std::uint64_t max_particles = 0;
    std::uint64_t min_particles = 0;
  };
  std::pair<IdTally, Reduced> reduce_tally(const std::vector<P>& particles, bool with_ids) {
    const std::vector<P>& counted = failed() ? scratch_ : particles;
    IdTally local{counted.size(), 0};
    if (with_ids && ids_known()) {
      if (id_of_) {
        local = tally_ids(counted, id_of_);
      } else if constexpr (has_integral_id_v<P>) {
        local = tally_ids(counted);
      }
    }
    std::array<std::uint64_t, 4> sums{local.count, local.checksum, removed_.count,
                                      removed_.checksum};
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, sums.data(), 4, MPI_UINT64_T, MPI_SUM, comm()),
                      "MPI_Allreduce");
    std::array<std::uint64_t, 3> maxes{failed() ? static_cast<std::uint64_t>(size() - rank()) : 0u,
                                       local.count, ~local.count};
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, maxes.data(), 3, MPI_UINT64_T, MPI_MAX, comm()),
                      "MPI_Allreduce");
    Reduced r;
    r.removed = {sums[2], sums[3]};
    r.error_code = maxes[0];
    r.max_particles = maxes[1];
    r.min_particles = ~maxes[2];
    return {IdTally{sums[0], sums[1]}, r};
  }

  void check(const std::vector<P>& particles, std::int64_t s, bool full) {
    const auto [now, r] = reduce_tally(particles, full);
    if (r.error_code != 0) {
      const int culprit = size() - static_cast<int>(r.error_code);
      std::string text = detail::broadcast_message(comm(), culprit, pending_error_);
      pending_error_.clear();
      throw RunError(text +
                     detail::message(" (every rank stopped at the check after step ", s, ")"));
    }
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

  // Collective when any observer is due: every rank calls the same observers, then agrees on
  // whether any of them threw.
  void call_observers_due(const std::vector<P>& particles, std::int64_t s) {
    if (!observers_due(s)) return;
    std::string problem;
    const StepInfo info{s, run_.first, run_.last, seconds(run_start_, Clock::now())};
    for (std::size_t i = 0; i < observers_.size(); ++i) {
      ObserverEntry& o = observers_[i];
      if (!((s % o.every == 0 || s == run_.last) && o.last_called != s)) continue;
      o.last_called = s;
      if (!problem.empty()) continue;
      try {
        o.call(particles, info);
      } catch (const std::exception& e) {
        problem =
            detail::message("domdec: step ", s, " on rank ", rank(), " of ", size(), ": observer ",
                            i, " threw ", boost::core::demangle(typeid(e).name()), ": ", e.what());
      } catch (...) {
        problem = detail::message("domdec: step ", s, " on rank ", rank(), " of ", size(),
                                  ": observer ", i,
                                  " threw an exception that is not a "
                                  "std::exception");
      }
    }
    const std::string agreed = detail::agree_on_error(comm(), problem);
    if (!agreed.empty()) throw RunError(agreed);
  }

  RunSummary summarize(const std::vector<P>& particles, const MigrationStats& during) {
    RunSummary out;
    out.ranks = size();
    out.first_step = run_.first;
    out.last_step = run_.last;
    out.steps = run_.last - run_.first + 1;
    out.check_every = options_.check_every;
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
  IdTally removed_;  // this rank's particles that left through open sides during the run
  std::string pending_error_;
  std::vector<P> scratch_;  // what a rank whose functor threw migrates with
  Clock::time_point run_start_{};
  Clock::time_point loop_start_{};
  Clock::time_point last_progress_{};
  bool printed_progress_ = false;
};

}  // namespace domdec
