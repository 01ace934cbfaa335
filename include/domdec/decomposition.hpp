// domdec/decomposition.hpp — who owns what: the box cut into slabs along one axis, one slab per
// rank, with cut positions that may move (load balancing). Holds the library's own duplicate
// of the user's communicator, so library messages never match the user's.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <array>
#include <boost/mpi/communicator.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "domdec/detail/agreement.hpp"
#include "domdec/detail/format.hpp"
#include "domdec/domain.hpp"
#include "domdec/error.hpp"

namespace domdec {

/// A slab's extent along the decomposition axis: [lower, upper), or [lower, upper] for the last
/// slab of a non-periodic axis (it owns the upper wall).
struct Interval {
  double lower;
  double upper;
  bool includes_upper;

  bool contains(double x) const noexcept {
    return x >= lower && (x < upper || (includes_upper && x == upper));
  }
  double width() const noexcept { return upper - lower; }
};

/// The box cut into `size()` slabs along `axis()`, slab r owned by rank r of the communicator.
/// Cuts are `size() + 1` non-decreasing positions from the box's lower to its upper side; slab
/// r is [cuts[r], cuts[r+1]). A position exactly on a cut belongs to the slab above it (the
/// higher rank); the upper wall of a non-periodic axis belongs to the last rank. Equal cuts
/// give a rank an empty slab, which is allowed (it owns nothing).
template <int Dim>
class Decomposition {
 public:
  using Point = typename Domain<Dim>::Point;

  /// Equal slabs along `axis`, one per rank of `comm`. Collective: every rank of `comm` must
  /// call it with the same box and axis; otherwise every rank throws SetupError. Duplicates
  /// `comm` (MPI_Comm_dup).
  Decomposition(const boost::mpi::communicator& comm, const Domain<Dim>& domain, int axis = 0)
      : Decomposition(comm, domain, equal_cuts(domain, axis, comm.size()), axis) {}

  /// Slabs with the given `cuts` (comm.size() + 1 values, non-decreasing, first = the box's
  /// lower side, last = its upper side). Collective, as above.
  Decomposition(const boost::mpi::communicator& comm, const Domain<Dim>& domain,
                std::vector<double> cuts, int axis = 0)
      : comm_(comm, boost::mpi::comm_duplicate), domain_(domain), axis_(axis) {
    install_cuts(std::move(cuts));
  }

  /// The library's duplicate of the user's communicator. Every domdec message travels on it.
  const boost::mpi::communicator& communicator() const noexcept { return comm_; }
  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  const Domain<Dim>& domain() const noexcept { return domain_; }
  int axis() const noexcept { return axis_; }
  const std::vector<double>& cuts() const noexcept { return cuts_; }
  /// True while the cuts are the equal ones (ownership is then O(1) arithmetic).
  bool uniform() const noexcept { return uniform_; }

  /// This rank's slab along the decomposition axis.
  Interval local_bounds() const noexcept { return bounds_of(rank_); }

  /// Rank r's slab along the decomposition axis. Precondition: 0 <= r < size().
  Interval bounds_of(int r) const noexcept {
    const auto i = static_cast<std::size_t>(r);
    const bool last = r == size_ - 1;
    return {cuts_[i], cuts_[i + 1], last && domain_.boundary(axis_) != Boundary::periodic};
  }

  /// The rank that owns coordinate `x` along the decomposition axis. Throws ParticleError when
  /// `x` is not in the box (NaN, infinite, outside, or == upper on a periodic axis: wrap first).
  int owner_of(double x) const {
    const int r = owner_or_negative(x);
    if (r < 0) {
      throw ParticleError(detail::message("domdec: position ", x, " along axis ", axis_,
                                          " is outside the box [", domain_.lower(axis_), ", ",
                                          domain_.upper(axis_), "] (", to_string(domain_.boundary(axis_)),
                                          "): apply the boundaries before asking for its owner"));
    }
    return r;
  }
  /// The rank that owns `position` (only the decomposition axis matters).
  int owner_of(const Point& position) const {
    return owner_of(position[static_cast<std::size_t>(axis_)]);
  }

  /// As owner_of, but returns -1 instead of throwing: the form used in hot loops.
  int owner_or_negative(double x) const noexcept {
    if (!domain_.contains(x, axis_)) return -1;
    const double* cuts = cuts_.data();
    int r;
    if (uniform_) {
      // Arithmetic guess, then corrected against the cuts so the answer always agrees with
      // local_bounds() to the last bit.
      const double guess = (x - cuts[0]) * inverse_width_;
      r = guess >= static_cast<double>(size_) ? size_ - 1 : static_cast<int>(guess);
      while (r > 0 && x < cuts[r]) --r;
      while (r < size_ - 1 && x >= cuts[r + 1]) ++r;
    } else {
      // Last slab whose lower cut is <= x: with empty slabs this is the non-empty one.
      const auto* end = cuts + size_;  // cuts[size_] is the upper side: never a slab start
      r = static_cast<int>(std::upper_bound(cuts, end, x) - cuts) - 1;
    }
    return r;
  }

  /// The rank owning the slab just below this one along the axis: rank - 1, or on a periodic
  /// axis the last rank for rank 0 (this rank itself when size() == 1). Empty on a
  /// non-periodic axis for rank 0.
  std::optional<int> lower_neighbour() const noexcept {
    if (rank_ > 0) return rank_ - 1;
    if (domain_.boundary(axis_) == Boundary::periodic) return size_ - 1;
    return std::nullopt;
  }
  /// The rank owning the slab just above this one, wrapping on a periodic axis.
  std::optional<int> upper_neighbour() const noexcept {
    if (rank_ < size_ - 1) return rank_ + 1;
    if (domain_.boundary(axis_) == Boundary::periodic) return 0;
    return std::nullopt;
  }

  /// Moves the cuts (load balancing). Collective: every rank must pass the same cuts, or every
  /// rank throws SetupError and the old cuts stay. Particles are not moved: call
  /// `Exchanger::migrate` next so each goes to its new owner.
  void set_cuts(std::vector<double> cuts) { install_cuts(std::move(cuts)); }

 private:
  static std::vector<double> equal_cuts(const Domain<Dim>& domain, int axis, int size) {
    if (axis < 0 || axis >= Dim) return {};  // reported by the constructor
    std::vector<double> cuts(static_cast<std::size_t>(size) + 1);
    const double lo = domain.lower(axis), hi = domain.upper(axis);
    for (int r = 0; r <= size; ++r)
      cuts[static_cast<std::size_t>(r)] = lo + (hi - lo) * (static_cast<double>(r) / size);
    cuts.back() = hi;
    return cuts;
  }

  void install_cuts(std::vector<double> cuts) {
    // Validate locally, then agree collectively, so a bad value on one rank fails everywhere
    // with that rank's reason.
    const std::array<double, 2 * Dim> box = box_values();
    const std::array<std::uint64_t, Dim> rules = rule_values();
    const std::array<detail::AgreedField, 6> fields{{
        {"number of ranks", static_cast<std::uint64_t>(comm_.size())},
        {"dimension", static_cast<std::uint64_t>(Dim)},
        {"axis", static_cast<std::uint64_t>(axis_)},
        {"box", detail::digest(box.data(), box.size()), true},
        {"boundary rules", detail::digest(rules.data(), rules.size()), true},
        {"cuts", detail::digest(cuts.data(), cuts.size()), true},
    }};
    const std::string problem =
        detail::agreement_problem(MPI_Comm(comm_), fields, "decomposition", check_cuts(cuts));
    if (!problem.empty()) throw SetupError(problem);

    cuts_ = std::move(cuts);
    rank_ = comm_.rank();
    size_ = comm_.size();
    const std::vector<double> equal = equal_cuts(domain_, axis_, size_);
    uniform_ = cuts_ == equal;
    inverse_width_ = static_cast<double>(size_) / domain_.length(axis_);
  }

  std::string check_cuts(const std::vector<double>& cuts) const {
    if (axis_ < 0 || axis_ >= Dim) {
      return detail::message("domdec: Decomposition axis ", axis_, " is not an axis of a ", Dim,
                             "-D box");
    }
    const auto expected = static_cast<std::size_t>(comm_.size()) + 1;
    if (cuts.size() != expected) {
      return detail::message("domdec: Decomposition needs ", expected, " cuts for ", comm_.size(),
                             " ranks, got ", cuts.size());
    }
    if (cuts.front() != domain_.lower(axis_) || cuts.back() != domain_.upper(axis_)) {
      return detail::message("domdec: the first and last cut must be the box's sides ",
                             domain_.lower(axis_), " and ", domain_.upper(axis_), "; got ",
                             cuts.front(), " and ", cuts.back());
    }
    for (std::size_t i = 1; i < cuts.size(); ++i) {
      if (!(cuts[i - 1] <= cuts[i])) {
        return detail::message("domdec: cuts must be non-decreasing; cut ", i - 1, " = ",
                               cuts[i - 1], " > cut ", i, " = ", cuts[i]);
      }
    }
    return {};
  }

  std::array<double, 2 * Dim> box_values() const {
    std::array<double, 2 * Dim> v{};
    for (int a = 0; a < Dim; ++a) {
      v[static_cast<std::size_t>(2 * a)] = domain_.lower(a);
      v[static_cast<std::size_t>(2 * a + 1)] = domain_.upper(a);
    }
    return v;
  }
  std::array<std::uint64_t, Dim> rule_values() const {
    std::array<std::uint64_t, Dim> v{};
    for (int a = 0; a < Dim; ++a)
      v[static_cast<std::size_t>(a)] = static_cast<std::uint64_t>(domain_.boundary(a));
    return v;
  }

  boost::mpi::communicator comm_;
  Domain<Dim> domain_;
  int axis_;
  std::vector<double> cuts_;
  int rank_ = 0;
  int size_ = 1;
  bool uniform_ = true;
  double inverse_width_ = 1.0;
};

}  // namespace domdec
