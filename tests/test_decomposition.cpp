// Decomposition<Dim>: which rank owns which slab, at and around every cut.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "domdec/decomposition.hpp"
#include "support/mpi_test.hpp"

using domdec::Boundary;
using domdec::Decomposition;
using domdec::Domain;
using domdec_test::on_every_rank;
using domdec_test::world;

namespace {
// Every check of ownership against the cuts, on this rank: at each cut, just below it, just
// above it, and in the middle of each slab.
template <int Dim>
void check_ownership_around_every_cut(const Decomposition<Dim>& slabs) {
  const auto& cuts = slabs.cuts();
  const int last = slabs.size() - 1;
  const bool periodic = slabs.domain().boundary(slabs.axis()) == Boundary::periodic;
  for (int r = 0; r <= last; ++r) {
    const double lo = cuts[static_cast<std::size_t>(r)];
    const double hi = cuts[static_cast<std::size_t>(r) + 1];
    if (lo == hi) continue;  // an empty slab owns nothing
    INFO("slab " << r << " = [" << lo << ", " << hi << ")");
    CHECK(slabs.owner_of(lo) == r);                               // a cut belongs to the slab above
    CHECK(slabs.owner_of(std::nextafter(hi, lo)) == r);           // just below the next cut
    CHECK(slabs.owner_of(0.5 * (lo + hi)) == r);
    CHECK(slabs.bounds_of(r).contains(lo));
    CHECK_FALSE(slabs.bounds_of(r).contains(std::nextafter(lo, -1e300)));
  }
  const double upper = cuts.back();
  if (periodic) {
    CHECK_THROWS_AS(slabs.owner_of(upper), domdec::ParticleError);  // wrap first
  } else {
    CHECK(slabs.owner_of(upper) == last);  // the upper wall belongs to the last rank
    CHECK(slabs.bounds_of(last).contains(upper));
  }
}
}  // namespace

TEST_CASE("equal slabs: one per rank, a position on a cut belongs to the higher rank",
          "[decomposition]") {
  for (Boundary rule : {Boundary::periodic, Boundary::reflecting, Boundary::open}) {
    const Domain<1> box({0.0}, {1.0}, rule);
    const Decomposition<1> slabs(world(), box);
    CHECK(slabs.size() == world().size());
    CHECK(slabs.uniform());
    const auto mine = slabs.local_bounds();
    CHECK(mine.lower == Approx(static_cast<double>(world().rank()) / world().size()));
    CHECK(mine.width() == Approx(1.0 / world().size()));
    check_ownership_around_every_cut(slabs);
  }
}

TEST_CASE("ownership agrees with the cuts to the last bit on awkward boxes", "[decomposition]") {
  // A box whose cuts are not exactly representable: the arithmetic guess must be corrected.
  const Domain<1> box({-0.1}, {0.7}, Boundary::open);
  const Decomposition<1> slabs(world(), box);
  check_ownership_around_every_cut(slabs);
  for (int i = 0; i <= 10000; ++i) {
    const double x = -0.1 + 0.8 * i / 10000.0;
    if (x > 0.7) continue;
    const int owner = slabs.owner_of(x);
    CHECK(slabs.bounds_of(owner).contains(x));
  }
}

TEST_CASE("non-uniform and empty slabs", "[decomposition]") {
  const int p = world().size();
  const Domain<2> box({0.0, 10.0}, {1.0, 20.0}, Boundary::reflecting);
  // Slabs along y whose widths grow with the rank: cut r at 10 + 10 (r/p)^2.
  std::vector<double> cuts(static_cast<std::size_t>(p) + 1);
  for (int r = 0; r <= p; ++r) cuts[static_cast<std::size_t>(r)] = 10.0 + 10.0 * (double(r) / p) * (double(r) / p);
  cuts.back() = 20.0;
  const Decomposition<2> slabs(world(), box, cuts, 1);
  CHECK(slabs.axis() == 1);
  CHECK((p == 1 || !slabs.uniform()));
  check_ownership_around_every_cut(slabs);
  CHECK(slabs.owner_of({0.5, 10.0}) == 0);  // only the decomposition axis matters

  if (p >= 3) {
    // Rank 1 gets nothing: its slab is [c, c). Positions at c belong to rank 2.
    std::vector<double> with_empty = slabs.cuts();
    with_empty[2] = with_empty[1];
    const Decomposition<2> gappy(world(), box, with_empty, 1);
    CHECK(gappy.owner_of(with_empty[1]) == 2);
    CHECK_FALSE(gappy.bounds_of(1).contains(with_empty[1]));
    check_ownership_around_every_cut(gappy);
  }
}

TEST_CASE("neighbours wrap on a periodic axis and stop at walls", "[decomposition]") {
  const int p = world().size(), me = world().rank();
  const Decomposition<1> ring(world(), Domain<1>({0.0}, {1.0}, Boundary::periodic));
  REQUIRE(ring.lower_neighbour().has_value());
  REQUIRE(ring.upper_neighbour().has_value());
  CHECK(*ring.lower_neighbour() == (me + p - 1) % p);
  CHECK(*ring.upper_neighbour() == (me + 1) % p);

  const Decomposition<1> line(world(), Domain<1>({0.0}, {1.0}, Boundary::reflecting));
  CHECK(line.lower_neighbour().has_value() == (me > 0));
  CHECK(line.upper_neighbour().has_value() == (me < p - 1));
  if (me > 0) CHECK(*line.lower_neighbour() == me - 1);
  if (me < p - 1) CHECK(*line.upper_neighbour() == me + 1);
}

TEST_CASE("a position outside the box has no owner", "[decomposition]") {
  const Decomposition<1> slabs(world(), Domain<1>({0.0}, {1.0}, Boundary::reflecting));
  CHECK_THROWS_AS(slabs.owner_of(-0.001), domdec::ParticleError);
  CHECK_THROWS_WITH(slabs.owner_of(1.5), Catch::Contains("outside the box"));
  CHECK_THROWS_AS(slabs.owner_of(std::nan("")), domdec::ParticleError);
  CHECK_THROWS_AS(slabs.owner_of(std::numeric_limits<double>::infinity()), domdec::ParticleError);
  CHECK(slabs.owner_or_negative(std::nan("")) == -1);
}

TEST_CASE("the decomposition owns a duplicate of the user's communicator", "[decomposition]") {
  const Decomposition<1> slabs(world(), Domain<1>({0.0}, {1.0}, Boundary::periodic));
  int result = MPI_UNEQUAL;
  MPI_Comm_compare(MPI_Comm(slabs.communicator()), MPI_COMM_WORLD, &result);
  CHECK(result == MPI_CONGRUENT);  // same ranks, different context: messages cannot match
}

TEST_CASE("bad cuts are refused on every rank", "[decomposition][errors]") {
  const Domain<1> box({0.0}, {1.0}, Boundary::open);
  const int p = world().size();
  std::vector<double> too_few(static_cast<std::size_t>(p), 0.0);
  CHECK_THROWS_WITH(Decomposition<1>(world(), box, too_few), Catch::Contains("cuts for"));
  std::vector<double> decreasing(static_cast<std::size_t>(p) + 1, 0.0);
  decreasing.back() = 1.0;
  if (p >= 2) {
    decreasing[1] = 1.5;  // then 0 (or the upper side 1.0 at two ranks): a step down
    CHECK_THROWS_WITH(Decomposition<1>(world(), box, decreasing), Catch::Contains("non-decreasing"));
  }
  std::vector<double> wrong_ends(static_cast<std::size_t>(p) + 1, 0.5);
  wrong_ends.front() = 0.0;
  CHECK_THROWS_WITH(Decomposition<1>(world(), box, wrong_ends), Catch::Contains("box's sides"));
  CHECK_THROWS_WITH(Decomposition<1>(world(), box, 1), Catch::Contains("not an axis"));
}

TEST_CASE("ranks that disagree on the set-up all get an error instead of a hang",
          "[decomposition][errors]") {
  const int p = world().size(), me = world().rank();
  // The last rank has a different box.
  const Domain<1> box({0.0}, {me == p - 1 ? 2.0 : 1.0}, Boundary::open);
  if (p == 1) {
    CHECK_NOTHROW(Decomposition<1>(world(), box));
  } else {
    CHECK_THROWS_WITH(Decomposition<1>(world(), box),
                      Catch::Contains("rank " + std::to_string(p - 1) + " has a different box"));
  }
  // One rank with a bad cut list makes every rank throw, with that rank's reason.
  std::vector<double> cuts(static_cast<std::size_t>(p) + 1);
  for (int r = 0; r <= p; ++r) cuts[static_cast<std::size_t>(r)] = double(r) / p;
  if (me == 0) cuts.pop_back();
  const Domain<1> unit({0.0}, {1.0}, Boundary::open);
  CHECK_THROWS_AS(Decomposition<1>(world(), unit, cuts), domdec::SetupError);
  REQUIRE(on_every_rank(true));  // every rank got here: nobody hung
}

TEST_CASE("set_cuts moves ownership (load balancing)", "[decomposition]") {
  const int p = world().size();
  Decomposition<1> slabs(world(), Domain<1>({0.0}, {1.0}, Boundary::periodic));
  std::vector<double> cuts(static_cast<std::size_t>(p) + 1);
  for (int r = 0; r <= p; ++r) cuts[static_cast<std::size_t>(r)] = std::sqrt(double(r) / p);
  cuts.back() = 1.0;
  slabs.set_cuts(cuts);
  CHECK(slabs.cuts() == cuts);
  check_ownership_around_every_cut(slabs);
  std::vector<double> bad = cuts;
  bad.front() = 0.5;
  CHECK_THROWS_AS(slabs.set_cuts(bad), domdec::SetupError);
  CHECK(slabs.cuts() == cuts);  // unchanged after a refused update
}
