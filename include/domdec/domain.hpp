// domdec/domain.hpp — the global box and what happens at its walls (periodic, reflecting,
// open). Pure geometry: no MPI here, every function is local to the calling rank.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "domdec/coordinates.hpp"
#include "domdec/detail/format.hpp"
#include "domdec/error.hpp"

namespace domdec {

/// The rule applied on one axis when a particle leaves the box along it.
enum class Boundary {
  periodic,    ///< wraps to the other side: the axis is a circle, the box is [lower, upper)
  reflecting,  ///< mirrors at the wall and flips the velocity component: box is [lower, upper]
  open,        ///< the particle is removed and counted: box is [lower, upper]
};

inline const char* to_string(Boundary rule) noexcept {
  switch (rule) {
    case Boundary::periodic:
      return "periodic";
    case Boundary::reflecting:
      return "reflecting";
    case Boundary::open:
      return "open";
  }
  return "unknown";
}

/// What `Domain::apply_boundaries` did on one rank: every particle that was outside the box is
/// in exactly one of these counts (a particle wrapped on one axis and reflected on another
/// counts once in each).
struct BoundaryCounts {
  std::size_t wrapped = 0;    ///< periodic images taken
  std::size_t reflected = 0;  ///< mirrored at a reflecting wall
  std::size_t removed = 0;    ///< left through an open side and removed from the vector

  BoundaryCounts& operator+=(const BoundaryCounts& other) noexcept {
    wrapped += other.wrapped;
    reflected += other.reflected;
    removed += other.removed;
    return *this;
  }
};

/// The global simulation box [lower, upper] in Dim dimensions with one boundary rule per axis.
template <int Dim>
class Domain {
  static_assert(Dim >= 1 && Dim <= 3, "domdec: Dim must be 1, 2 or 3");

 public:
  using Point = std::array<double, Dim>;
  using Rules = std::array<Boundary, Dim>;

  /// A box with the same rule on every axis. Throws SetupError unless lower < upper on every
  /// axis, all corners are finite and so is every length upper - lower.
  Domain(const Point& lower, const Point& upper, Boundary rule)
      : Domain(lower, upper, same_rule(rule)) {}

  /// A box with one rule per axis.
  Domain(const Point& lower, const Point& upper, const Rules& rules)
      : lower_(lower), upper_(upper), rules_(rules) {
    for (int a = 0; a < Dim; ++a) {
      const auto i = static_cast<std::size_t>(a);
      length_[i] = upper_[i] - lower_[i];
      if (!std::isfinite(lower_[i]) || !std::isfinite(upper_[i]) || !(lower_[i] < upper_[i]) ||
          !std::isfinite(length_[i])) {
        throw SetupError(
            detail::message("domdec: Domain needs finite lower < upper on every axis"
                            " and a finite length upper - lower; axis ",
                            a, " has lower = ", lower_[i], ", upper = ", upper_[i]));
      }
    }
  }

  const Point& lower() const noexcept { return lower_; }
  const Point& upper() const noexcept { return upper_; }
  const Rules& boundaries() const noexcept { return rules_; }
  double lower(int axis) const noexcept { return lower_[idx(axis)]; }
  double upper(int axis) const noexcept { return upper_[idx(axis)]; }
  double length(int axis) const noexcept { return length_[idx(axis)]; }
  Boundary boundary(int axis) const noexcept { return rules_[idx(axis)]; }

  /// True when `x` lies in the box along `axis`: [lower, upper) on a periodic axis (upper is
  /// the same point as lower), [lower, upper] otherwise. False for NaN.
  bool contains(double x, int axis) const noexcept {
    return x >= lower(axis) &&
           (boundary(axis) == Boundary::periodic ? x < upper(axis) : x <= upper(axis));
  }
  bool contains(const Point& p) const noexcept {
    for (int a = 0; a < Dim; ++a)
      if (!contains(p[idx(a)], a)) return false;
    return true;
  }

  /// The periodic image of `x` in [lower, upper) along `axis`, for any finite `x`, however
  /// many box lengths away (the result is exact up to the rounding of `x - lower`; beyond
  /// 2^53 box lengths that rounding exceeds a box length, so the image is inside the box but
  /// arbitrary). Non-finite values are returned unchanged.
  double wrap(double x, int axis) const noexcept {
    const double lo = lower(axis), hi = upper(axis), len = length(axis);
    if (x >= lo && x < hi) return x;
    if (!std::isfinite(x)) return x;
    double y = x >= hi ? x - len : x + len;  // one length covers every ordinary step
    if (!(y >= lo && y < hi)) {
      double d = x - lo;
      if (!std::isfinite(d)) d = std::fmod(x, len) - std::fmod(lo, len);  // x - lo overflowed
      y = lo + std::fmod(d, len);
      if (y < lo) y += len;
    }
    // Rounding can land exactly on `hi` (x a hair below lo): that point is lo.
    return y >= lo && y < hi ? y : lo;
  }

  /// Mirrors `x` back into [lower, upper] along `axis`, however far it overshot: a particle
  /// that overshoots by more than a box length is folded back as if it had bounced between
  /// the walls (as exact as wrap, see there). Returns the new coordinate and whether the
  /// velocity component flips (an odd number of bounces). Non-finite values are returned
  /// unchanged, without a flip.
  std::pair<double, bool> reflect(double x, int axis) const noexcept {
    const double lo = lower(axis), hi = upper(axis), len = length(axis);
    if (x >= lo && x <= hi) return {x, false};
    if (!std::isfinite(x)) return {x, false};
    double y = 0.0;
    bool flip = true;
    if (x > hi && x - hi <= len) {
      y = hi - (x - hi);  // the ordinary single bounce (not 2 hi - x: that can overflow)
    } else if (x < lo && lo - x <= len) {
      y = lo + (lo - x);
    } else {
      const double period = 2.0 * len;  // the unfolded circle: there and back again
      double d = x - lo;
      if (!std::isfinite(d)) d = std::fmod(x, period) - std::fmod(lo, period);
      double m = std::fmod(d, period);
      if (m < 0.0) m += period;
      flip = m > len;
      y = flip ? lo + (period - m) : lo + m;
    }
    if (!(y >= lo)) y = lo;  // rounding, or NaN from a box spanning half the doubles
    if (!(y <= hi)) y = hi;
    return {y, flip};
  }

  /// Puts one particle back into the box by the rule of each axis, as apply_boundaries does
  /// for a vector (see there), adding what it did to `counts` (wrapped, reflected; `removed`
  /// is the caller's to count). Returns true when the particle left through an open side: the
  /// caller removes it (this does not touch it). For one-pass loops, e.g. the `update` of
  /// Exchanger::migrate on a box without open sides:
  ///   exchanger.migrate(v, [&](P& p) {
  ///     p.x += p.v * dt;
  ///     box.apply_boundaries_to(p, &P::x, counts);
  ///   });
  template <class P>
  bool apply_boundaries_to(P& p, const CoordinatesOf<P, Dim>& position,
                           BoundaryCounts& counts) const {
    return inside(p, position) ? false : put_back<P>(p, position, nullptr, counts);
  }

  /// As above, and flips the matching component of the velocity on a reflection.
  template <class P>
  bool apply_boundaries_to(P& p, const CoordinatesOf<P, Dim>& position,
                           const CoordinatesOf<P, Dim>& velocity, BoundaryCounts& counts) const {
    return inside(p, position) ? false : put_back<P>(p, position, &velocity, counts);
  }

 private:
  // The test every particle takes: small enough to be inlined into the caller's loop; the rare
  // particle outside goes to put_back, out of line. (With wrap and reflect in the same
  // function, g++ called it for every particle of a one-pass update: a third of the pass.)
  template <class P>
  bool inside(const P& p, const Coordinates<P, Dim>& position) const noexcept {
    for (int a = 0; a < Dim; ++a)
      if (!contains(position.get(p, a), a)) return false;
    return true;
  }

  template <class P>
  [[gnu::noinline]] bool put_back(P& p, const Coordinates<P, Dim>& position,
                                  const Coordinates<P, Dim>* velocity,
                                  BoundaryCounts& counts) const {
    for (int a = 0; a < Dim; ++a) {
      double& x = position.ref(p, a);
      if (contains(x, a)) continue;  // the common case: nothing to do
      // NaN and +-Inf stay as they are, on every kind of axis, for the Exchanger to report:
      // a broken particle is an error, never a silent "wrapped" or "left the box".
      if (!std::isfinite(x)) continue;
      switch (boundary(a)) {
        case Boundary::periodic: {
          const double y = wrap(x, a);
          if (y != x) ++counts.wrapped;
          x = y;
          break;
        }
        case Boundary::reflecting: {
          const auto [y, flip] = reflect(x, a);
          if (y != x) ++counts.reflected;
          x = y;
          if (flip && velocity != nullptr) velocity->ref(p, a) = -velocity->ref(p, a);
          break;
        }
        case Boundary::open:
          return true;  // finite and outside [lower, upper]
      }
    }
    return false;
  }

 public:
  /// Puts every particle back into the box by the rule of each axis: periodic axes wrap,
  /// reflecting axes mirror the position (the velocity is not touched by this overload), open
  /// axes remove the particle. Removal keeps the order of the others. Any overshoot is handled,
  /// however many box lengths (see docs/reliability.md). Particles with a non-finite
  /// coordinate (NaN, +-Inf) are left untouched, on every kind of axis, for
  /// `Exchanger::migrate` to report as an error.
  template <class P, class Alloc>
  BoundaryCounts apply_boundaries(std::vector<P, Alloc>& particles,
                                  const CoordinatesOf<P, Dim>& position) const {
    return apply<P>(particles, position, nullptr);
  }

  /// As above, and flips the matching component of the velocity on every reflection.
  template <class P, class Alloc>
  BoundaryCounts apply_boundaries(std::vector<P, Alloc>& particles,
                                  const CoordinatesOf<P, Dim>& position,
                                  const CoordinatesOf<P, Dim>& velocity) const {
    return apply<P>(particles, position, &velocity);
  }

 private:
  static constexpr std::size_t idx(int axis) noexcept { return static_cast<std::size_t>(axis); }

  static Rules same_rule(Boundary rule) noexcept {
    Rules rules{};
    rules.fill(rule);
    return rules;
  }

  template <class P, class Alloc>
  BoundaryCounts apply(std::vector<P, Alloc>& particles, const Coordinates<P, Dim>& position,
                       const Coordinates<P, Dim>* velocity) const {
    BoundaryCounts counts;
    const std::size_t n = particles.size();
    if (n == 0) return counts;
    P* const data = particles.data();
    // The box test in local copies, one half-open [lower, end) per axis (a closed upper side
    // ends at the next double up), with each coordinate at a fixed byte offset: the stores to
    // the particles cannot alias locals, so the loop keeps them in registers instead of
    // reloading the box and testing the rule and the member's kind for every particle.
    std::array<double, Dim> lower{}, end{};
    std::array<std::ptrdiff_t, Dim> offset{};
    for (int a = 0; a < Dim; ++a) {
      const std::size_t k = idx(a);
      lower[k] = lower_[k];
      end[k] = boundary(a) == Boundary::periodic
                   ? upper_[k]
                   : std::nextafter(upper_[k], std::numeric_limits<double>::infinity());
      offset[k] = position.byte_offset(data[0], a);
    }
    auto in_box = [&lower, &end, &offset](const P& p) {
      bool in = true;
      for (std::size_t k = 0; k < static_cast<std::size_t>(Dim); ++k) {
        const double x = Coordinates<P, Dim>::at(p, offset[k]);
        in = in && x >= lower[k] && x < end[k];  // false for NaN: put_back leaves it alone
      }
      return in;
    };
    // Until the first removal nothing moves: no compaction in this loop.
    std::size_t i = 0;
    for (; i < n; ++i) {
      if (!in_box(data[i]) && put_back<P>(data[i], position, velocity, counts)) break;
    }
    if (i == n) return counts;
    ++counts.removed;
    std::size_t kept = i;
    for (++i; i < n; ++i) {
      P& p = data[i];
      if (!in_box(p) && put_back<P>(p, position, velocity, counts)) {
        ++counts.removed;
        continue;
      }
      data[kept++] = std::move(p);
    }
    particles.erase(particles.begin() + static_cast<std::ptrdiff_t>(kept), particles.end());
    return counts;
  }

  Point lower_;
  Point upper_;
  Point length_{};
  Rules rules_;
};

}  // namespace domdec
