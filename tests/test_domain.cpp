// Domain<Dim>: the box and its boundary rules. Pure geometry, so every rank checks the same
// facts on its own; the harness still runs it at 1-4 ranks like everything else.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "domdec/domain.hpp"
#include "support/particles.hpp"

using domdec::Boundary;
using domdec::Domain;
using domdec_test::Particle;
using domdec_test::Particle3;

TEST_CASE("a box needs finite lower < upper on every axis", "[domain]") {
  CHECK_THROWS_AS(Domain<1>({1.0}, {1.0}, Boundary::open), domdec::SetupError);
  CHECK_THROWS_AS(Domain<2>({0.0, 2.0}, {1.0, 1.0}, Boundary::open), domdec::SetupError);
  CHECK_THROWS_WITH(Domain<3>({0.0, 0.0, std::nan("")}, {1.0, 1.0, 1.0}, Boundary::open),
                    Catch::Contains("axis 2"));
  const Domain<2> ok({-1.0, 0.0}, {1.0, 4.0}, {Boundary::periodic, Boundary::open});
  CHECK(ok.length(0) == 2.0);
  CHECK(ok.length(1) == 4.0);
  CHECK(ok.boundary(0) == Boundary::periodic);
  CHECK(ok.boundary(1) == Boundary::open);
}

TEST_CASE("a periodic axis is [lower, upper), the others are closed", "[domain]") {
  const Domain<2> box({0.0, 0.0}, {1.0, 1.0}, {Boundary::periodic, Boundary::reflecting});
  CHECK(box.contains(0.0, 0));
  CHECK_FALSE(box.contains(1.0, 0));
  CHECK(box.contains(1.0, 1));
  CHECK_FALSE(box.contains(std::nan(""), 1));
  CHECK_FALSE(box.contains({0.5, 1.5}));
  CHECK(box.contains({0.5, 1.0}));
}

TEST_CASE("wrapping brings any finite coordinate into [lower, upper)", "[domain]") {
  const Domain<1> box({2.0}, {5.0}, Boundary::periodic);
  CHECK(box.wrap(3.0, 0) == 3.0);
  CHECK(box.wrap(5.0, 0) == 2.0);
  CHECK(box.wrap(5.5, 0) == Approx(2.5));
  CHECK(box.wrap(1.5, 0) == Approx(4.5));
  CHECK(box.wrap(2.0 + 3.0 * 7 + 0.25, 0) == Approx(2.25));  // seven box lengths away
  CHECK(box.wrap(2.0 - 3.0 * 4 - 0.25, 0) == Approx(4.75));
  const double tiny_below = std::nextafter(2.0, 0.0);  // rounds onto `upper`: must become lower
  const double w = box.wrap(tiny_below, 0);
  CHECK(w >= 2.0);
  CHECK(w < 5.0);
  CHECK(std::isnan(box.wrap(std::nan(""), 0)));
}

TEST_CASE("reflecting mirrors the position and says whether the velocity flips", "[domain]") {
  const Domain<1> box({0.0}, {1.0}, Boundary::reflecting);
  CHECK(box.reflect(0.5, 0) == std::pair<double, bool>{0.5, false});
  CHECK(box.reflect(1.25, 0).first == Approx(0.75));
  CHECK(box.reflect(1.25, 0).second);
  CHECK(box.reflect(-0.25, 0).first == Approx(0.25));
  CHECK(box.reflect(-0.25, 0).second);
  // Overshoot by more than a box length: folded as repeated bounces.
  CHECK(box.reflect(2.25, 0).first == Approx(0.25));  // bounced at 1 and at 0: two flips
  CHECK_FALSE(box.reflect(2.25, 0).second);
  CHECK(box.reflect(3.25, 0).first == Approx(0.75));  // three bounces
  CHECK(box.reflect(3.25, 0).second);
  CHECK(box.reflect(-1.5, 0).first == Approx(0.5));
  CHECK_FALSE(box.reflect(-1.5, 0).second);
  CHECK(box.reflect(1.0, 0) == std::pair<double, bool>{1.0, false});  // the wall is inside
}

TEST_CASE("apply_boundaries wraps, reflects with the velocity, and removes and counts open leavers",
          "[domain]") {
  SECTION("1-D reflecting flips the velocity") {
    const Domain<1> box({0.0}, {1.0}, Boundary::reflecting);
    std::vector<Particle> ps{{0, 1.2, 0.5}, {1, 0.5, 0.1}, {2, -0.1, -0.3}};
    const auto counts = box.apply_boundaries(ps, &Particle::x, &Particle::v);
    CHECK(counts.reflected == 2);
    CHECK(counts.removed == 0);
    REQUIRE(ps.size() == 3);
    CHECK(ps[0].x == Approx(0.8));
    CHECK(ps[0].v == -0.5);
    CHECK(ps[1].v == 0.1);
    CHECK(ps[2].x == Approx(0.1));
    CHECK(ps[2].v == 0.3);
  }
  SECTION("without a velocity only the position changes") {
    const Domain<1> box({0.0}, {1.0}, Boundary::reflecting);
    std::vector<Particle> ps{{0, 1.2, 0.5}};
    box.apply_boundaries(ps, &Particle::x);
    CHECK(ps[0].x == Approx(0.8));
    CHECK(ps[0].v == 0.5);
  }
  SECTION("1-D open removes leavers, keeps order, counts them") {
    const Domain<1> box({0.0}, {1.0}, Boundary::open);
    std::vector<Particle> ps{{0, 0.1, 0}, {1, 1.5, 0}, {2, 0.2, 0}, {3, -0.5, 0}, {4, 1.0, 0}};
    const auto counts = box.apply_boundaries(ps, &Particle::x);
    CHECK(counts.removed == 2);
    REQUIRE(ps.size() == 3);
    CHECK(ps[0].id == 0);
    CHECK(ps[1].id == 2);
    CHECK(ps[2].id == 4);  // exactly on the upper wall: still inside
  }
  SECTION("a NaN is left for migrate to report, never silently removed") {
    const Domain<1> box({0.0}, {1.0}, Boundary::open);
    std::vector<Particle> ps{{0, std::nan(""), 0}};
    const auto counts = box.apply_boundaries(ps, &Particle::x);
    CHECK(counts.removed == 0);
    CHECK(ps.size() == 1);
  }
  SECTION("2-D: each axis its own rule") {
    const Domain<2> box({0.0, 0.0}, {1.0, 2.0}, {Boundary::periodic, Boundary::open});
    struct P2 {
      std::array<double, 2> r;
      std::array<double, 2> v;
    };
    std::vector<P2> ps{{{1.25, 1.0}, {0, 0}}, {{0.5, 2.5}, {0, 0}}, {{-0.25, 0.5}, {0, 0}}};
    const auto counts = box.apply_boundaries(ps, &P2::r, &P2::v);
    CHECK(counts.wrapped == 2);
    CHECK(counts.removed == 1);
    REQUIRE(ps.size() == 2);
    CHECK(ps[0].r[0] == Approx(0.25));
    CHECK(ps[1].r[0] == Approx(0.75));
  }
  SECTION("3-D: reflecting on z flips only v_z, periodic on x and y") {
    const Domain<3> box({0.0, 0.0, 0.0}, {1.0, 1.0, 1.0},
                        {Boundary::periodic, Boundary::periodic, Boundary::reflecting});
    std::vector<Particle3> ps(1);
    ps[0].r = {1.5, -0.25, 1.1};
    ps[0].v = {1.0, 2.0, 3.0};
    const auto counts = box.apply_boundaries(ps, &Particle3::r, &Particle3::v);
    CHECK(counts.wrapped == 2);
    CHECK(counts.reflected == 1);
    CHECK(ps[0].r[0] == Approx(0.5));
    CHECK(ps[0].r[1] == Approx(0.75));
    CHECK(ps[0].r[2] == Approx(0.9));
    CHECK(ps[0].v == std::array<double, 3>{1.0, 2.0, -3.0});
    CHECK(box.contains(ps[0].r));
  }
}

TEST_CASE("a coordinate read at its byte offset is the one get() reads, scalar or array",
          "[domain]") {
  const domdec::Coordinates<Particle, 1> x(&Particle::x);
  const domdec::Coordinates<Particle3, 3> r(&Particle3::r);
  const Particle p{7, 0.25, -1.5};
  Particle3 q;
  q.r = {1.0, 2.0, 3.0};
  CHECK(domdec::Coordinates<Particle, 1>::at(p, x.byte_offset(p, 0)) == x.get(p, 0));
  for (int a = 0; a < 3; ++a)
    CHECK(domdec::Coordinates<Particle3, 3>::at(q, r.byte_offset(q, a)) == r.get(q, a));
  const Particle other{8, 0.75, 0.0};  // the offset is the same for every particle
  CHECK(domdec::Coordinates<Particle, 1>::at(other, x.byte_offset(p, 0)) == 0.75);
}

TEST_CASE("apply_boundaries on an open box keeps exactly the particles inside, in their order",
          "[domain]") {
  const Domain<1> box({0.0}, {1.0}, Boundary::open);
  std::vector<Particle> ps;
  for (std::int64_t id = 0; id < 1000; ++id) {
    double x = -0.5 + 2.0 * static_cast<double>((id * 7919) % 1000) / 1000.0;  // [-0.5, 1.5)
    if (id % 97 == 0) x = 1.0;                                // exactly on the closed upper wall
    if (id % 101 == 0) x = 0.0;                               // and the lower one
    if (id % 89 == 0) x = std::nextafter(1.0, 2.0);          // one ulp outside
    if (id % 211 == 0) x = std::numeric_limits<double>::quiet_NaN();  // left for migrate
    ps.push_back({id, x, 0.0});
  }
  std::vector<std::int64_t> expected;
  for (const Particle& p : ps)
    if ((p.x >= 0.0 && p.x <= 1.0) || std::isnan(p.x)) expected.push_back(p.id);
  const auto counts = box.apply_boundaries(ps, &Particle::x);
  std::vector<std::int64_t> kept;
  for (const Particle& p : ps) kept.push_back(p.id);
  CHECK(kept == expected);
  CHECK(counts.removed == 1000 - expected.size());
  CHECK(counts.removed > 0);
}

TEST_CASE("apply_boundaries_to puts one particle back as apply_boundaries does, removing none",
          "[domain]") {
  const Domain<2> box({0.0, 0.0}, {1.0, 1.0}, {Boundary::reflecting, Boundary::open});
  struct P2 {
    std::array<double, 2> r;
    std::array<double, 2> v;
  };
  const std::vector<P2> start{{{1.25, 0.5}, {1, 1}},     // reflected on x, v_x flips
                              {{0.5, 0.5}, {1, 1}},      // inside: untouched
                              {{-3.5, 0.5}, {1, 1}},     // folded over several box lengths
                              {{0.5, 1.5}, {1, 1}},      // leaves through the open side
                              {{std::nan(""), 0.5}, {1, 1}}};  // left for migrate to report
  std::vector<P2> one_by_one = start, whole = start;
  domdec::BoundaryCounts counts;
  std::vector<bool> leaves;
  for (P2& p : one_by_one) leaves.push_back(box.apply_boundaries_to(p, &P2::r, &P2::v, counts));
  const domdec::BoundaryCounts expected = box.apply_boundaries(whole, &P2::r, &P2::v);
  CHECK(leaves == std::vector<bool>{false, false, false, true, false});
  CHECK(counts.reflected == expected.reflected);
  CHECK(counts.reflected == 2);
  CHECK(counts.removed == 0);  // the caller's to count and remove
  REQUIRE(one_by_one.size() == 5);  // nothing was removed
  REQUIRE(whole.size() == 4);
  for (std::size_t i : {0u, 1u, 2u}) {
    CHECK(one_by_one[i].r == whole[i].r);
    CHECK(one_by_one[i].v == whole[i].v);
  }
  CHECK(std::isnan(one_by_one[4].r[0]));
  // Without a velocity only positions change.
  P2 q{{1.25, 0.5}, {1, 1}};
  domdec::BoundaryCounts position_only;
  CHECK_FALSE(box.apply_boundaries_to(q, &P2::r, position_only));
  CHECK(q.r[0] == Approx(0.75));
  CHECK(q.v[0] == 1.0);
}
