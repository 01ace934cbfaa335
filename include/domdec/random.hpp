// domdec/random.hpp — random numbers that belong to a particle, not to a rank: a counter-based
// stream keyed by (seed, particle id, step), so any rank draws the same numbers for the same
// particle and results do not depend on how the box is decomposed.
//
// Needs Random123 (header-only; Debian: librandom123-dev). domdec.hpp includes this header
// only when Random123 is installed; include it directly to get a clear error when it is not.
#pragma once

#if !__has_include(<Random123/philox.h>)
#error "domdec/random.hpp needs Random123 (Debian/Ubuntu: apt-get install librandom123-dev)"
#endif

#include <Random123/philox.h>

#include <cmath>
#include <cstdint>

namespace domdec {

/// A stream of random numbers that depends only on (seed, particle id, step, purpose).
///
/// Why: a per-rank generator (std::mt19937 seeded with the rank) gives different numbers when
/// the same particle is on a different rank, so results change with the number of ranks.
/// Counter-based generators (Salmon et al., SC'11; HOOMD-blue keys its noise the same way)
/// compute the numbers from a key and a counter, with no state to carry between ranks:
/// create a stream where you need it, draw, throw it away.
///
/// The generator is Philox4x64-10 (Random123): key = (seed, id), counter = (step, purpose,
/// block). `purpose` separates independent uses in the same step (e.g. 0 = initial
/// conditions, 1 = thermal noise). A stream yields up to 2^66 values.
///
/// Cost: one Philox call (about 10 ns) per 4 values of 64 bits; normal() uses two uniforms
/// and caches the second variate of each Box–Muller pair. Construction is free (no state
/// besides the key and counter). Not thread-safe to share; make one per thread or particle.
///
/// Reproducibility: the 64-bit values are exact on every machine. uniform() is exact too
/// (integer to double). normal() calls std::log, std::sqrt, std::cos and std::sin, so its last
/// bit is that of the C library: identical across ranks of one job on identical nodes, not
/// guaranteed across different C libraries.
class RandomStream {
 public:
  /// The stream of particle `id` at `step` for `purpose`, under `seed`.
  RandomStream(std::uint64_t seed, std::uint64_t id, std::uint64_t step,
               std::uint64_t purpose = 0) noexcept
      : key_{{seed, id}}, counter_{{step, purpose, 0, 0}} {}

  /// 64 uniformly distributed random bits.
  std::uint64_t bits() noexcept {
    if (used_ == 4) refill();
    return block_[used_++];
  }

  /// Uniform in [0, 1), with 53 random bits (every double of the form k / 2^53).
  double uniform() noexcept { return static_cast<double>(bits() >> 11) * 0x1.0p-53; }

  /// Uniform in [lower, upper).
  double uniform(double lower, double upper) noexcept {
    return lower + (upper - lower) * uniform();
  }

  /// Standard normal (mean 0, standard deviation 1), by the Box–Muller transform.
  double normal() noexcept {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double theta = 2.0 * 3.141592653589793238462643383279502884 * u2;
    spare_ = r * std::sin(theta);
    has_spare_ = true;
    return r * std::cos(theta);
  }

  /// Normal with the given mean and standard deviation.
  double normal(double mean, double standard_deviation) noexcept {
    return mean + standard_deviation * normal();
  }

 private:
  using Generator = r123::Philox4x64;

  void refill() noexcept {
    const Generator::ctr_type out = Generator()(counter_, key_);
    for (unsigned i = 0; i < 4; ++i) block_[i] = out[i];
    ++counter_[2];
    used_ = 0;
  }

  Generator::key_type key_;
  Generator::ctr_type counter_;
  std::uint64_t block_[4] = {0, 0, 0, 0};
  unsigned used_ = 4;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace domdec
