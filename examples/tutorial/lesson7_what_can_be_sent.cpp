// Tutorial lesson 7, "What can be sent": built-in types and MPI datatypes travel *typed* (their
// bytes as they are in memory; mpi4py's `Send`), everything else with a serialize() travels
// *serialized* (written into a byte stream and read back; mpi4py's `send`, which pickles).
// Every rank sends one value of each kind to its right neighbour and checks what arrives from
// its left; rank 0 prints what it received. Then domdec picks the transport of two particle
// types from the same rule.
//   mpirun -np 4 ./build/examples/tutorial/lesson7_what_can_be_sent
#include <boost/mpi.hpp>
#include <boost/serialization/map.hpp>     // lets std::map travel serialized
#include <boost/serialization/string.hpp>  // std::string
#include <boost/serialization/vector.hpp>  // std::vector
#include <cstdint>
#include <domdec/domdec.hpp>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"

namespace {

/// A user type with heap-owning members: serialize() lists every member; it travels
/// serialized (it cannot be an MPI datatype: its strings and vectors live elsewhere in memory).
struct Measurement {
  std::string label;
  std::vector<double> values;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & label & values;
  }
  bool operator==(const Measurement& o) const { return label == o.label && values == o.values; }
};

/// Plain data: serialize() lists every member and BOOST_IS_MPI_DATATYPE (below) makes it an
/// MPI datatype, so it travels typed: 24 bytes copied as they are.
struct Particle {
  std::int64_t id;
  double x;
  double v;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & v;
  }
  bool operator==(const Particle& o) const { return id == o.id && x == o.x && v == o.v; }
};

/// A particle with a label: serializable but not plain data, so domdec sends it serialized.
struct LabelledParticle {
  std::int64_t id;
  double x;
  std::string label;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & label;
  }
};

// What each rank sends: every value says which rank made it.
int an_int(int r) { return 100 + r; }
double a_double(int r) { return r + 0.5; }
std::string a_string(int r) { return "greetings from rank " + std::to_string(r); }
std::vector<double> a_vector(int r) { return {double(r), r + 0.5, r + 1.0}; }
std::map<std::string, int> a_map(int r) { return {{"rank", r}, {"steps", 10}}; }
Measurement a_measurement(int r) { return {"probe " + std::to_string(r), {double(r), 2.0 * r}}; }
Particle a_particle(int r) { return {r, 0.25 * r, -0.5}; }

// How rank 0 prints what it got.
std::string show(int v) { return std::to_string(v); }
std::string show(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}
std::string show(const std::string& s) { return "\"" + s + "\""; }
std::string show(const std::vector<double>& v) {
  std::string out = "{";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + show(v[i]);
  return out + "}";
}
std::string show(const std::map<std::string, int>& m) {
  std::string out = "{";
  for (const auto& [key, value] : m) out += (out.size() > 1 ? ", " : "") + key + ": " + show(value);
  return out + "}";
}
std::string show(const Measurement& m) {
  return "{label " + show(m.label) + ", values " + show(m.values) + "}";
}
std::string show(const Particle& p) {
  return "{id " + std::to_string(p.id) + ", x " + show(p.x) + ", v " + show(p.v) + "}";
}

}  // namespace

BOOST_IS_MPI_DATATYPE(Particle)

namespace {

/// How Boost.MPI sends T: typed when T is an MPI datatype. A std::vector of an MPI datatype is
/// not one itself, but Boost.MPI sends its elements as one typed message (the receiver learns
/// the length by probing the message).
template <class T>
const char* how_it_travels() {
  return boost::mpi::is_mpi_datatype<T>::value ? "typed" : "serialized";
}
template <>
const char* how_it_travels<std::vector<double>>() {
  return "typed elements";
}

/// Sends `mine` to the right neighbour, receives the left neighbour's value and checks it.
/// Non-blocking receive and send, then wait for both: no rank waits for another (lesson 6).
template <class T>
bool pass_right(const boost::mpi::communicator& world, const char* name, const T& mine,
                const T& expected, std::ostringstream& table, int tag) {
  const int right = (world.rank() + 1) % world.size();
  const int left = (world.rank() + world.size() - 1) % world.size();
  T received{};
  boost::mpi::request requests[2] = {world.irecv(left, tag, received),
                                     world.isend(right, tag, mine)};
  boost::mpi::wait_all(requests, requests + 2);
  const bool ok = received == expected;
  table << std::left << std::setw(30) << name << std::setw(16) << how_it_travels<T>()
        << show(received) << (ok ? "" : "   <-- WRONG") << '\n';
  return ok;
}

}  // namespace

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;

  tutorial::Cli cli(argc, argv,
                    "Every rank sends a value of each kind (int, double, std::string, "
                    "std::vector, std::map, a struct with serialize(), the same kind of struct "
                    "as an MPI datatype) to its right neighbour and checks what arrives.");
  if (const auto status = cli.finish(world.rank() == 0)) return *status;

  const int rank = world.rank(), size = world.size();
  const int left = (rank + size - 1) % size;

  std::ostringstream table;
  table << std::left << std::setw(30) << "what" << std::setw(16) << "travels"
        << "rank 0 received from rank " << left << '\n';
  bool ok = true;
  ok &= pass_right(world, "int", an_int(rank), an_int(left), table, 1);
  ok &= pass_right(world, "double", a_double(rank), a_double(left), table, 2);
  ok &= pass_right(world, "std::string", a_string(rank), a_string(left), table, 3);
  ok &= pass_right(world, "std::vector<double>", a_vector(rank), a_vector(left), table, 4);
  ok &= pass_right(world, "std::map<std::string, int>", a_map(rank), a_map(left), table, 5);
  ok &= pass_right(world, "Measurement (serialize)", a_measurement(rank), a_measurement(left),
                   table, 6);
  ok &= pass_right(world, "Particle (MPI datatype)", a_particle(rank), a_particle(left), table, 7);
  const int kinds = 7;

  const int good_ranks = boost::mpi::all_reduce(world, ok ? 1 : 0, std::plus<int>());
  if (rank == 0) {
    std::cout << table.str() << good_ranks << " of " << size << " ranks received exactly what "
              << "their left neighbour sent (" << kinds << " kinds each)\n";
  }

  // domdec chooses the transport from the same rule: typed for an MPI datatype, serialized for
  // any other type with serialize(). (Constructing an Exchanger is collective.)
  const domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::periodic);
  const domdec::Decomposition<1> slabs(world, box);
  domdec::Exchanger<Particle, 1> plain(slabs, &Particle::x);
  domdec::Exchanger<LabelledParticle, 1> labelled(slabs, &LabelledParticle::x);
  if (rank == 0) {
    std::cout << "domdec::Exchanger<Particle, 1> moves particles "
              << decltype(plain)::TransportTag::name << '\n'
              << "domdec::Exchanger<LabelledParticle, 1> moves particles "
              << decltype(labelled)::TransportTag::name << std::endl;
  }
  return good_ranks == size ? 0 : 1;
}
