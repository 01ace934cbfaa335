// domdec/run_summary.hpp — what a Driver run cost, reduced over ranks, and its text in the form
// HPC users know from LAMMPS ("Loop time of T on P procs for S steps with N particles", a
// timing table with min / avg / max over ranks and % of total per section).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace domdec {

/// The parts of a step the Driver times separately.
enum class Section : std::size_t {
  propagate,  ///< the user's propagation functor
  boundary,   ///< the Domain's boundary rules
  migrate,    ///< handing particles to their owners (communication)
  checks,     ///< conservation checks, error agreement, progress lines (collective)
  output,     ///< observers (the user's output and diagnostics)
  other,      ///< the rest of the loop time (timers, loop overhead)
};
inline constexpr std::size_t section_count = 6;

/// The name of a section as printed in the timing table.
inline const char* section_name(std::size_t section) noexcept {
  constexpr std::array<const char*, section_count> names{"Propagate", "Boundary", "Migrate",
                                                         "Checks",    "Output",   "Other"};
  return section < section_count ? names[section] : "?";
}

/// A quantity measured on every rank: its minimum, average and maximum over the ranks.
struct OverRanks {
  double min = 0.0;
  double avg = 0.0;
  double max = 0.0;
};

/// What one Driver::run did, the same on every rank (every figure is reduced over ranks).
struct RunSummary {
  int ranks = 1;
  std::int64_t first_step = 1;          ///< first step of the run
  std::int64_t last_step = 0;           ///< last step of the run
  std::int64_t steps = 0;               ///< steps taken: last_step - first_step + 1
  std::uint64_t particles = 0;          ///< particles in the whole system at the end
  std::uint64_t initial_particles = 0;  ///< particles at the start of the run
  std::uint64_t particle_steps = 0;     ///< sum over steps of the particles propagated
  double loop_seconds = 0.0;            ///< wall time of the step loop on the slowest rank
  double setup_seconds = 0.0;  ///< initial migrate, first check and first observers (slowest)
  /// Seconds per Section (indexed by static_cast<std::size_t>(Section::...)), over ranks.
  std::array<OverRanks, section_count> sections{};
  OverRanks loop_seconds_over_ranks;  ///< per-rank loop times (their avg is the % base)
  OverRanks particles_per_rank;       ///< at the end of the run
  /// Point-to-point messages and payload bytes sent by migration during the loop, all ranks
  /// together and the most any one rank sent.
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  double max_rank_messages = 0.0;
  double max_rank_bytes = 0.0;
  /// Collective calls made by migration during the loop, per rank (every rank makes the same).
  std::uint64_t collectives = 0;
  std::uint64_t wrapped = 0;      ///< periodic images taken, all ranks
  std::uint64_t reflected = 0;    ///< reflections at walls, all ranks
  std::uint64_t removed = 0;      ///< particles that left through open sides, all ranks
  std::int64_t checks = 0;        ///< full conservation checks (count and, if ids known, ids)
  std::int64_t count_checks = 0;  ///< count-only checks (at observer steps between full ones)
  std::int64_t check_every = 0;   ///< the check interval in steps
  bool ids_checked = false;       ///< the checks compared an id checksum, not only counts

  double steps_per_second() const noexcept {
    return loop_seconds > 0.0 ? static_cast<double>(steps) / loop_seconds : 0.0;
  }
  double particle_steps_per_second() const noexcept {
    return loop_seconds > 0.0 ? static_cast<double>(particle_steps) / loop_seconds : 0.0;
  }
  /// How much more the busiest rank holds than the average, in percent.
  double imbalance_percent() const noexcept {
    return particles_per_rank.avg > 0.0
               ? 100.0 * (particles_per_rank.max - particles_per_rank.avg) / particles_per_rank.avg
               : 0.0;
  }
  double messages_per_step() const noexcept { return per_step(static_cast<double>(messages)); }
  double bytes_per_step() const noexcept { return per_step(static_cast<double>(bytes)); }

  /// The summary as printed by the Driver on rank 0:
  ///
  ///     Loop time of 1.2 on 2 procs for 1000 steps with 1000000 particles
  ///
  ///     Performance: 833.3 steps/s, 8.333e+08 particle-steps/s (4.167e+08 per proc)
  ///     ...
  ///     Section   |  min time  |  avg time  |  max time  | %total
  ///     ---------------------------------------------------------
  ///     Propagate | ...
  std::string text() const {
    std::string out;
    line(out, "Loop time of %.6g on %d procs for %lld steps with %llu particles\n\n", loop_seconds,
         ranks, static_cast<long long>(steps), static_cast<unsigned long long>(particles));
    line(out, "Performance: %.6g steps/s, %.4g particle-steps/s (%.4g per proc)\n",
         steps_per_second(), particle_steps_per_second(),
         particle_steps_per_second() / (ranks > 0 ? ranks : 1));
    line(out, "Setup (initial migrate, first check and output): %.6g s\n\n", setup_seconds);
    out += "Section   |  min time  |  avg time  |  max time  | %total\n";
    out += "---------------------------------------------------------\n";
    const double base = loop_seconds_over_ranks.avg;
    for (std::size_t s = 0; s < section_count; ++s) {
      const OverRanks& t = sections[s];
      line(out, "%-9s | %-10.4g | %-10.4g | %-10.4g | %6.2f\n", section_name(s), t.min, t.avg,
           t.max, base > 0.0 ? 100.0 * t.avg / base : 0.0);
    }
    line(out, "\nParticles per proc: min %.0f avg %.1f max %.0f (imbalance %.2f %%)\n",
         particles_per_rank.min, particles_per_rank.avg, particles_per_rank.max,
         imbalance_percent());
    line(out,
         "Migration per step: %.4g messages, %s (all procs; busiest proc %.4g messages, %s), "
         "%.3g collectives per proc\n",
         messages_per_step(), human_bytes(bytes_per_step()).c_str(), per_step(max_rank_messages),
         human_bytes(per_step(max_rank_bytes)).c_str(), per_step(static_cast<double>(collectives)));
    line(out, "Boundaries: %llu reflected, %llu wrapped, %llu removed (open sides)\n",
         static_cast<unsigned long long>(reflected), static_cast<unsigned long long>(wrapped),
         static_cast<unsigned long long>(removed));
    if (removed > 0) {
      line(out, "Open sides: %llu of %llu particles left the box, %llu remain\n",
           static_cast<unsigned long long>(removed),
           static_cast<unsigned long long>(initial_particles),
           static_cast<unsigned long long>(particles));
    }
    line(out, "Conservation: %lld check%s of the particle count%s (every %lld steps%s)",
         static_cast<long long>(checks), checks == 1 ? "" : "s",
         ids_checked ? " and id checksum" : "", static_cast<long long>(check_every),
         removed > 0 ? "; expected: the start minus those that left" : "");
    if (count_checks > 0) {
      line(out, " and %lld of the count (at observer steps)", static_cast<long long>(count_checks));
    }
    out += ": all passed\n";
    return out;
  }

 private:
  double per_step(double total) const noexcept {
    return steps > 0 ? total / static_cast<double>(steps) : 0.0;
  }

  template <class... Args>
  static void line(std::string& out, const char* format, Args... args) {
    std::array<char, 512> buffer{};
    const int n = std::snprintf(buffer.data(), buffer.size(), format, args...);
    if (n > 0)
      out.append(buffer.data(), static_cast<std::size_t>(n) < buffer.size()
                                    ? static_cast<std::size_t>(n)
                                    : buffer.size() - 1);
  }

  static std::string human_bytes(double b) {
    const char* units[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000.0 && u < 4) {
      b /= 1000.0;
      ++u;
    }
    std::array<char, 32> buffer{};
    std::snprintf(buffer.data(), buffer.size(), "%.4g %s", b, units[u]);
    return buffer.data();
  }
};

}  // namespace domdec
