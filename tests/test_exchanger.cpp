// Exchanger: migration conserves particles, delivers any displacement, costs what crosses a
// boundary, and behaves the same over the typed and the serialized transport.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "domdec/domdec.hpp"
#include "support/mpi_test.hpp"
#include "support/particles.hpp"

using domdec::Boundary;
using domdec::Decomposition;
using domdec::Domain;
using domdec::Exchanger;
using domdec::Serialized;
using domdec::Typed;
using domdec_test::gather_everywhere;
using domdec_test::on_every_rank;
using domdec_test::Particle;
using domdec_test::Particle3;
using domdec_test::sum_over_ranks;
using domdec_test::TaggedParticle;
using domdec_test::world;

namespace {

/// N particles with ids 0..N-1, uniformly spread over the box, each created by its owner.
std::vector<Particle> particles_in_my_slab(const Decomposition<1>& slabs, std::int64_t n) {
  std::vector<Particle> mine;
  const double lo = slabs.domain().lower(0), len = slabs.domain().length(0);
  for (std::int64_t id = 0; id < n; ++id) {
    const double x = lo + len * (static_cast<double>(id) + 0.5) / static_cast<double>(n);
    if (slabs.owner_of(x) == slabs.rank()) mine.push_back({id, x, 0.0});
  }
  return mine;
}

/// Order-independent fingerprint of a set of ids: equal sets give equal values.
std::uint64_t id_fingerprint(const std::vector<Particle>& ps) {
  std::uint64_t sum = 0;
  for (const Particle& p : ps) {
    std::uint64_t h = static_cast<std::uint64_t>(p.id) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    sum += h * 0xBF58476D1CE4E5B9ull;
  }
  return sum;
}

/// Every particle is inside its owner's slab.
template <class P>
bool all_inside_my_slab(const Decomposition<1>& slabs, const std::vector<P>& ps) {
  const auto mine = slabs.local_bounds();
  return std::all_of(ps.begin(), ps.end(), [&](const P& p) { return mine.contains(p.x); });
}

/// The ids 0..n-1, each exactly once, over all ranks.
bool ids_are_exactly(const std::vector<Particle>& mine, std::int64_t n) {
  std::vector<std::int64_t> ids;
  for (const Particle& p : mine) ids.push_back(p.id);
  std::vector<std::int64_t> all = gather_everywhere(ids);
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expected(static_cast<std::size_t>(n));
  std::iota(expected.begin(), expected.end(), 0);
  return all == expected;
}

/// One scenario of the random walk, run identically over both transports.
struct WalkScenario {
  const char* name;
  Boundary boundary;
  double step;              // standard deviation of an ordinary step, in box lengths
  double jump_probability;  // chance per particle per step of a long jump
  double jump_length;       // long jumps are uniform in [-jump_length, jump_length]
};

const WalkScenario walk_scenarios[] = {
    {"periodic, local steps with jumps across several slabs and the wrap", Boundary::periodic,
     0.01, 0.01, 2.5},
    {"reflecting walls, long jumps that bounce", Boundary::reflecting, 0.02, 0.02, 1.5},
    {"periodic, only local steps", Boundary::periodic, 0.005, 0.0, 0.0},
};

/// A random walk of particles under one scenario and one transport.
template <class Transport>
struct Walk {
  Domain<1> box;
  Decomposition<1> slabs;
  Exchanger<Particle, 1, Transport> exchanger;
  std::vector<Particle> mine;
  std::mt19937_64 rng;
  WalkScenario scenario;

  Walk(const WalkScenario& s, std::int64_t n, std::uint64_t seed,
       domdec::ExchangerOptions options = {})
      : box({0.0}, {1.0}, s.boundary),
        slabs(world(), box),
        exchanger(slabs, &Particle::x, options),
        mine(particles_in_my_slab(slabs, n)),
        rng(seed * 1000003u + static_cast<std::uint64_t>(world().rank())),
        scenario(s) {}

  domdec::MigrationStats step() {
    std::normal_distribution<double> small(0.0, scenario.step);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (Particle& p : mine) {
      double dx = small(rng);
      if (unit(rng) < scenario.jump_probability) dx = scenario.jump_length * (2.0 * unit(rng) - 1.0);
      p.v = dx;
      p.x += dx;
    }
    box.apply_boundaries(mine, &Particle::x, &Particle::v);
    return exchanger.migrate(mine);
  }
};

}  // namespace

TEMPLATE_TEST_CASE("a 1000-step random walk keeps every particle, each in its owner's slab",
                   "[migrate]", Typed, Serialized) {
  const std::int64_t n = 400;
  for (const WalkScenario& scenario : walk_scenarios) {
    INFO("scenario: " << scenario.name);
    Walk<TestType> walk(scenario, n, 7);
    const std::uint64_t fingerprint = sum_over_ranks(id_fingerprint(walk.mine));
    REQUIRE(on_every_rank(ids_are_exactly(walk.mine, n)));
    std::size_t far_calls = 0;
    for (int step = 1; step <= 1000; ++step) {
      const domdec::MigrationStats stats = walk.step();
      far_calls += stats.general_path_calls;
      // Count and id fingerprint every step; the full set of ids now and then.
      const bool conserved =
          sum_over_ranks(static_cast<std::int64_t>(walk.mine.size())) == n &&
          sum_over_ranks(id_fingerprint(walk.mine)) == fingerprint;
      const bool placed = all_inside_my_slab(walk.slabs, walk.mine);
      const bool exact = step % 100 != 0 || ids_are_exactly(walk.mine, n);
      if (!on_every_rank(conserved && placed && exact)) {
        FAIL("step " << step << ": conserved=" << conserved << " placed=" << placed
                     << " exact ids=" << exact);
      }
    }
    // The scenario really exercised what it claims: long jumps took the general path.
    // (With three ranks on a ring every rank is a neighbour of every other: nothing is far.)
    const int far_from_four = scenario.boundary == Boundary::periodic ? 4 : 3;
    if (scenario.jump_probability > 0 && world().size() >= far_from_four) CHECK(far_calls > 0);
    if (scenario.jump_probability == 0) CHECK(far_calls == 0);
    CHECK(walk.exchanger.totals().calls == 1000);
  }
}

TEST_CASE("typed and serialized transport give identical particles after the same run",
          "[migrate][transport]") {
  for (const WalkScenario& scenario : walk_scenarios) {
    INFO("scenario: " << scenario.name);
    Walk<Typed> typed(scenario, 300, 11);
    Walk<Serialized> serialized(scenario, 300, 11);
    bool identical = true;
    for (int step = 1; step <= 300 && identical; ++step) {
      const auto a = typed.step();
      const auto b = serialized.step();
      // Same particles, same order, bit for bit; same particle counts moved.
      identical = typed.mine == serialized.mine && a.particles_sent == b.particles_sent &&
                  a.particles_received == b.particles_received &&
                  a.messages_sent == b.messages_sent;
      if (!identical) UNSCOPED_INFO("first difference at step " << step);
    }
    REQUIRE(on_every_rank(identical));
  }
}

TEST_CASE("a particle that jumps any distance arrives at its owner in the same call",
          "[migrate]") {
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  // Rank r sends one particle to every rank (itself included), the one to (r+k) % p by a
  // jump of k slabs forward and over the periodic wrap: ids encode source and destination.
  std::vector<Particle> mine;
  for (int k = 0; k < p; ++k) {
    const int dest = (me + k) % p;
    const double x = me * (1.0 / p) + k * (1.0 / p) + 0.5 / p;  // may exceed 1: wraps
    mine.push_back({me * 1000 + dest, x, 0.0});
  }
  box.apply_boundaries(mine, &Particle::x);
  const auto stats = exchanger.migrate(mine);
  std::vector<std::int64_t> ids;
  for (const Particle& q : mine) ids.push_back(q.id);
  std::sort(ids.begin(), ids.end());
  std::vector<std::int64_t> expected;
  for (int src = 0; src < p; ++src) expected.push_back(src * 1000 + me);
  CHECK(ids == expected);
  CHECK(all_inside_my_slab(slabs, mine));
  CHECK(stats.particles_sent == static_cast<std::size_t>(p - 1));
  CHECK(stats.particles_received == static_cast<std::size_t>(p - 1));
  if (p >= 4) CHECK(stats.general_path_calls == 1);  // two slabs away is not a neighbour
}

TEST_CASE("with keep_sender_order, arrivals come in ascending source rank, each in its "
          "sender's order",
          "[migrate]") {
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  domdec::ExchangerOptions in_order;
  in_order.keep_sender_order = true;
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x, in_order);
  // Every rank sends three particles to rank 0, numbered in the order they are held.
  std::vector<Particle> mine;
  if (me != 0) {
    for (int i = 0; i < 3; ++i) mine.push_back({me * 10 + i, 0.5 / p, 0.0});
  }
  exchanger.migrate(mine);
  if (me == 0) {
    std::vector<std::int64_t> ids, expected;
    for (const Particle& q : mine) ids.push_back(q.id);
    for (int src = 1; src < p; ++src)
      for (int i = 0; i < 3; ++i) expected.push_back(src * 10 + i);
    CHECK(ids == expected);
  } else {
    CHECK(mine.empty());
  }
}

TEST_CASE("a particle type with heap-owning members migrates over the serialized transport",
          "[migrate][transport]") {
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  Exchanger<TaggedParticle, 1> exchanger(slabs, &TaggedParticle::x);
  static_assert(std::is_same_v<decltype(exchanger)::TransportTag, Serialized>);
  const std::int64_t n = 200;
  auto label_of = [](std::int64_t id) { return "particle-" + std::string(static_cast<std::size_t>(id % 37), '*') + std::to_string(id); };
  std::vector<TaggedParticle> mine;
  for (std::int64_t id = 0; id < n; ++id) {
    const double x = (static_cast<double>(id) + 0.5) / n;
    if (slabs.owner_of(x) != slabs.rank()) continue;
    TaggedParticle t;
    t.id = id;
    t.x = x;
    t.label = label_of(id);
    t.history.assign(static_cast<std::size_t>(id % 5), static_cast<double>(id));
    mine.push_back(t);
  }
  std::mt19937_64 rng(3 + static_cast<std::uint64_t>(slabs.rank()));
  std::uniform_real_distribution<double> jump(-0.7, 0.7);
  for (int step = 0; step < 50; ++step) {
    for (TaggedParticle& t : mine) t.x += jump(rng);
    box.apply_boundaries(mine, &TaggedParticle::x);
    for (TaggedParticle& t : mine) t.history.push_back(t.x);  // grows as it travels
    exchanger.migrate(mine);
  }
  bool intact = all_inside_my_slab(slabs, mine);
  for (const TaggedParticle& t : mine) {
    intact = intact && t.label == label_of(t.id) &&
             t.history.size() == static_cast<std::size_t>(t.id % 5) + 50 &&
             t.history.back() == t.x;
  }
  CHECK(intact);
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == n);
}

TEST_CASE("3-D particles migrate along the chosen axis", "[migrate]") {
  const Domain<3> box({0.0, 0.0, 0.0}, {1.0, 2.0, 3.0}, Boundary::periodic);
  const Decomposition<3> slabs(world(), box, 2);  // slabs along z
  Exchanger<Particle3, 3> typed(slabs, &Particle3::r);
  std::vector<Particle3> mine;
  const std::int64_t n = 300;
  for (std::int64_t id = 0; id < n; ++id) {
    Particle3 q;
    q.id = id;
    q.r = {0.5, 1.0, 3.0 * (static_cast<double>(id) + 0.5) / n};
    q.v = {0.1, -0.2, 0.37 * static_cast<double>(id % 7 + 1)};
    if (slabs.owner_of(q.r) == slabs.rank()) mine.push_back(q);
  }
  for (int step = 0; step < 40; ++step) {
    for (Particle3& q : mine)
      for (int a = 0; a < 3; ++a) q.r[static_cast<std::size_t>(a)] += q.v[static_cast<std::size_t>(a)];
    box.apply_boundaries(mine, &Particle3::r, &Particle3::v);
    typed.migrate(mine);
  }
  const auto slab = slabs.local_bounds();
  CHECK(std::all_of(mine.begin(), mine.end(), [&](const Particle3& q) { return slab.contains(q.r[2]) && box.contains(q.r); }));
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == n);
}

TEST_CASE("messages per rank per migrate do not grow with the number of ranks", "[migrate][cost]") {
  // Local motion on the first s ranks, for every s up to the world size: each rank sends one
  // stream to each distinct neighbour (at most two), whatever s is.
  const int p = world().size(), me = world().rank();
  std::vector<std::size_t> max_messages;
  for (int s = 1; s <= p; ++s) {
    const boost::mpi::communicator group = world().split(me < s ? 0 : 1);
    const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
    const Decomposition<1> slabs(group, box);
    Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
    std::vector<Particle> mine = particles_in_my_slab(slabs, 100 * group.size());
    domdec::MigrationStats total;
    for (int step = 0; step < 20; ++step) {
      // Everyone moves a fifth of a slab, alternately up and down: local motion only.
      const double dx = (step % 2 == 0 ? 0.2 : -0.2) / group.size();
      for (Particle& q : mine) q.x += dx;
      box.apply_boundaries(mine, &Particle::x);
      total += exchanger.migrate(mine);
    }
    CHECK(total.general_path_calls == 0);
    CHECK(total.collectives == total.calls);  // one small allreduce per call, no alltoall
    const std::size_t neighbours = group.size() == 1 ? 0 : group.size() == 2 ? 1 : 2;
    CHECK(total.messages_sent == neighbours * total.calls);
    CHECK(total.messages_received == neighbours * total.calls);
    std::size_t mine_per_call = total.messages_sent / total.calls, worst = 0;
    boost::mpi::all_reduce(group, mine_per_call, worst, boost::mpi::maximum<std::size_t>());
    max_messages.push_back(worst);
  }
  // The worst rank's count reaches two and stays there as ranks are added (seen from the
  // ranks that took part in each group of s).
  for (int s = 3; s <= p; ++s)
    if (me < s) CHECK(max_messages[static_cast<std::size_t>(s) - 1] == 2);
  REQUIRE(on_every_rank(true));
}

TEST_CASE("library messages never match the user's, even with the same tags",
          "[migrate][isolation]") {
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  std::vector<Particle> mine = particles_in_my_slab(slabs, 100);
  // The user sends, on the world communicator and with the library's own tag, a particle-
  // shaped message to the next rank before migrating, and receives after.
  const int tag = domdec::detail::migrate_tag;
  const Particle user_message{-1, 12345.0, static_cast<double>(me)};
  boost::mpi::request pending = world().isend((me + 1) % p, tag, user_message);
  for (Particle& q : mine) q.x += 0.3 / p;  // everyone sends to its upper neighbour
  box.apply_boundaries(mine, &Particle::x);
  exchanger.migrate(mine);
  Particle received;
  world().recv((me + p - 1) % p, tag, received);
  pending.wait();
  CHECK(received.id == -1);
  CHECK(received.x == 12345.0);
  CHECK(received.v == static_cast<double>((me + p - 1) % p));
  CHECK(all_inside_my_slab(slabs, mine));
  CHECK(std::none_of(mine.begin(), mine.end(), [](const Particle& q) { return q.id < 0; }));
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == 100);
}

TEMPLATE_TEST_CASE("payloads larger than the message limit travel in chunks", "[migrate][chunks]",
                   Typed, Serialized) {
  const int p = world().size();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  domdec::ExchangerOptions small;
  small.max_message_bytes = 1000;  // about 40 particles per message
  Exchanger<Particle, 1, TestType> exchanger(slabs, &Particle::x, small);
  const std::int64_t n = 3000;
  std::vector<Particle> mine = particles_in_my_slab(slabs, n);
  const std::uint64_t fingerprint = sum_over_ranks(id_fingerprint(mine));
  // Half a slab up, three times: every particle crosses a boundary at least once.
  domdec::MigrationStats total;
  for (int step = 0; step < 3; ++step) {
    for (Particle& q : mine) q.x += 0.5 / p;
    box.apply_boundaries(mine, &Particle::x);
    total += exchanger.migrate(mine);
  }
  CHECK(all_inside_my_slab(slabs, mine));
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == n);
  CHECK(sum_over_ranks(id_fingerprint(mine)) == fingerprint);
  if (p > 1) CHECK(total.messages_sent > total.bytes_sent / 1000);
}

TEST_CASE("an invalid particle stops migrate on every rank with one clear message",
          "[migrate][errors]") {
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::reflecting);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  std::vector<Particle> mine = particles_in_my_slab(slabs, 40);
  REQUIRE(on_every_rank(!mine.empty()));
  exchanger.migrate(mine);
  // The last rank's second particle becomes NaN; another particle elsewhere also moved.
  const int culprit = p - 1;
  for (Particle& q : mine) q.x = std::min(1.0, q.x + 0.01);
  std::int64_t bad_id = -1;
  if (me == culprit) {
    mine[1].x = std::numeric_limits<double>::quiet_NaN();
    bad_id = mine[1].id;
  }
  const std::vector<Particle> before = mine;
  boost::mpi::broadcast(world(), bad_id, culprit);
  std::string text;
  try {
    exchanger.migrate(mine);
  } catch (const domdec::ParticleError& e) {
    text = e.what();
  }
  CHECK_THAT(text, Catch::Contains("migrate call 2 on rank " + std::to_string(culprit)) &&
                       Catch::Contains("[id " + std::to_string(bad_id) + "]") &&
                       Catch::Contains("nan") && Catch::Contains("Nothing was moved"));
  // Nothing moved, nothing lost (compared bit for bit: the NaN is still there).
  CHECK(mine.size() == before.size());
  CHECK(std::memcmp(mine.data(), before.data(), mine.size() * sizeof(Particle)) == 0);
  // The run can go on once the particle is fixed: nobody is stuck in a collective.
  if (me == culprit) mine[1].x = 0.999;
  CHECK_NOTHROW(exchanger.migrate(mine));
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == 40);
}

TEST_CASE("ranks that build different exchangers all get an error", "[migrate][errors]") {
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  domdec::ExchangerOptions options;
  if (me == p - 1) options.max_message_bytes = 4096;
  if (p == 1) {
    CHECK_NOTHROW(Exchanger<Particle, 1>(slabs, &Particle::x, options));
  } else {
    CHECK_THROWS_WITH((Exchanger<Particle, 1>(slabs, &Particle::x, options)),
                      Catch::Contains("max_message_bytes"));
  }
  REQUIRE(on_every_rank(true));
}
