// Ordered output: every rank's text or values arrive on the root in rank order, nothing lost or
// altered, whatever the root; a gather that cannot be carried fails on every rank together.
#include <catch2/catch.hpp>
#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "domdec/domdec.hpp"
#include "support/mpi_test.hpp"
#include "support/particles.hpp"

using domdec_test::on_every_rank;
using domdec_test::Particle;
using domdec_test::world;

namespace {

/// A text that differs from rank to rank in length and content, with a '\0' and a newline
/// inside, so a text cut or joined at the wrong place is noticed. Rank 1's is empty.
std::string text_of(int rank) {
  if (rank == 1) return {};
  std::string text = "rank " + std::to_string(rank) + ":";
  text += std::string(static_cast<std::size_t>(7 * rank + 1), static_cast<char>('a' + rank % 26));
  text += '\0';
  text += "\nsecond line of rank " + std::to_string(rank);
  return text;
}

}  // namespace

TEST_CASE("gather_strings_to_root brings every rank's text to the root in rank order",
          "[ordered_output]") {
  const int p = world().size(), me = world().rank();
  for (int root : {0, p - 1}) {
    const std::vector<std::string> texts =
        domdec::gather_strings_to_root(world(), text_of(me), root);
    if (me == root) {
      REQUIRE(texts.size() == static_cast<std::size_t>(p));
      for (int r = 0; r < p; ++r) CHECK(texts[static_cast<std::size_t>(r)] == text_of(r));
    } else {
      CHECK(texts.empty());
    }
  }
}

TEST_CASE(
    "print_in_rank_order prints each rank's text on the root, in rank order, never two "
    "ranks on one line",
    "[ordered_output]") {
  const int p = world().size(), me = world().rank();
  // Rank 0's text ends with a newline (none is added), rank 1's is empty (prints nothing),
  // the others' do not (one is added).
  auto line_of = [](int r) {
    return r == 0 ? std::string("first\n") : r == 1 ? std::string() : "rank " + std::to_string(r);
  };
  for (int root : {0, p - 1}) {
    std::ostringstream out;
    out << "before|";
    domdec::print_in_rank_order(world(), line_of(me), out, root);
    std::string expected = "before|";
    if (me == root) {
      expected += "first\n";                                                       // as given
      for (int r = 2; r < p; ++r) expected += "rank " + std::to_string(r) + "\n";  // rank 1: none
    }
    CHECK(out.str() == expected);
  }
}

TEST_CASE("print_in_rank_order keeps a rank's several lines together", "[ordered_output]") {
  const int p = world().size(), me = world().rank();
  const std::string mine =
      "rank " + std::to_string(me) + " line 1\nrank " + std::to_string(me) + " line 2";
  std::ostringstream out;
  domdec::print_in_rank_order(world(), mine, out);
  if (me == 0) {
    std::string expected;
    for (int r = 0; r < p; ++r)
      expected += "rank " + std::to_string(r) + " line 1\nrank " + std::to_string(r) + " line 2\n";
    CHECK(out.str() == expected);
  } else {
    CHECK(out.str().empty());
  }
}

TEST_CASE("gather_to_root concatenates plain values in rank order", "[ordered_output]") {
  const int p = world().size(), me = world().rank();
  auto values_of = [](int r) {  // rank r holds r + 1 particles; rank 0 one, rank 1 two, ...
    std::vector<Particle> v;
    for (int i = 0; i <= r; ++i) v.push_back({100 * r + i, 0.5 * r, -1.0 * i});
    return v;
  };
  for (int root : {0, p - 1}) {
    const std::vector<Particle> all = domdec::gather_to_root(world(), values_of(me), root);
    if (me == root) {
      std::vector<Particle> expected;
      for (int r = 0; r < p; ++r) {
        const std::vector<Particle> part = values_of(r);
        expected.insert(expected.end(), part.begin(), part.end());
      }
      CHECK(all == expected);
    } else {
      CHECK(all.empty());
    }
  }
  // Every rank contributing nothing is fine too.
  CHECK(domdec::gather_to_root(world(), std::vector<double>{}).empty());
}

TEST_CASE("large texts arrive whole", "[ordered_output]") {
  const int p = world().size(), me = world().rank();
  const std::string mine(std::size_t{1} << 20, static_cast<char>('A' + me % 26));  // 1 MiB
  const std::vector<std::string> texts = domdec::gather_strings_to_root(world(), mine);
  if (me == 0) {
    REQUIRE(texts.size() == static_cast<std::size_t>(p));
    for (int r = 0; r < p; ++r)
      CHECK(texts[static_cast<std::size_t>(r)] ==
            std::string(std::size_t{1} << 20, static_cast<char>('A' + r % 26)));
  }
}

TEST_CASE("a gather too large for one message is refused on every rank with one message",
          "[ordered_output][errors]") {
  const int p = world().size(), me = world().rank();
  // The real limit is 2^31 - 1 bytes; a limit of 10 bytes exercises the same decision. The
  // last rank alone brings the total over it.
  const std::size_t mine = me == p - 1 ? 11 : 0;
  std::string text;
  try {
    domdec::detail::plan_gather(MPI_Comm(world()), mine, 0, "test", 10);
  } catch (const domdec::CommunicationError& e) {
    text = e.what();
  }
  CHECK(text == "domdec: test: the ranks contribute 11 bytes in total (rank " +
                    std::to_string(p - 1) +
                    " the most: 11), more than one gather can carry (10 bytes); gather in parts");
  // Nobody was left inside a collective: the next one completes on every rank.
  REQUIRE(on_every_rank(true));
}

TEST_CASE("a root that is not a rank is refused before any communication",
          "[ordered_output][errors]") {
  const int p = world().size();
  CHECK_THROWS_AS(domdec::print_in_rank_order(world(), "x", std::cout, p), domdec::SetupError);
  CHECK_THROWS_WITH(domdec::gather_strings_to_root(world(), "x", -1),
                    Catch::Contains("root -1 is not a rank"));
  REQUIRE(on_every_rank(true));
}
