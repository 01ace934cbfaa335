// tests/support/particles.hpp — the particle types the tests send around.
#pragma once

#include <array>
#include <boost/mpi/datatype.hpp>
#include <boost/serialization/array.hpp>
#include <boost/serialization/serialization.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace domdec_test {

/// The tutorial's particle: 24 bytes of plain data, an MPI datatype (travels typed).
struct Particle {
  std::int64_t id = 0;
  double x = 0.0;
  double v = 0.0;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & v;
  }
  friend bool operator==(const Particle& a, const Particle& b) {
    return a.id == b.id && a.x == b.x && a.v == b.v;
  }
};

/// A 3-D particle with array members.
struct Particle3 {
  std::int64_t id = 0;
  std::array<double, 3> r{};
  std::array<double, 3> v{};
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & r & v;
  }
};

/// A particle that can only travel serialized: its members own heap memory.
struct TaggedParticle {
  std::int64_t id = 0;
  double x = 0.0;
  std::string label;
  std::vector<double> history;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & label & history;
  }
};

}  // namespace domdec_test

BOOST_IS_MPI_DATATYPE(domdec_test::Particle)
BOOST_IS_MPI_DATATYPE(domdec_test::Particle3)
