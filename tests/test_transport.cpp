// Transport: which particle types travel typed, which serialized, and the serialized archive's
// round trip of everything a particle may hold.
#include <catch2/catch.hpp>

#include <array>
#include <boost/serialization/map.hpp>
#include <boost/serialization/split_member.hpp>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "domdec/domdec.hpp"
#include "support/mpi_test.hpp"
#include "support/particles.hpp"

using domdec_test::Particle;
using domdec_test::TaggedParticle;
using domdec_test::world;

namespace {

struct Unsendable {
  double x;
};

class PrivateSerialize {
 public:
  double x = 0;

 private:
  friend class boost::serialization::access;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & x;
  }
};

struct SplitMember {
  double x = 0;
  std::string name;
  template <class Archive>
  void save(Archive& ar, unsigned) const {
    ar << x << name;
  }
  template <class Archive>
  void load(Archive& ar, unsigned) {
    ar >> x >> name;
    name += "!";  // proves load() ran
  }
  BOOST_SERIALIZATION_SPLIT_MEMBER()
};

enum class Species : std::uint8_t { electron = 3, ion = 7 };

struct Inner {
  int a = 0;
  std::vector<std::string> words;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & a & words;
  }
};

struct Everything {
  std::int64_t id = 0;
  Species species = Species::electron;
  std::array<double, 3> r{};
  double c_array[2] = {0, 0};
  std::pair<int, std::string> pair;
  std::vector<Inner> inners;
  std::map<std::string, int> counts;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & species & r & c_array & pair & inners & counts;
    ar & boost::serialization::make_nvp("named", id);  // nvp wrappers are accepted
  }
};

// Forgets a member in serialize(): the MPI datatype Boost builds is shorter than the struct.
struct Forgetful {
  double x = 0;
  double v = 0;
  double forgotten = 0;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & x & v;
  }
};

}  // namespace

// Non-intrusive serialize in boost::serialization, as Boost's documentation suggests.
struct NonIntrusive {
  double x = 0;
};
namespace boost::serialization {
template <class Archive>
void serialize(Archive& ar, NonIntrusive& p, const unsigned int) {
  ar & p.x;
}
}  // namespace boost::serialization

BOOST_IS_MPI_DATATYPE(Forgetful)

TEST_CASE("the transport is chosen from the type and can be overridden", "[transport]") {
  STATIC_REQUIRE(std::is_same_v<domdec::default_transport_t<Particle>, domdec::Typed>);
  STATIC_REQUIRE(std::is_same_v<domdec::default_transport_t<TaggedParticle>, domdec::Serialized>);
  STATIC_REQUIRE(domdec::is_serializable_v<Particle>);
  STATIC_REQUIRE(domdec::is_serializable_v<TaggedParticle>);
  STATIC_REQUIRE(domdec::is_serializable_v<PrivateSerialize>);
  STATIC_REQUIRE(domdec::is_serializable_v<SplitMember>);
  STATIC_REQUIRE(domdec::is_serializable_v<NonIntrusive>);
  STATIC_REQUIRE(domdec::is_serializable_v<double>);
  STATIC_REQUIRE_FALSE(domdec::is_serializable_v<Unsendable>);
  STATIC_REQUIRE_FALSE(domdec::is_typed_v<TaggedParticle>);
}

namespace {
template <class T>
T round_trip(const T& value) {
  domdec::detail::ByteBuffer bytes;
  domdec::detail::ByteWriter writer(bytes);
  writer << value;
  domdec::detail::ByteReader reader(bytes.data(), bytes.data() + bytes.size());
  T back{};
  reader >> back;
  CHECK(reader.remaining() == 0);
  return back;
}
}  // namespace

TEST_CASE("the serialized archive round-trips what particles hold", "[transport]") {
  Everything e;
  e.id = -42;
  e.species = Species::ion;
  e.r = {1.5, -2.5, 3.25};
  e.c_array[0] = 7;
  e.c_array[1] = 8;
  e.pair = {9, "nine"};
  e.inners = {{1, {"a", "bb"}}, {2, {}}, {3, {std::string(1000, 'z')}}};
  e.counts = {{"x", 1}, {"y", 2}};
  const Everything back = round_trip(e);
  CHECK(back.id == e.id);
  CHECK(back.species == Species::ion);
  CHECK(back.r == e.r);
  CHECK(back.c_array[1] == 8);
  CHECK(back.pair == e.pair);
  REQUIRE(back.inners.size() == 3);
  CHECK(back.inners[0].words == std::vector<std::string>{"a", "bb"});
  CHECK(back.inners[2].words[0].size() == 1000);
  CHECK(back.counts == e.counts);

  SplitMember s;
  s.x = 2;
  s.name = "split";
  CHECK(round_trip(s).name == "split!");
  NonIntrusive n;
  n.x = 3;
  CHECK(round_trip(n).x == 3);
}

TEST_CASE("a truncated serialized message is an error, not garbage", "[transport]") {
  TaggedParticle p;
  p.label = "hello";
  p.history = {1, 2, 3};
  domdec::detail::ByteBuffer bytes;
  domdec::detail::ByteWriter writer(bytes);
  writer << p;
  domdec::detail::ByteReader reader(bytes.data(), bytes.data() + bytes.size() - 1);
  TaggedParticle back;
  CHECK_THROWS_AS(reader >> back, domdec::CommunicationError);
}

TEST_CASE("a typed particle whose datatype does not match its layout is refused on every rank",
          "[transport][errors]") {
  const domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::periodic);
  const domdec::Decomposition<1> slabs(world(), box);
  CHECK_THROWS_WITH((domdec::Exchanger<Forgetful, 1>(slabs, &Forgetful::x)),
                    Catch::Contains("sizeof is 24") && Catch::Contains("List every member"));
  // The same type sent serialized is fine: only the members serialize() lists travel.
  CHECK_NOTHROW(domdec::Exchanger<Forgetful, 1, domdec::Serialized>(slabs, &Forgetful::x));
}
