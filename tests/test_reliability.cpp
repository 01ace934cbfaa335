// Reliability: nothing is lost, nothing hangs. Extreme overshoots at the walls, an adversarial
// 10,000-step run of random jumps, set-ups that differ between ranks, payloads cut into many
// chunks, invalid particles and failures of one rank — each ends in the documented outcome on
// every rank (docs/reliability.md says which test proves which guarantee).
#include <catch2/catch.hpp>
#include <mpi.h>

#include <algorithm>
#include <array>
#include <boost/mpi/collectives.hpp>
#include <boost/serialization/array.hpp>
#include <boost/serialization/vector.hpp>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "domdec/domdec.hpp"
#include "support/mpi_test.hpp"
#include "support/particles.hpp"

using domdec::Boundary;
using domdec::Decomposition;
using domdec::Domain;
using domdec::Exchanger;
using domdec::MigrateContext;
using domdec::Serialized;
using domdec::Typed;
using domdec_test::on_every_rank;
using domdec_test::Particle;
using domdec_test::Particle3;
using domdec_test::sum_over_ranks;
using domdec_test::world;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

/// A particle as wide as Particle plus two more doubles (a different size).
struct WideParticle {
  std::int64_t id = 0;
  double x = 0.0;
  double v = 0.0;
  double f = 0.0;
  double m = 0.0;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & v & f & m;
  }
};

/// The same size as Particle, a different type.
struct LookAlikeParticle {
  std::int64_t id = 0;
  double x = 0.0;
  double charge = 0.0;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & charge;
  }
};

/// A typed particle larger than the few-KiB message limits of the chunking tests.
struct BigTypedParticle {
  std::int64_t id = 0;
  double x = 0.0;
  std::array<double, 766> payload{};  // 6144 bytes in all
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & payload;
  }
};

/// A serialized particle whose size varies from a few bytes to tens of KiB.
struct BlobParticle {
  std::int64_t id = 0;
  double x = 0.0;
  std::vector<double> payload;
  std::string label;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & payload & label;
  }
};

}  // namespace

BOOST_IS_MPI_DATATYPE(WideParticle)
BOOST_IS_MPI_DATATYPE(LookAlikeParticle)
BOOST_IS_MPI_DATATYPE(BigTypedParticle)

namespace {

#ifdef DOMDEC_TEST_PLANTED_LEAK
std::int64_t* volatile planted_leak = nullptr;  // each call drops the previous block
#endif

/// The ids of `particles`, in an array of exactly their number (its end is the end of the
/// heap block: DOMDEC_TEST_PLANTED_OVERREAD reads one past it, see tests/CMakeLists.txt).
template <class P>
std::vector<std::int64_t> ids_of(const std::vector<P>& particles) {
  std::vector<std::int64_t> ids(particles.size());
  for (std::size_t i = 0; i < particles.size(); ++i) ids[i] = particles[i].id;
  // Planted bugs, built only into domdec_tests_planted to prove that the sanitizer and
  // valgrind jobs fail on one.
#ifdef DOMDEC_TEST_PLANTED_OVERREAD
  if (!ids.empty()) {
    volatile std::int64_t past_the_end = ids.data()[ids.size()];
    (void)past_the_end;
  }
#endif
#ifdef DOMDEC_TEST_PLANTED_LEAK
  planted_leak = new std::int64_t[4]{};
#endif
  return ids;
}

/// Order-independent fingerprint of a multiset of ids: equal sets give equal sums, a lost,
/// duplicated or altered id changes it (with overwhelming probability).
std::uint64_t id_fingerprint(const std::vector<std::int64_t>& ids) {
  std::uint64_t sum = 0;
  for (std::int64_t id : ids) {
    std::uint64_t h = static_cast<std::uint64_t>(id) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    sum += h * 0xBF58476D1CE4E5B9ull;
  }
  return sum;
}

/// Collective: the ids held over all ranks are exactly 0..n-1, each once.
template <class P>
bool ids_are_exactly(const std::vector<P>& mine, std::int64_t n) {
  std::vector<std::int64_t> all = domdec_test::gather_everywhere(ids_of(mine));
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expected(static_cast<std::size_t>(n));
  std::iota(expected.begin(), expected.end(), 0);
  return all == expected;
}

/// Collective: true when `text` is the same on every rank.
bool same_on_every_rank(const std::string& text) {
  std::vector<std::string> all;
  boost::mpi::all_gather(world(), text, all);
  return std::all_of(all.begin(), all.end(), [&](const std::string& t) { return t == all[0]; });
}

/// Runs `construct` and returns the text of the SetupError it threw ("" if none).
template <class F>
std::string setup_error_of(F&& construct) {
  try {
    construct();
  } catch (const domdec::SetupError& e) {
    return e.what();
  }
  return {};
}

/// The payload a particle carries in these tests, a function of its id, so that corruption
/// on the way is seen.
double payload_of(std::int64_t id) { return 0.25 + 0.5 * static_cast<double>(id % 1000003); }

}  // namespace

// --- 2. Outside the box: any overshoot, every rule ---------------------------------------

TEST_CASE("wrapping is exact for overshoots of up to a million box lengths and total beyond",
          "[domain][reliability]") {
  const Domain<1> box({2.0}, {5.0}, Boundary::periodic);  // length 3
  for (double k : {1.0, 2.0, 7.0, 1e3, 1e6, -1.0, -2.0, -1e3, -1e6}) {
    for (double f : {0.0, 0.25, 1.5, 2.75}) {
      const double x = 2.0 + 3.0 * k + f;
      INFO("k = " << k << " box lengths, f = " << f);
      const double y = box.wrap(x, 0);
      CHECK(box.contains(y, 0));
      // x is exact here (small integers times 3 plus quarters), and so is fmod.
      CHECK(y == 2.0 + f);
    }
  }
  // Far beyond 2^53 box lengths the image is arbitrary but still in the box, never NaN.
  const double max = std::numeric_limits<double>::max();
  for (double x : {1e17, -1e17, 1e300, -1e300, max, -max, std::nextafter(2.0, 0.0)}) {
    INFO("x = " << x);
    CHECK(box.contains(box.wrap(x, 0), 0));
  }
  // A box at the edge of the doubles: x - lower overflows, the result is still in the box.
  const Domain<1> edge({-1.7e308}, {-1e308}, Boundary::periodic);
  for (double x : {max, 1e308, -max}) {
    INFO("x = " << x);
    CHECK(edge.contains(edge.wrap(x, 0), 0));
  }
}

TEST_CASE("reflecting folds any overshoot as repeated bounces, with the right velocity sign",
          "[domain][reliability]") {
  // x = lower + m L + f unfolds to m bounces: even m lands at lower + f with the velocity
  // unchanged, odd m at upper - f with the velocity flipped. For any integer m.
  const Domain<1> box({-1.0}, {1.0}, Boundary::reflecting);  // length 2
  for (double m : {1.0, 2.0, 3.0, 10.0, 11.0, 1e6, 1e6 + 1, -1.0, -2.0, -1e6, -1e6 + 1}) {
    for (double f : {0.25, 0.5, 1.75}) {
      const double x = -1.0 + 2.0 * m + f;
      INFO("m = " << m << ", f = " << f << ", x = " << x);
      const auto [y, flip] = box.reflect(x, 0);
      const bool odd = std::fmod(std::fabs(m), 2.0) == 1.0;
      CHECK(flip == odd);
      CHECK(y == (odd ? 1.0 - f : -1.0 + f));
    }
  }
  const double max = std::numeric_limits<double>::max();
  for (double x : {1e17, -1e17, 1e300, -1e300, max, -max}) {
    INFO("x = " << x);
    const double y = box.reflect(x, 0).first;
    CHECK(y >= -1.0);
    CHECK(y <= 1.0);
  }
  // Near the top of the doubles, 2 * upper overflows: the single bounce must not use it.
  const Domain<1> edge({1e308}, {1.7e308}, Boundary::reflecting);
  CHECK(edge.reflect(1.75e308, 0).first == Approx(1.65e308));
  for (double x : {max, -max, 0.0}) {
    const double y = edge.reflect(x, 0).first;
    CHECK(y >= 1e308);
    CHECK(y <= 1.7e308);
  }
}

TEST_CASE("apply_boundaries: open removes and counts any overshoot, never a NaN or an Inf",
          "[domain][reliability]") {
  for (Boundary rule : {Boundary::open, Boundary::periodic, Boundary::reflecting}) {
    INFO("rule: " << domdec::to_string(rule));
    const Domain<1> box({0.0}, {1.0}, rule);
    std::vector<Particle> ps{{0, 0.5, 1.0},          {1, 1e6 + 0.25, 1.0}, {2, -1e6 - 0.5, 1.0},
                             {3, not_a_number, 1.0}, {4, inf, 1.0},        {5, -inf, 1.0},
                             {6, 1e300, 1.0}};
    const auto counts = box.apply_boundaries(ps, &Particle::x, &Particle::v);
    // The three non-finite particles stay, untouched, for migrate to report.
    std::vector<std::int64_t> kept = ids_of(ps);
    for (std::int64_t id : {3, 4, 5}) CHECK(std::count(kept.begin(), kept.end(), id) == 1);
    for (const Particle& p : ps) {
      if (std::isfinite(p.x)) CHECK(box.contains(p.x, 0));
    }
    if (rule == Boundary::open) {
      CHECK(counts.removed == 3);
      CHECK(kept == std::vector<std::int64_t>{0, 3, 4, 5});
    } else {
      CHECK(counts.removed == 0);
      CHECK(ps.size() == 7);
      CHECK(counts.wrapped + counts.reflected == 3);
    }
    if (rule == Boundary::periodic) CHECK(ps[1].x == Approx(0.25));
    if (rule == Boundary::reflecting) {
      CHECK(ps[1].x == Approx(0.25));  // 1e6 lengths: an even number of bounces
      CHECK(ps[1].v == 1.0);
      CHECK(ps[2].x == Approx(0.5));  // x = -1e6 - 0.5: lower + m L + f with m = -1e6 - 1
      CHECK(ps[2].v == -1.0);
    }
  }
}

TEST_CASE("a box whose length overflows is refused", "[domain][reliability]") {
  CHECK_THROWS_WITH(Domain<1>({-1e308}, {1e308}, Boundary::periodic),
                    Catch::Contains("finite length"));
}

TEST_CASE("an infinite coordinate on an open axis reaches migrate as an error, not a removal",
          "[migrate][errors][reliability]") {
  const int p = world().size();
  const Domain<1> box({0.0}, {1.0}, Boundary::open);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  std::vector<Particle> mine;
  if (slabs.rank() == p - 1) mine.push_back({7, inf, 0.0});
  const auto counts = box.apply_boundaries(mine, &Particle::x);
  CHECK(counts.removed == 0);
  CHECK_THROWS_WITH(exchanger.migrate(mine),
                    Catch::Contains("[id 7]") && Catch::Contains("not a finite number"));
  REQUIRE(on_every_rank(true));
}

// --- 3. Any displacement is delivered: an adversary ---------------------------------------

namespace {

/// One rank's view of the adversarial run: random jumps of random length, landings exactly on
/// cuts and walls, bursts that send everything to one rank, and cuts that move under it.
template <class Transport>
class Adversary {
 public:
  Adversary(std::int64_t n, std::uint64_t seed)
      : box_({0.0}, {1.0}, Boundary::periodic),
        slabs_(world(), box_),
        exchanger_(slabs_, &Particle::x),
        mine_(),
        local_(seed * 7919u + static_cast<std::uint64_t>(world().rank())),
        shared_(seed) {
    for (std::int64_t id = 0; id < n; ++id) {
      const double x = (static_cast<double>(id) + 0.5) / static_cast<double>(n);
      if (slabs_.owner_of(x) == slabs_.rank()) mine_.push_back({id, x, payload_of(id)});
    }
  }

  /// Moves every particle by the adversary's rules, applies the walls, migrates.
  void step(int step) {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::normal_distribution<double> local_step(0.0, 0.02);
    std::uniform_int_distribution<int> any_cut(0, slabs_.size());
    std::uniform_int_distribution<int> lengths(-1000000, 1000000);
    const std::vector<double>& cuts = slabs_.cuts();
    for (Particle& q : mine_) {
      const double u = unit(local_);
      if (u < 0.55) continue;  // stays
      if (u < 0.80) {          // a small step
        q.x += local_step(local_);
      } else if (u < 0.90) {  // jumps up to 4 box lengths either way
        q.x += 8.0 * unit(local_) - 4.0;
      } else if (u < 0.95) {  // lands exactly on a cut, or a hair below
        const double c = cuts[static_cast<std::size_t>(any_cut(local_))];
        q.x = unit(local_) < 0.5 ? c : std::nextafter(c, -inf);
      } else {  // up to a million box lengths away
        q.x += static_cast<double>(lengths(local_)) + unit(local_);
      }
    }
    if (step % 250 == 0) {  // a burst: every particle to the owner of one random point
      const double target = unit(shared_);
      for (Particle& q : mine_) q.x = target + 1e-9 * unit(local_);
    }
    const auto counts = box_.apply_boundaries(mine_, &Particle::x);
    wrapped_ += counts.wrapped;
    if (step % 500 == 0) move_cuts(step);
    exchanger_.migrate(mine_);
  }

  /// Every particle here is in this rank's slab and carries its own payload.
  bool locally_sound() const {
    const domdec::Interval slab = slabs_.local_bounds();
    return std::all_of(mine_.begin(), mine_.end(), [&](const Particle& q) {
      return slab.contains(q.x) && q.v == payload_of(q.id);
    });
  }

  const std::vector<Particle>& particles() const { return mine_; }
  const domdec::MigrationStats& totals() const { return exchanger_.totals(); }
  std::size_t wrapped() const { return wrapped_; }

 private:
  // New cuts, the same on every rank (shared generator): random, with empty slabs now and
  // then, and back to equal slabs every 2000 steps.
  void move_cuts(int step) {
    const int p = slabs_.size();
    std::vector<double> cuts(static_cast<std::size_t>(p) + 1);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (int r = 0; r <= p; ++r) cuts[static_cast<std::size_t>(r)] = static_cast<double>(r) / p;
    if (step % 2000 != 0) {
      for (int r = 1; r < p; ++r) cuts[static_cast<std::size_t>(r)] = unit(shared_);
      std::sort(cuts.begin() + 1, cuts.end() - 1);
      if (p >= 3 && unit(shared_) < 0.5) cuts[2] = cuts[1];  // rank 1 owns nothing
    }
    cuts.front() = 0.0;
    cuts.back() = 1.0;
    slabs_.set_cuts(cuts);
  }

  Domain<1> box_;
  Decomposition<1> slabs_;
  Exchanger<Particle, 1, Transport> exchanger_;
  std::vector<Particle> mine_;
  std::mt19937_64 local_;   // this rank's moves
  std::mt19937_64 shared_;  // the same on every rank: bursts and cuts
  std::size_t wrapped_ = 0;
};

}  // namespace

TEMPLATE_TEST_CASE("adversarial: 10,000 steps of random jumps keep every id, checked every step",
                   "[migrate][reliability][adversarial]", Typed, Serialized) {
  // ~2.5 s per transport at 4 ranks on two cores (measured; docs/reliability.md).
  const int steps = 10000;
  const std::int64_t n = 1000;
  Adversary<TestType> run(n, 2024);
  const std::uint64_t fingerprint = sum_over_ranks(id_fingerprint(ids_of(run.particles())));
  REQUIRE(on_every_rank(ids_are_exactly(run.particles(), n)));
  int failed_at = 0;
  for (int step = 1; step <= steps && failed_at == 0; ++step) {
    run.step(step);
    // Every step, one allreduce: the count, the id fingerprint, and how many ranks hold a
    // particle outside their slab or with a payload that changed on the way.
    std::array<std::uint64_t, 3> sums{static_cast<std::uint64_t>(run.particles().size()),
                                      id_fingerprint(ids_of(run.particles())),
                                      run.locally_sound() ? 0u : 1u};
    MPI_Allreduce(MPI_IN_PLACE, sums.data(), 3, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    bool ok = sums[0] == static_cast<std::uint64_t>(n) && sums[1] == fingerprint && sums[2] == 0;
    // The full set of ids, every 1000 steps and at the end.
    if (ok && (step % 1000 == 0 || step == steps)) ok = ids_are_exactly(run.particles(), n);
    if (!ok) {
      failed_at = step;
      UNSCOPED_INFO("step " << step << ": count " << sums[0] << " of " << n << ", fingerprint "
                            << (sums[1] == fingerprint ? "ok" : "WRONG")
                            << ", ranks with misplaced or altered particles: " << sums[2]);
    }
  }
  REQUIRE(failed_at == 0);  // the same verdict on every rank: the conditions were global
  // The adversary did what it claims: wraps, far jumps (from 4 ranks on a ring), traffic.
  CHECK(sum_over_ranks(run.wrapped()) > 0);
  CHECK(run.totals().calls == static_cast<std::size_t>(steps));
  if (world().size() >= 4) CHECK(run.totals().general_path_calls > 0);
  if (world().size() >= 2) CHECK(sum_over_ranks(run.totals().particles_sent) > 0);
}

// --- 4. Inconsistent set-up: an error on every rank, at construction ---------------------

TEST_CASE("set-ups that differ between ranks fail on every rank with the same clear message",
          "[decomposition][migrate][errors][reliability]") {
  const int p = world().size(), me = world().rank();
  const int odd = p > 1 ? p - 1 : -1;  // the rank that differs (none with one rank)
  const std::string who = "rank " + std::to_string(odd);
  const Domain<1> unit({0.0}, {1.0}, Boundary::periodic);

  SECTION("a different box") {
    const Domain<1> box({0.0}, {me == odd ? 2.0 : 1.0}, Boundary::periodic);
    const std::string text = setup_error_of([&] { Decomposition<1>(world(), box); });
    CHECK(same_on_every_rank(text));
    if (p > 1) CHECK_THAT(text, Catch::Contains(who + " has a different box than rank 0"));
    if (p == 1) CHECK(text.empty());
  }
  SECTION("different boundary rules") {
    const Domain<1> box({0.0}, {1.0}, me == odd ? Boundary::reflecting : Boundary::periodic);
    const std::string text = setup_error_of([&] { Decomposition<1>(world(), box); });
    CHECK(same_on_every_rank(text));
    if (p > 1) CHECK_THAT(text, Catch::Contains(who + " has a different boundary rules"));
  }
  SECTION("a different number of slabs") {
    // The odd rank cuts the box into one slab more than there are ranks.
    const int slabs = me == odd ? p + 1 : p;
    std::vector<double> cuts(static_cast<std::size_t>(slabs) + 1);
    for (int r = 0; r <= slabs; ++r) cuts[static_cast<std::size_t>(r)] = double(r) / slabs;
    const std::string text = setup_error_of([&] { Decomposition<1>(world(), unit, cuts); });
    CHECK(same_on_every_rank(text));
    if (p > 1) {
      CHECK_THAT(text,
                 Catch::StartsWith("domdec: " + who + " of " + std::to_string(p) + ": ") &&
                     Catch::Contains("needs " + std::to_string(p + 1) + " cuts for " +
                                     std::to_string(p) + " ranks, got " + std::to_string(p + 2)));
    }
  }
  SECTION("a different decomposition axis") {
    const Domain<3> box({0.0, 0.0, 0.0}, {1.0, 1.0, 1.0}, Boundary::periodic);
    const std::string text =
        setup_error_of([&] { Decomposition<3>(world(), box, me == odd ? 2 : 0); });
    CHECK(same_on_every_rank(text));
    if (p > 1) CHECK_THAT(text, Catch::Contains(who + " has axis = 2 where rank 0 has 0"));
  }
  SECTION("a different dimension") {
    std::string text;
    if (me == odd) {
      const Domain<2> box({0.0, 0.0}, {1.0, 1.0}, Boundary::periodic);
      text = setup_error_of([&] { Decomposition<2>(world(), box); });
    } else {
      text = setup_error_of([&] { Decomposition<1>(world(), unit); });
    }
    CHECK(same_on_every_rank(text));
    if (p > 1) CHECK_THAT(text, Catch::Contains(who + " has dimension = 2 where rank 0 has 1"));
  }
  REQUIRE(on_every_rank(true));  // every rank got here: nobody hung
}

TEST_CASE("exchangers that differ between ranks fail on every rank with the same clear message",
          "[migrate][errors][reliability]") {
  const int p = world().size(), me = world().rank();
  const int odd = p > 1 ? p - 1 : -1;
  const std::string who = "rank " + std::to_string(odd);
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);

  SECTION("typed on most ranks, serialized on one") {
    const std::string text = setup_error_of([&] {
      if (me == odd) {
        Exchanger<Particle, 1, Serialized> serialized(slabs, &Particle::x);
      } else {
        Exchanger<Particle, 1, Typed> typed(slabs, &Particle::x);
      }
    });
    CHECK(same_on_every_rank(text));
    if (p > 1) {
      CHECK_THAT(text, Catch::Contains(who + " has transport (0 typed, 1 serialized) = 1 where "
                                             "rank 0 has 0"));
    }
  }
  SECTION("a particle type of a different size on one rank") {
    const std::string text = setup_error_of([&] {
      if (me == odd) {
        Exchanger<WideParticle, 1> wide(slabs, &WideParticle::x);
      } else {
        Exchanger<Particle, 1> narrow(slabs, &Particle::x);
      }
    });
    CHECK(same_on_every_rank(text));
    if (p > 1) {
      CHECK_THAT(text,
                 Catch::Contains(who + " has particle size in bytes = 40 where rank 0 has 24") &&
                     Catch::Contains(who + " has a different particle type"));
    }
  }
  SECTION("a particle type of the same size but another name on one rank") {
    const std::string text = setup_error_of([&] {
      if (me == odd) {
        Exchanger<LookAlikeParticle, 1> other(slabs, &LookAlikeParticle::x);
      } else {
        Exchanger<Particle, 1> usual(slabs, &Particle::x);
      }
    });
    CHECK(same_on_every_rank(text));
    if (p > 1) {
      CHECK_THAT(text, Catch::Contains(who + " has a different particle type than rank 0") &&
                           !Catch::Contains("particle size"));
    }
  }
  SECTION("a message limit that MPI cannot count, on one rank") {
    domdec::ExchangerOptions options;
    if (me == odd || p == 1) options.max_message_bytes = std::size_t{1} << 31;  // INT_MAX + 1
    const std::string text =
        setup_error_of([&] { Exchanger<Particle, 1>(slabs, &Particle::x, options); });
    CHECK(same_on_every_rank(text));
    CHECK_THAT(text, Catch::Contains("rank " + std::to_string(p > 1 ? odd : 0) + " of ") &&
                         Catch::Contains("max_message_bytes must be between 1 and 2147483647") &&
                         Catch::Contains("got 2147483648"));
  }
  SECTION("a message limit of zero") {
    domdec::ExchangerOptions options;
    options.max_message_bytes = 0;
    const std::string text =
        setup_error_of([&] { Exchanger<Particle, 1>(slabs, &Particle::x, options); });
    CHECK(same_on_every_rank(text));
    CHECK_THAT(text, Catch::Contains("rank 0 of ") && Catch::Contains("got 0"));
  }
  REQUIRE(on_every_rank(true));
}

// --- 5. Huge payloads travel in chunks -------------------------------------------------

namespace {

/// Messages a stream of `bytes` takes with chunks of `chunk` bytes: full chunks, then one
/// shorter (possibly empty) message that ends the stream.
std::size_t stream_messages(std::size_t bytes, std::size_t chunk) { return bytes / chunk + 1; }

}  // namespace

TEMPLATE_TEST_CASE("streams of every length against every chunk size arrive whole",
                   "[migrate][chunks][reliability]", Typed, Serialized) {
  // Each rank sends k particles to its upper neighbour, for k = 0..6 and chunk sizes that
  // divide the stream exactly, leave one byte over, or hold less than one particle.
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  constexpr bool typed = std::is_same_v<TestType, Typed>;
  for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{24}, std::size_t{25},
                            std::size_t{32}, std::size_t{48}, std::size_t{4096}}) {
    domdec::ExchangerOptions options;
    options.max_message_bytes = chunk;
    options.keep_sender_order = true;  // so the arrivals can be compared one by one
    Exchanger<Particle, 1, TestType> exchanger(slabs, &Particle::x, options);
    for (std::size_t k = 0; k <= 6; ++k) {
      INFO("chunk " << chunk << " bytes, " << k << " particles per stream");
      const int above = (me + 1) % p;
      const domdec::Interval target = slabs.bounds_of(above);
      std::vector<Particle> mine;
      for (std::size_t i = 0; i < k; ++i) {
        const std::int64_t id = me * 100 + static_cast<std::int64_t>(i);
        mine.push_back({id, target.lower + 0.5 * target.width(), payload_of(id)});
      }
      const domdec::MigrationStats stats = exchanger.migrate(mine);
      // Received: the k particles of the rank below, intact, in order.
      const int below = (me + p - 1) % p;
      std::vector<Particle> expected;
      for (std::size_t i = 0; i < k; ++i) {
        const std::int64_t id = below * 100 + static_cast<std::int64_t>(i);
        expected.push_back({id, target.lower + 0.5 * target.width(), payload_of(id)});
      }
      if (p == 1) {
        CHECK(stats.messages_sent == 0);
        continue;
      }
      REQUIRE(mine.size() == k);
      for (std::size_t i = 0; i < k; ++i) {
        CHECK(mine[i].id == expected[i].id);
        CHECK(mine[i].v == expected[i].v);
      }
      // The message count the stream protocol promises, to each neighbour.
      const std::size_t per_message =
          typed ? std::max<std::size_t>(1, chunk / sizeof(Particle)) : chunk;
      const std::size_t units = typed ? k : sizeof(std::uint64_t) + k * 3 * sizeof(double);
      const std::size_t neighbours = p == 2 ? 1 : 2;
      const std::size_t to_above = stream_messages(units, per_message);
      const std::size_t to_below = stream_messages(typed ? 0 : sizeof(std::uint64_t), per_message);
      CHECK(stats.messages_sent == (neighbours == 1 ? to_above : to_above + to_below));
    }
  }
  REQUIRE(on_every_rank(true));
}

TEST_CASE("typed particles larger than the message limit travel one per message",
          "[migrate][chunks][reliability]") {
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  domdec::ExchangerOptions options;
  options.max_message_bytes = 4096;  // smaller than one particle (6144 bytes)
  Exchanger<BigTypedParticle, 1> exchanger(slabs, &BigTypedParticle::x, options);
  const std::int64_t n = 1500;
  std::vector<BigTypedParticle> mine;
  for (std::int64_t id = 0; id < n; ++id) {
    const double x = (static_cast<double>(id) + 0.5) / static_cast<double>(n);
    if (slabs.owner_of(x) != me) continue;
    BigTypedParticle b;
    b.id = id;
    b.x = x;
    for (std::size_t i = 0; i < b.payload.size(); ++i)
      b.payload[i] = static_cast<double>(id) + 1e-3 * i;
    mine.push_back(b);
  }
  // Everything moves by 2.5 slabs: far (from 4 ranks), across the wrap, many messages.
  domdec::MigrationStats total;
  for (int step = 0; step < 2; ++step) {
    for (BigTypedParticle& b : mine) b.x += 2.5 / p;
    box.apply_boundaries(mine, &BigTypedParticle::x);
    total += exchanger.migrate(mine);
  }
  bool intact = true;
  for (const BigTypedParticle& b : mine) {
    for (std::size_t i = 0; i < b.payload.size(); ++i)
      intact = intact && b.payload[i] == static_cast<double>(b.id) + 1e-3 * i;
  }
  CHECK(intact);
  CHECK(ids_are_exactly(mine, n));
  if (p > 1) CHECK(total.messages_sent >= total.particles_sent);  // at least one per particle
}

TEST_CASE("serialized particles of up to 24 KiB cross a 4 KiB limit in many chunks",
          "[migrate][chunks][reliability]") {
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  domdec::ExchangerOptions options;
  options.max_message_bytes = 4096;
  Exchanger<BlobParticle, 1> exchanger(slabs, &BlobParticle::x, options);
  static_assert(std::is_same_v<decltype(exchanger)::TransportTag, Serialized>);
  const std::int64_t n = 2000;
  auto fill = [](BlobParticle& b) {
    // Sizes from nothing to 3000 doubles, most small: a few particles exceed several chunks.
    const std::size_t length = b.id % 97 == 0 ? 3000 : static_cast<std::size_t>(b.id % 13) * 7;
    b.payload.resize(length);
    for (std::size_t i = 0; i < length; ++i) b.payload[i] = static_cast<double>(b.id) * 0.5 + i;
    b.label = std::string(static_cast<std::size_t>(b.id % 29), static_cast<char>('a' + b.id % 26));
  };
  auto intact = [](const BlobParticle& b) {
    BlobParticle expected;
    expected.id = b.id;
    expected.x = b.x;
    const std::size_t length = b.id % 97 == 0 ? 3000 : static_cast<std::size_t>(b.id % 13) * 7;
    expected.payload.resize(length);
    for (std::size_t i = 0; i < length; ++i)
      expected.payload[i] = static_cast<double>(b.id) * 0.5 + i;
    expected.label =
        std::string(static_cast<std::size_t>(b.id % 29), static_cast<char>('a' + b.id % 26));
    return b.payload == expected.payload && b.label == expected.label;
  };
  std::vector<BlobParticle> mine;
  for (std::int64_t id = 0; id < n; ++id) {
    BlobParticle b;
    b.id = id;
    b.x = (static_cast<double>(id) + 0.5) / static_cast<double>(n);
    if (slabs.owner_of(b.x) != me) continue;
    fill(b);
    mine.push_back(b);
  }
  std::mt19937_64 rng(99 + static_cast<std::uint64_t>(me));
  std::uniform_real_distribution<double> jump(-1.5, 1.5);
  domdec::MigrationStats total;
  for (int step = 0; step < 5; ++step) {
    for (BlobParticle& b : mine) b.x += jump(rng);
    box.apply_boundaries(mine, &BlobParticle::x);
    total += exchanger.migrate(mine);
  }
  CHECK(std::all_of(mine.begin(), mine.end(), intact));
  CHECK(ids_are_exactly(mine, n));
  if (p > 1) {
    CHECK(total.bytes_sent > 100 * 4096);  // many chunks' worth
    CHECK(total.messages_sent >= total.bytes_sent / 4096);
  }
}

// --- 1 and 6. Invalid particles and failing ranks: the same error on every rank ---------

TEST_CASE(
    "an invalid particle's error names the step, the rank, the particle, its old and new "
    "position and the slab",
    "[migrate][errors][reliability]") {
  const int p = world().size(), me = world().rank();
  const int culprit = std::min(1, p - 1);
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  std::vector<Particle> mine;
  for (std::int64_t id = 0; id < 100; ++id) {
    const double x = (static_cast<double>(id) + 0.5) / 100.0;
    if (slabs.owner_of(x) == me) mine.push_back({id, x, 0.003});
  }
  // The caller's context, as a driver would keep it: the step and an explanation that looks
  // up what the caller recorded about the culprit.
  struct Poisoned {
    std::int64_t id = -1;
    double old_x = 0.0;
  } poisoned;
  MigrateContext<Particle> context;
  context.explain = [&](const Particle& q, std::size_t) {
    return q.id == poisoned.id ? domdec::detail::message("Before step ", context.step,
                                                         " it was at ", poisoned.old_x, ".")
                               : std::string();
  };
  std::string text;
  for (int step = 1; step <= 5; ++step) {
    context.step = step;
    for (Particle& q : mine) {
      const double old_x = q.x;
      q.x += q.v;
      if (step == 5 && me == culprit && poisoned.id < 0) {
        q.x = not_a_number;
        poisoned = {q.id, old_x};
      }
    }
    box.apply_boundaries(mine, &Particle::x);
    try {
      exchanger.migrate(mine, context);
    } catch (const domdec::ParticleError& e) {
      text = e.what();
      CHECK(step == 5);
      break;
    }
  }
  boost::mpi::broadcast(world(), poisoned.id, culprit);
  boost::mpi::broadcast(world(), poisoned.old_x, culprit);
  const domdec::Interval slab = slabs.bounds_of(culprit);
  CHECK(same_on_every_rank(text));
  CHECK_THAT(text, Catch::StartsWith("domdec: step 5, migrate call 5 on rank " +
                                     std::to_string(culprit) + " of " + std::to_string(p) + ":") &&
                       Catch::Contains("[id " + std::to_string(poisoned.id) + "]") &&
                       Catch::Contains("is at (nan)") && Catch::Contains("not a finite number") &&
                       Catch::Contains(domdec::detail::message("This rank's slab is [", slab.lower,
                                                               ", ", slab.upper, ")")) &&
                       Catch::Contains(domdec::detail::message("Before step 5 it was at ",
                                                               poisoned.old_x, ".")) &&
                       Catch::EndsWith("Nothing was moved."));
  REQUIRE(on_every_rank(true));
}

TEST_CASE("a hook that throws while the error is being shared does not hang the others",
          "[migrate][errors][reliability]") {
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  exchanger.describe_particles_with(
      [](const Particle&) -> std::string { throw std::runtime_error("no description today"); });
  MigrateContext<Particle> context;
  context.explain = [](const Particle&, std::size_t) -> std::string { throw 42; };
  std::vector<Particle> mine;
  if (me == p - 1) mine.push_back({3, inf, 0.0});
  std::string text;
  try {
    exchanger.migrate(mine, context);
  } catch (const domdec::ParticleError& e) {
    text = e.what();
  }
  CHECK(same_on_every_rank(text));
  CHECK_THAT(text, Catch::Contains("[describe_particles_with threw: no description today]") &&
                       Catch::Contains("(MigrateContext::explain threw)") &&
                       Catch::Contains("is at (inf)"));
  REQUIRE(on_every_rank(true));
}

TEST_CASE("a NaN on an axis that is not the decomposition axis is found too",
          "[migrate][errors][reliability]") {
  const int p = world().size(), me = world().rank();
  const Domain<3> box({0.0, 0.0, 0.0}, {1.0, 1.0, 1.0}, Boundary::periodic);
  const Decomposition<3> slabs(world(), box, 0);  // slabs along x
  Exchanger<Particle3, 3> exchanger(slabs, &Particle3::r);
  std::vector<Particle3> mine;
  for (std::int64_t id = 0; id < 30; ++id) {
    Particle3 q;
    q.id = id;
    q.r = {(static_cast<double>(id) + 0.5) / 30.0, 0.5, 0.5};
    if (slabs.owner_of(q.r) == me) mine.push_back(q);
  }
  REQUIRE(on_every_rank(!mine.empty()));
  std::string text;
  if (me == p - 1) mine.back().r[1] = not_a_number;  // inside its slab along x: only y is broken
  try {
    exchanger.migrate(mine);
  } catch (const domdec::ParticleError& e) {
    text = e.what();
  }
  CHECK(same_on_every_rank(text));
  CHECK_THAT(text, Catch::Contains("coordinate along axis 1, nan, is not a finite number"));
  // A finite y outside the box (apply_boundaries forgotten) is refused as well.
  if (me == p - 1) mine.back().r[1] = 1.5;
  text.clear();
  try {
    exchanger.migrate(mine);
  } catch (const domdec::ParticleError& e) {
    text = e.what();
  }
  CHECK_THAT(text, Catch::Contains("coordinate along axis 1, 1.5, is outside the box [0, 1)"));
  if (me == p - 1) mine.back().r[1] = 0.5;
  CHECK_NOTHROW(exchanger.migrate(mine));
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == 30);
}

TEST_CASE("a rank whose step failed hands its exception to migrate and every rank stops with it",
          "[migrate][errors][reliability]") {
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  std::vector<Particle> mine;
  for (std::int64_t id = 0; id < 60; ++id) {
    const double x = (static_cast<double>(id) + 0.5) / 60.0;
    if (slabs.owner_of(x) == me) mine.push_back({id, x, 0.4});  // far moves, for traffic
  }
  MigrateContext<Particle> context;
  context.step = 7;
  // The user's step throws on the last rank, and on rank 0 too when there are three or more:
  // the lowest failing rank's message wins.
  const bool fails = me == p - 1 || (p >= 3 && me == 0);
  const int reported = p >= 3 ? 0 : p - 1;
  try {
    for (Particle& q : mine) q.x += q.v;
    if (fails) throw std::runtime_error("force field diverged on rank " + std::to_string(me));
  } catch (...) {
    context.failure = std::current_exception();
  }
  box.apply_boundaries(mine, &Particle::x);
  const std::vector<Particle> before = mine;
  std::string text;
  bool right_type = false;
  try {
    exchanger.migrate(mine, context);
  } catch (const domdec::ParticleError&) {
  } catch (const domdec::Error& e) {
    right_type = true;
    text = e.what();
  }
  CHECK(right_type);
  CHECK(same_on_every_rank(text));
  CHECK(text == "domdec: step 7, migrate call 1: rank " + std::to_string(reported) + " of " +
                    std::to_string(p) + " failed before migrate: force field diverged on rank " +
                    std::to_string(reported) + " (every rank stops here; nothing was moved)");
  // Nothing was moved on any rank, and the Exchanger is still usable.
  CHECK(mine.size() == before.size());
  CHECK(std::memcmp(mine.data(), before.data(), mine.size() * sizeof(Particle)) == 0);
  CHECK_NOTHROW(exchanger.migrate(mine));
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == 60);

  // A failure that is not a std::exception is carried too; it outranks an invalid particle.
  MigrateContext<Particle> odd;
  if (me == 0) {
    try {
      throw 17;
    } catch (...) {
      odd.failure = std::current_exception();
    }
  }
  if (me == p - 1) mine.push_back({999, not_a_number, 0.0});
  text.clear();
  try {
    exchanger.migrate(mine, odd);
  } catch (const domdec::ParticleError&) {
    text = "ParticleError";
  } catch (const domdec::Error& e) {
    text = e.what();
  }
  CHECK_THAT(text, Catch::Contains("rank 0 of " + std::to_string(p) +
                                   " failed before migrate: an exception that is not a "
                                   "std::exception"));
  REQUIRE(on_every_rank(true));
}

TEMPLATE_TEST_CASE("an update that throws inside migrate's pass stops every rank, nothing moved",
                   "[migrate][errors][reliability]", Typed, Serialized) {
  const int p = world().size(), me = world().rank();
  const Domain<1> box({0.0}, {1.0}, Boundary::periodic);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1, TestType> exchanger(slabs, &Particle::x);
  std::vector<Particle> mine;
  for (std::int64_t id = 0; id < 200; ++id) {
    const double x = (static_cast<double>(id) + 0.5) / 200.0;
    // Even ids stay, odd ids move one slab up: stayers and leavers alternate, so the pass
    // swaps from its first leaver on.
    if (slabs.owner_of(x) == me) mine.push_back({id, x, id % 2 == 0 ? 0.0 : 1.0 / p});
  }
  REQUIRE(on_every_rank(mine.size() >= 4));
  // The last rank's update throws at its middle particle: the cursors meet there, so it is
  // among the last particles the pass updates, after many swaps and packings.
  const std::int64_t fatal_id = me == p - 1 ? mine[mine.size() / 2].id : -1;
  const auto update = [&](Particle& q) {
    if (q.id == fatal_id) throw std::runtime_error("diverged");
    q.x = box.wrap(q.x + q.v, 0);
  };
  std::vector<std::int64_t> ids_before;
  for (const Particle& q : mine) ids_before.push_back(q.id);
  MigrateContext<Particle> context;
  context.step = 3;
  std::string text;
  try {
    exchanger.migrate(mine, update, context);
  } catch (const domdec::ParticleError&) {
    text = "ParticleError";
  } catch (const domdec::Error& e) {
    text = e.what();
  }
  CHECK(same_on_every_rank(text));
  CHECK(text == "domdec: step 3, migrate call 1: rank " + std::to_string(p - 1) + " of " +
                    std::to_string(p) + " failed in the update of migrate: diverged" +
                    " (every rank stops here; nothing was moved)");
  // Every particle is still here, in its input order (updated or not), and the buckets are
  // empty: the next migrate moves exactly the particles it should.
  std::vector<std::int64_t> ids_after;
  for (const Particle& q : mine) ids_after.push_back(q.id);
  CHECK(ids_after == ids_before);
  for (Particle& q : mine) q.x = box.wrap(q.x, 0);
  CHECK_NOTHROW(exchanger.migrate(mine));
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == 200);
  const auto slab = slabs.local_bounds();
  CHECK(std::all_of(mine.begin(), mine.end(), [&](const Particle& q) { return slab.contains(q.x); }));
  REQUIRE(on_every_rank(true));
}
