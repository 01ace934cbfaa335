// The fast paths — particles in a domdec::ParticleVector, a whole step passed to migrate as an
// update, bitwise-serializable particles read back in one copy, buffers on huge pages — give
// exactly the results of the plain paths, and fail the same way.
#include <boost/serialization/is_bitwise_serializable.hpp>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "domdec/domdec.hpp"
#include "support/mpi_test.hpp"
#include "support/particles.hpp"

using domdec::Boundary;
using domdec::Decomposition;
using domdec::Domain;
using domdec::Exchanger;
using domdec::ParticleVector;
using domdec::Serialized;
using domdec::Typed;
using domdec_test::on_every_rank;
using domdec_test::Particle;
using domdec_test::sum_over_ranks;
using domdec_test::world;

namespace {

/// Plain data marked bitwise-serializable: the serialized transport copies it whole.
struct BitwiseParticle {
  std::int64_t id = 0;
  double x = 0.0;
  double v = 0.0;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar& id& x& v;
  }
  friend bool operator==(const BitwiseParticle& a, const BitwiseParticle& b) {
    return a.id == b.id && a.x == b.x && a.v == b.v;
  }
};

struct alignas(64) WideParticle {
  double values[8];
};

std::uint64_t mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
/// A uniform double in [0, 1) keyed by (id, step): the same for a particle wherever it is.
double unit(std::int64_t id, int step) {
  return static_cast<double>(mix(static_cast<std::uint64_t>(id) * 1000003u + step) >> 11) *
         0x1.0p-53;
}

template <class P, class Vector>
Vector particles_in_my_slab(const Decomposition<1>& slabs, std::int64_t n) {
  Vector mine;
  for (std::int64_t id = 0; id < n; ++id) {
    const double x = (static_cast<double>(id) + 0.5) / static_cast<double>(n);
    if (slabs.owner_of(x) == slabs.rank()) {
      P p{};
      p.id = id;
      p.x = x;
      mine.push_back(p);
    }
  }
  return mine;
}

/// This step's velocity of particle `id`: mostly within a slab, now and then several slabs.
double velocity(std::int64_t id, int step, int ranks) {
  const double u = unit(id, step);
  const double scale = unit(id, -step - 1) < 0.02 ? 2.5 : 0.3 / ranks;
  return (2.0 * u - 1.0) * scale;
}

template <class A, class B>
bool same_particles(const A& a, const B& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) return false;
  return true;
}

}  // namespace

BOOST_IS_MPI_DATATYPE(BitwiseParticle)
BOOST_IS_BITWISE_SERIALIZABLE(BitwiseParticle)

TEST_CASE("ParticleAllocator puts large blocks on 2 MiB boundaries, small ones as usual",
          "[allocator]") {
  domdec::ParticleAllocator<double> doubles;
  const std::size_t n = std::size_t{3} << 20;  // 24 MiB
  double* big = doubles.allocate(n);
  CHECK(reinterpret_cast<std::uintptr_t>(big) % (std::size_t{1} << 21) == 0);
  for (std::size_t i = 0; i < n; i += 4096) big[i] = static_cast<double>(i);
  bool kept = true;
  for (std::size_t i = 0; i < n; i += 4096) kept = kept && big[i] == static_cast<double>(i);
  CHECK(kept);
  doubles.deallocate(big, n);

  double* small = doubles.allocate(10);
  small[9] = 1.0;
  CHECK(reinterpret_cast<std::uintptr_t>(small) % alignof(double) == 0);
  doubles.deallocate(small, 10);

  domdec::ParticleAllocator<WideParticle> wide;
  WideParticle* w = wide.allocate(3);
  CHECK(reinterpret_cast<std::uintptr_t>(w) % 64 == 0);
  wide.deallocate(w, 3);
  CHECK(doubles == domdec::ParticleAllocator<int>());
}

TEST_CASE("a ParticleVector still initializes particles that have initializers", "[allocator]") {
  ParticleVector<Particle> v(1000, Particle{7, 0.5, -1.0});
  v.resize(5000);  // grows onto huge pages; Particle's members have default initializers
  CHECK(v[999] == (Particle{7, 0.5, -1.0}));
  CHECK(v[4999] == Particle{});
  const std::vector<Particle> copy(v.begin(), v.end());
  CHECK(same_particles(copy, v));
}

TEST_CASE("a byte buffer keeps its contents as it grows onto huge pages", "[allocator]") {
  domdec::detail::ByteBuffer bytes;
  const std::size_t n = std::size_t{5} << 20;
  for (std::size_t i = 0; i < n; i += 1000) {
    unsigned char block[1000];
    for (std::size_t k = 0; k < 1000; ++k) block[k] = static_cast<unsigned char>((i + k) % 251);
    bytes.append(block, 1000);
  }
  REQUIRE(bytes.size() >= n);
  bool kept = true;
  for (std::size_t i = 0; i < bytes.size(); ++i)
    kept = kept && static_cast<unsigned char>(bytes.data()[i]) == i % 251;
  CHECK(kept);
  CHECK(reinterpret_cast<std::uintptr_t>(bytes.data()) % (std::size_t{1} << 21) == 0);
}

TEMPLATE_TEST_CASE("migrate on a ParticleVector gives exactly what it gives on a std::vector",
                   "[allocator][migrate]", Typed, Serialized) {
  const int ranks = world().size();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1, TestType> plain(slabs, &Particle::x);
  Exchanger<Particle, 1, TestType> fast(slabs, &Particle::x);
  auto a = particles_in_my_slab<Particle, std::vector<Particle>>(slabs, 600);
  auto b = particles_in_my_slab<Particle, ParticleVector<Particle>>(slabs, 600);
  bool identical = true;
  for (int step = 0; step < 200 && identical; ++step) {
    for (Particle& p : a) p.x += velocity(p.id, step, ranks);
    for (Particle& p : b) p.x += velocity(p.id, step, ranks);
    box.apply_boundaries(a, &Particle::x);
    box.apply_boundaries(b, &Particle::x);
    const auto sa = plain.migrate(a);
    const auto sb = fast.migrate(b);
    identical = same_particles(a, b) && sa.particles_sent == sb.particles_sent &&
                sa.particles_received == sb.particles_received;
    if (!identical) UNSCOPED_INFO("first difference at step " << step);
  }
  REQUIRE(on_every_rank(identical));
  CHECK(sum_over_ranks(static_cast<std::int64_t>(b.size())) == 600);
  // Long jumps took the general path (on a ring of up to 3 ranks every rank is a neighbour).
  if (ranks >= 4) CHECK(fast.totals().general_path_calls > 0);
}

TEMPLATE_TEST_CASE("migrate with an update equals the user's loop, the walls, then migrate",
                   "[migrate][update]", Typed, Serialized) {
  const int ranks = world().size();
  const Domain<1> box({0.0}, {1.0}, Boundary::reflecting);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1, TestType> three_passes(slabs, &Particle::x);
  Exchanger<Particle, 1, TestType> one_pass(slabs, &Particle::x);
  auto a = particles_in_my_slab<Particle, std::vector<Particle>>(slabs, 500);
  for (Particle& p : a) p.v = velocity(p.id, 0, ranks);
  ParticleVector<Particle> b(a.begin(), a.end());
  bool identical = true;
  std::size_t updates = 0;
  for (int step = 0; step < 200 && identical; ++step) {
    for (Particle& p : a) p.x += p.v;
    box.apply_boundaries(a, &Particle::x, &Particle::v);
    const auto sa = three_passes.migrate(a);
    const auto sb = one_pass.migrate(b, [&](Particle& p) {
      ++updates;
      p.x += p.v;
      const auto [x, flipped] = box.reflect(p.x, 0);
      p.x = x;
      if (flipped) p.v = -p.v;
    });
    identical = same_particles(a, b) && sa.particles_sent == sb.particles_sent &&
                sa.messages_sent == sb.messages_sent;
    if (!identical) UNSCOPED_INFO("first difference at step " << step);
  }
  REQUIRE(on_every_rank(identical));
  // Every particle was updated exactly once per step.
  CHECK(sum_over_ranks(static_cast<std::int64_t>(updates)) == 500 * 200);
}

TEST_CASE("an update that makes a particle invalid stops migrate on every rank, moving nothing",
          "[migrate][update][errors]") {
  const int ranks = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::reflecting);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  auto mine = particles_in_my_slab<Particle, ParticleVector<Particle>>(slabs, 40);
  REQUIRE(on_every_rank(!mine.empty()));
  const int culprit = ranks - 1;
  const std::size_t before = mine.size();
  std::string text;
  try {
    exchanger.migrate(mine, [&](Particle& p) {
      p.x = std::min(1.0, p.x + 0.3 / ranks);  // some would leave...
      if (me == culprit && p.id == mine[1].id) p.x = std::numeric_limits<double>::quiet_NaN();
    });
  } catch (const domdec::ParticleError& e) {
    text = e.what();
  }
  CHECK_THAT(text, Catch::Contains("on rank " + std::to_string(culprit)) && Catch::Contains("nan"));
  // ...but nothing moved: the update was applied, the particles are all still here.
  CHECK(mine.size() == before);
  if (me == culprit) mine[1].x = 0.999;
  CHECK_NOTHROW(exchanger.migrate(mine));
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == 40);
}

TEMPLATE_TEST_CASE("an error after many particles were sorted out leaves every one in place",
                   "[migrate][errors]", Typed, Serialized) {
  const int ranks = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1, TestType> exchanger(slabs, &Particle::x);
  auto mine = particles_in_my_slab<Particle, std::vector<Particle>>(slabs, 2000);
  // Every other particle jumps to another slab (many swaps, leavers met from both ends);
  // the last rank's particle in the middle becomes NaN.
  for (Particle& p : mine)
    if (p.id % 2 == 0) p.x = box.wrap(p.x + (1.0 + 0.5 * (p.id % 3)) / ranks, 0);
  if (me == ranks - 1) mine[mine.size() / 2].x = std::numeric_limits<double>::quiet_NaN();
  const std::vector<Particle> before = mine;
  CHECK_THROWS_AS(exchanger.migrate(mine), domdec::ParticleError);
  CHECK(mine.size() == before.size());
  CHECK(std::memcmp(mine.data(), before.data(), mine.size() * sizeof(Particle)) == 0);
  // Nothing was left in the send buckets: the next migrate moves exactly the leavers.
  if (me == ranks - 1) mine[mine.size() / 2].x = 0.999;
  const auto stats = exchanger.migrate(mine);
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == 2000);
  CHECK(sum_over_ranks(static_cast<std::int64_t>(stats.particles_sent)) ==
        sum_over_ranks(static_cast<std::int64_t>(stats.particles_received)));
  const auto mine_bounds = slabs.local_bounds();
  bool placed = true;
  for (const Particle& p : mine) placed = placed && mine_bounds.contains(p.x);
  CHECK(placed);
}

TEMPLATE_TEST_CASE(
    "without keep_sender_order (the default) arrivals are the same particles, in a fixed order",
    "[migrate][order]", Typed, Serialized) {
  const int ranks = world().size();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  domdec::ExchangerOptions in_order;
  in_order.keep_sender_order = true;
  REQUIRE_FALSE(domdec::ExchangerOptions{}.keep_sender_order);
  Exchanger<Particle, 1, TestType> ordered(slabs, &Particle::x, in_order);
  Exchanger<Particle, 1, TestType> first(slabs, &Particle::x);
  Exchanger<Particle, 1, TestType> second(slabs, &Particle::x);
  auto a = particles_in_my_slab<Particle, std::vector<Particle>>(slabs, 800);
  auto b = a, c = a;
  auto by_id = [](std::vector<Particle> v) {
    std::sort(v.begin(), v.end(), [](const Particle& p, const Particle& q) { return p.id < q.id; });
    return v;
  };
  bool same_sets = true, same_order = true;
  for (int step = 0; step < 100 && same_sets && same_order; ++step) {
    for (auto* v : {&a, &b, &c})
      for (Particle& p : *v) p.x += velocity(p.id, step, ranks) * 3.0;  // many leave
    for (auto* v : {&a, &b, &c}) box.apply_boundaries(*v, &Particle::x);
    ordered.migrate(a);
    first.migrate(b);
    second.migrate(c);
    same_sets = same_particles(by_id(a), by_id(b));
    same_order = same_particles(b, c);  // deterministic: same input, same order
    if (!(same_sets && same_order)) UNSCOPED_INFO("first difference at step " << step);
  }
  CHECK(on_every_rank(same_sets));
  CHECK(on_every_rank(same_order));
}

TEST_CASE("ranks that disagree on keep_sender_order all get an error", "[migrate][errors]") {
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  domdec::ExchangerOptions options;
  options.keep_sender_order = world().rank() != 0;
  std::string text;
  try {
    Exchanger<Particle, 1> exchanger(slabs, &Particle::x, options);
  } catch (const domdec::SetupError& e) {
    text = e.what();
  }
  if (world().size() > 1) {
    CHECK_THAT(text, Catch::Contains("keep_sender_order"));
  } else {
    CHECK(text.empty());
  }
}

TEST_CASE("bitwise-serializable particles travel serialized exactly as they travel typed",
          "[transport][migrate]") {
  const int ranks = world().size();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  domdec::ExchangerOptions small;
  small.max_message_bytes = 100;  // four particles: streams of several messages
  Exchanger<BitwiseParticle, 1, Typed> typed(slabs, &BitwiseParticle::x, small);
  Exchanger<BitwiseParticle, 1, Serialized> serialized(slabs, &BitwiseParticle::x, small);
  auto a = particles_in_my_slab<BitwiseParticle, ParticleVector<BitwiseParticle>>(slabs, 900);
  auto b = particles_in_my_slab<BitwiseParticle, std::vector<BitwiseParticle>>(slabs, 900);
  bool identical = true;
  for (int step = 0; step < 100 && identical; ++step) {
    for (auto& p : a) p.x += velocity(p.id, step, ranks);
    for (auto& p : b) p.x += velocity(p.id, step, ranks);
    box.apply_boundaries(a, &BitwiseParticle::x);
    box.apply_boundaries(b, &BitwiseParticle::x);
    typed.migrate(a);
    serialized.migrate(b);
    identical = same_particles(a, b);
  }
  REQUIRE(on_every_rank(identical));
  if (ranks > 1) CHECK(serialized.totals().messages_sent > serialized.totals().calls * 2);
}

TEST_CASE("a stream that is not a whole number of bitwise-serializable particles is an error",
          "[transport][errors]") {
  // 3.5 particles' worth of bytes, sent to this rank itself.
  MPI_Comm comm;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  const int me = world().rank();
  std::vector<char> bytes(3 * sizeof(BitwiseParticle) + sizeof(BitwiseParticle) / 2, 0);
  MPI_Request request;
  MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, me, 1, comm, &request);
  domdec::detail::Channel<BitwiseParticle, Serialized> channel(1 << 20);
  ParticleVector<BitwiseParticle> arrivals(2);
  std::string text;
  try {
    channel.receive(comm, me, 1, arrivals);
  } catch (const domdec::CommunicationError& e) {
    text = e.what();
  }
  CHECK_THAT(text, Catch::Contains("not a whole number"));
  CHECK(arrivals.size() == 2);  // nothing half-received is left behind
  MPI_Wait(&request, MPI_STATUS_IGNORE);
  MPI_Comm_free(&comm);
}
