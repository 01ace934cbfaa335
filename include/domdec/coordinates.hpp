// domdec/coordinates.hpp — where a particle type keeps a Dim-vector (its position, its
// velocity), so the library can read and write it without knowing the rest of the struct.
#pragma once

#include <array>
#include <cstddef>
#include <type_traits>

namespace domdec {

/// Names the member of particle type `P` that holds a `Dim`-vector:
/// - a `double` member when Dim == 1: `&Particle::x`;
/// - a `std::array<double, Dim>` member for any Dim: `&Particle::r`.
/// Built implicitly from the member pointer, so calls read `Exchanger<Particle, 1> ex(slabs,
/// &Particle::x)`. Copying it is free; reading a coordinate is one predictable branch.
template <class P, int Dim>
class Coordinates {
  static_assert(Dim >= 1 && Dim <= 3, "domdec: Dim must be 1, 2 or 3");

 public:
  using Vector = std::array<double, Dim>;

  Coordinates(Vector P::*member) noexcept : vector_(member) {}  // NOLINT: implicit on purpose

  template <int D = Dim, class = std::enable_if_t<D == 1>>
  Coordinates(double P::*member) noexcept : scalar_(member) {}  // NOLINT: implicit on purpose

  /// The coordinate of `p` along `axis` (0 <= axis < Dim).
  double get(const P& p, int axis) const noexcept {
    return scalar_ != nullptr ? p.*scalar_ : (p.*vector_)[static_cast<std::size_t>(axis)];
  }

  /// The coordinate of `p` along `axis`, writable.
  double& ref(P& p, int axis) const noexcept {
    return scalar_ != nullptr ? p.*scalar_ : (p.*vector_)[static_cast<std::size_t>(axis)];
  }

  /// Where the coordinate along `axis` sits inside a P: bytes from the start of `sample`, any
  /// particle (the offset is the same for every P). With at(), a hot loop reads coordinates
  /// without get()'s scalar-or-array branch, and its bounds can live in registers.
  std::ptrdiff_t byte_offset(const P& sample, int axis) const noexcept {
    const double* q = scalar_ != nullptr ? &(sample.*scalar_)
                                         : &(sample.*vector_)[static_cast<std::size_t>(axis)];
    return reinterpret_cast<const char*>(q) - reinterpret_cast<const char*>(&sample);
  }

  /// The coordinate of `p` at `byte_offset` (from byte_offset()).
  static double at(const P& p, std::ptrdiff_t byte_offset) noexcept {
    return *reinterpret_cast<const double*>(reinterpret_cast<const char*>(&p) + byte_offset);
  }

  /// All Dim coordinates of `p`.
  Vector get(const P& p) const noexcept {
    Vector out{};
    for (int a = 0; a < Dim; ++a) out[static_cast<std::size_t>(a)] = get(p, a);
    return out;
  }

 private:
  double P::*scalar_ = nullptr;
  Vector P::*vector_ = nullptr;
};

/// Coordinates<P, Dim> in a parameter where P is deduced from another argument (the particle
/// vector), so the member pointer converts implicitly: `box.apply_boundaries(v, &Particle::x)`.
template <class P, int Dim>
using CoordinatesOf = Coordinates<typename std::enable_if<true, P>::type, Dim>;

}  // namespace domdec
