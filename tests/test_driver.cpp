// Driver: the step loop gives the serial result at any rank count, catches lost and duplicated
// particles, turns an error on one rank into the same error on every rank, calls observers at
// the steps they asked for, prints progress and a summary on rank 0 only, and allocates nothing
// in steady state. Also: the allgather strategy, the random stream, the id tally, the writers.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "domdec/detail/format.hpp"
#include "domdec/domdec.hpp"
#include "domdec/random.hpp"
#include "support/allocation_counter.hpp"
#include "support/mpi_test.hpp"
#include "support/particles.hpp"

using domdec::AllgatherExchanger;
using domdec::Boundary;
using domdec::Decomposition;
using domdec::Domain;
using domdec::Driver;
using domdec::DriverOptions;
using domdec::Exchanger;
using domdec::MigrateContext;
using domdec::RandomStream;
using domdec::Serialized;
using domdec::StepInfo;
using domdec::Typed;
using domdec_test::gather_everywhere;
using domdec_test::on_every_rank;
using domdec_test::Particle;
using domdec_test::sum_over_ranks;
using domdec_test::world;

namespace {

constexpr std::uint64_t seed = 2024;

/// Particle `id` at the start: position uniform in [0, 1), velocity normal, from its own
/// random stream — the same on every rank.
Particle initial_particle(std::int64_t id) {
  RandomStream random(seed, static_cast<std::uint64_t>(id), 0);
  const double x = random.uniform();
  const double v = 0.02 * random.normal();
  return {id, x, v};
}

/// Rank r creates ids r, r + P, r + 2P, ... anywhere in the box (the Driver places them).
std::vector<Particle> some_particles(std::int64_t n) {
  std::vector<Particle> mine;
  mine.reserve(static_cast<std::size_t>(2 * n));  // room: the steady state never grows it
  for (std::int64_t id = world().rank(); id < n; id += world().size())
    mine.push_back(initial_particle(id));
  return mine;
}

/// The physics of the tests: ballistic motion plus a random kick keyed by (id, step).
void kick(Particle& p, std::int64_t step) {
  RandomStream noise(seed, static_cast<std::uint64_t>(p.id), static_cast<std::uint64_t>(step), 1);
  p.x += p.v + 0.01 * noise.normal();
}

/// A Driver and everything it needs, over a reflecting box [0, 1].
template <template <class, int, class> class Migrator = Exchanger, class Transport = Typed>
struct Box {
  Domain<1> box{{0.0}, {1.0}, Boundary::reflecting};
  Decomposition<1> slabs{world(), box};
  Migrator<Particle, 1, Transport> migrator{slabs, &Particle::x};
  std::ostringstream log;  // this rank's progress and summary
  Driver<Migrator<Particle, 1, Transport>> driver;

  explicit Box(DriverOptions options = quiet_options())
      : driver(migrator, &Particle::v, with_log(options)) {}

  DriverOptions with_log(DriverOptions options) {
    options.log = &log;
    return options;
  }
  static DriverOptions quiet_options() {
    DriverOptions o;
    o.quiet = true;
    o.summary = false;
    return o;
  }
};

/// Runs `what`; returns the message of the exception of type E it threw ("" if none).
template <class E, class F>
std::string message_of(F&& what) {
  try {
    what();
  } catch (const E& e) {
    return e.what();
  }
  return {};
}

bool all_inside_my_slab(const Decomposition<1>& slabs, const std::vector<Particle>& ps) {
  const auto mine = slabs.local_bounds();
  return std::all_of(ps.begin(), ps.end(), [&](const Particle& p) { return mine.contains(p.x); });
}

std::vector<Particle> sorted_everywhere(const std::vector<Particle>& mine) {
  std::vector<Particle> all = gather_everywhere(mine);
  std::sort(all.begin(), all.end(),
            [](const Particle& a, const Particle& b) { return a.id < b.id; });
  return all;
}

/// Collective: true on every rank when every rank holds the same text.
bool same_text_everywhere(const std::string& text) {
  std::vector<std::string> all;
  boost::mpi::all_gather(world(), text, all);
  return on_every_rank(
      std::all_of(all.begin(), all.end(), [&](const std::string& t) { return t == all[0]; }));
}

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

/// A particle without an id: the Driver checks counts only and cannot name it by id.
struct Anonymous {
  double x = 0.0;
  double v = 0.0;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar& x& v;
  }
};

bool same_bits(const Particle& a, const Particle& b) {
  return a.id == b.id && std::memcmp(&a.x, &b.x, sizeof a.x) == 0 &&
         std::memcmp(&a.v, &b.v, sizeof a.v) == 0;
}

}  // namespace

// ---- The loop ---------------------------------------------------------------------------------

TEST_CASE("the Driver's result is the serial result, bit for bit, at any number of ranks",
          "[driver]") {
  const std::int64_t n = 1000, steps = 200;
  Box<> b;
  std::vector<Particle> mine = some_particles(n);
  bool always_in_my_slab = true;
  b.driver.observe(1, [&](const std::vector<Particle>& ps, const StepInfo&) {
    always_in_my_slab = always_in_my_slab && all_inside_my_slab(b.slabs, ps);
  });
  const domdec::RunSummary summary = b.driver.run(mine, steps, kick);

  // The same physics on one process, particle by particle, without the library's loop.
  std::vector<Particle> serial;
  for (std::int64_t id = 0; id < n; ++id) {
    Particle p = initial_particle(id);
    for (std::int64_t s = 1; s <= steps; ++s) {
      kick(p, s);
      const auto [x, flip] = b.box.reflect(p.x, 0);
      p.x = x;
      if (flip) p.v = -p.v;
    }
    serial.push_back(p);
  }
  const std::vector<Particle> all = sorted_everywhere(mine);
  REQUIRE(on_every_rank(all.size() == serial.size()));
  std::size_t differing = 0;
  for (std::size_t i = 0; i < all.size(); ++i) differing += same_bits(all[i], serial[i]) ? 0 : 1;
  CHECK(differing == 0);
  CHECK(always_in_my_slab);
  CHECK(summary.particles == static_cast<std::uint64_t>(n));
  CHECK(summary.steps == steps);
  CHECK(summary.ranks == world().size());
  CHECK(summary.particle_steps == static_cast<std::uint64_t>(n * steps));
  CHECK(summary.reflected > 0);  // the walls were hit: the test exercises reflection
  CHECK(b.driver.step() == steps);
}

TEST_CASE("the Driver runs a 3-D periodic box cut along z, wrapping and conserving", "[driver]") {
  using domdec_test::Particle3;
  const Domain<3> box({0.0, 0.0, 0.0}, {1.0, 2.0, 3.0}, Boundary::periodic);
  const Decomposition<3> slabs(world(), box, 2);
  Exchanger<Particle3, 3> exchanger(slabs, &Particle3::r);
  DriverOptions options = Box<>::quiet_options();
  options.check_every = 10;
  Driver driver(exchanger, &Particle3::v, options);
  std::vector<Particle3> mine;
  for (std::int64_t id = world().rank(); id < 500; id += world().size()) {
    RandomStream random(seed, static_cast<std::uint64_t>(id), 0);
    Particle3 p;
    p.id = id;
    for (std::size_t a = 0; a < 3; ++a) {
      p.r[a] = random.uniform(0.0, box.upper(static_cast<int>(a)));
      p.v[a] = 0.05 * random.normal();
    }
    mine.push_back(p);
  }
  const domdec::RunSummary summary = driver.run(mine, 100, [](Particle3& p) {
    for (std::size_t a = 0; a < 3; ++a) p.r[a] += p.v[a];
  });
  const auto slab = slabs.local_bounds();
  CHECK(std::all_of(mine.begin(), mine.end(), [&](const Particle3& p) {
    return slab.contains(p.r[2]) && box.contains(p.r);
  }));
  CHECK(summary.particles == 500u);
  CHECK(summary.wrapped > 0);
  CHECK(summary.checks == 10);
}

TEST_CASE("the conservation check stops a run that lost a particle, naming the step and counts",
          "[driver][conservation]") {
  DriverOptions options = Box<>::quiet_options();
  options.check_every = 5;
  Box<> b(options);
  std::vector<Particle> mine = some_particles(1000);
  const int last = world().size() - 1;
  // A functor that deletes one particle on the last rank at step 7.
  auto deleting = [&](std::vector<Particle>& ps, std::int64_t step) {
    for (Particle& p : ps) kick(p, step);
    if (step == 7 && world().rank() == last && !ps.empty()) ps.pop_back();
  };
  const std::string text =
      message_of<domdec::ConservationError>([&] { b.driver.run(mine, 20, deleting); });
  REQUIRE(on_every_rank(!text.empty()));  // every rank threw it
  CHECK_THAT(text, Catch::Contains("conservation check failed after step 10") &&
                       Catch::Contains("999 particles where 1000 were expected") &&
                       Catch::Contains("1 lost") && Catch::Contains("after the check of step 5"));
  CHECK(b.driver.step() == 9);  // step 10 did not complete
}

TEST_CASE("the conservation check catches a duplicated particle and a changed id",
          "[driver][conservation]") {
  DriverOptions options = Box<>::quiet_options();
  options.check_every = 4;
  const int last = world().size() - 1;
  SECTION("a duplicate: one too many") {
    Box<> b(options);
    std::vector<Particle> mine = some_particles(1000);
    const std::string text = message_of<domdec::ConservationError>([&] {
      b.driver.run(mine, 10, [&](std::vector<Particle>& ps, std::int64_t step) {
        for (Particle& p : ps) kick(p, step);
        if (step == 2 && world().rank() == last && !ps.empty()) ps.push_back(ps.front());
      });
    });
    REQUIRE(on_every_rank(!text.empty()));
    CHECK_THAT(text, Catch::Contains("after step 4") &&
                         Catch::Contains("1001 particles where 1000 were expected") &&
                         Catch::Contains("1 too many"));
  }
  SECTION("the same count with a wrong id: the checksum sees it") {
    Box<> b(options);
    std::vector<Particle> mine = some_particles(1000);
    const std::string text = message_of<domdec::ConservationError>([&] {
      b.driver.run(mine, 10, [&](std::vector<Particle>& ps, std::int64_t step) {
        for (Particle& p : ps) kick(p, step);
        if (step == 5 && world().rank() == last && !ps.empty()) ps.front().id += 100000;
      });
    });
    REQUIRE(on_every_rank(!text.empty()));
    CHECK_THAT(text, Catch::Contains("after step 8") &&
                         Catch::Contains("1000 particles where 1000 were expected") &&
                         Catch::Contains("the count is right but the ids are not"));
  }
}

TEST_CASE("particles that leave through an open side are accounted for, not reported lost",
          "[driver][conservation]") {
  const Domain<1> box({0.0}, {1.0}, Boundary::open);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  DriverOptions options;
  options.check_every = 1;  // every step: the expected count is the start minus the leavers
  options.quiet = true;
  std::ostringstream log;
  options.log = &log;
  Driver driver(exchanger, options);
  std::vector<Particle> mine = some_particles(1000);
  const domdec::RunSummary summary = driver.run(mine, 50, kick);
  const auto left = sum_over_ranks(static_cast<std::uint64_t>(mine.size()));
  CHECK(summary.removed > 0);  // some did leave: the test means something
  CHECK(summary.removed < 1000);
  CHECK(summary.removed + left == 1000);
  CHECK(summary.particles == left);
  CHECK(summary.initial_particles == 1000u);
  CHECK(summary.checks == 50);
  // The summary says how many left, and that the checks expected that.
  if (world().rank() == 0) {
    CHECK_THAT(log.str(),
               Catch::Contains(domdec::detail::message("Boundaries: 0 reflected, 0 wrapped, ",
                                                       summary.removed, " removed (open sides)")) &&
                   Catch::Contains(domdec::detail::message("Open sides: ", summary.removed,
                                                           " of 1000 particles left the box, ",
                                                           left, " remain")) &&
                   Catch::Contains("Conservation: 50 checks of the particle count and id checksum "
                                   "(every 1 steps; expected: the start minus those that left): "
                                   "all passed"));
  }
  // A particle that disappears besides those is still caught, with the leavers accounted for.
  mine = some_particles(1000);
  const int last = world().size() - 1;
  driver.options().summary = false;
  const std::string text = message_of<domdec::ConservationError>([&] {
    driver.run(mine, 50, [&](std::vector<Particle>& ps, std::int64_t step) {
      for (Particle& p : ps) kick(p, step);
      if (step == 70 && world().rank() == last && !ps.empty()) ps.pop_back();  // run 2
    });
  });
  REQUIRE(on_every_rank(!text.empty()));
  CHECK_THAT(text, Catch::Contains("conservation check failed after step 70") &&
                       Catch::Contains("that left through open sides") &&
                       Catch::Contains("1 lost"));
}

TEMPLATE_TEST_CASE("a functor that throws on one rank stops every rank in that same step",
                   "[driver][errors]", (Box<Exchanger, Typed>), (Box<AllgatherExchanger, Typed>)) {
  DriverOptions options = Box<>::quiet_options();
  options.check_every = 4;  // the failure is at step 3, not a check point: no waiting for one
  TestType b(options);
  std::vector<Particle> mine = some_particles(1000);
  const int p = world().size(), last = p - 1;
  std::size_t before_step_3 = 0;
  const std::string text = message_of<domdec::RunError>([&] {
    b.driver.run(mine, 20, [&](std::vector<Particle>& ps, std::int64_t step) {
      if (step == 3) before_step_3 = ps.size();
      for (Particle& q : ps) {
        if (step == 3 && world().rank() == last && q.id % 2 == 1)
          throw std::runtime_error("boom: negative mass");
        kick(q, step);
      }
    });
  });
  REQUIRE(on_every_rank(!text.empty()));
  CHECK(same_text_everywhere(text));
  CHECK_THAT(text, Catch::StartsWith("domdec: step 3, ") &&
                       Catch::Contains("migrate call 4: rank " + std::to_string(last) + " of " +
                                       std::to_string(p) +
                                       " failed before migrate: the propagation functor threw "
                                       "std::runtime_error: boom: negative mass (every rank stops "
                                       "here; nothing was moved)"));
  CHECK(b.driver.step() == 2);          // every rank stopped in step 3
  CHECK(mine.size() == before_step_3);  // nothing migrated, nothing removed
  // The Driver is usable again afterwards (no error left pending, collectives still match).
  mine = some_particles(1000);
  const domdec::RunSummary again = b.driver.run(mine, 5, kick);
  CHECK(again.particles == 1000u);
  CHECK(b.driver.step() == 7);

  // An exception that is not a std::exception, from a per-particle functor on rank 0.
  mine = some_particles(1000);
  const std::string odd = message_of<domdec::RunError>([&] {
    b.driver.run(mine, 10, [&](Particle& q, std::int64_t step) {
      if (step == 9 && world().rank() == 0) throw 42;
      kick(q, step);
    });
  });
  CHECK(same_text_everywhere(odd));
  CHECK_THAT(odd, Catch::StartsWith("domdec: step 9, ") &&
                      Catch::Contains(": rank 0 of " + std::to_string(p) +
                                      " failed before migrate: the propagation functor threw an "
                                      "exception that is not a std::exception"));
  CHECK(b.driver.step() == 8);
}

TEMPLATE_TEST_CASE(
    "a NaN from the functor names the particle, the step, the rank, its old and new position, "
    "its velocity and the slab, on every rank",
    "[driver][errors]", (Box<Exchanger, Typed>), (Box<AllgatherExchanger, Typed>)) {
  TestType b;
  std::vector<Particle> mine = some_particles(1000);
  const int p = world().size();
  const int culprit = std::min(1, p - 1);
  struct Broken {
    std::int64_t id = -1;
    double old_x = 0.0;
    double v = 0.0;
  } broken;
  const std::string text = message_of<domdec::ParticleError>([&] {
    b.driver.run(mine, 10, [&](Particle& q, std::int64_t step) {
      const double x = q.x;
      kick(q, step);
      if (step == 5 && world().rank() == culprit && broken.id < 0 && q.id % 3 == 2) {
        broken = {q.id, x, q.v};
        q.x = not_a_number;
      }
    });
  });
  boost::mpi::broadcast(world(), broken.id, culprit);
  boost::mpi::broadcast(world(), broken.old_x, culprit);
  boost::mpi::broadcast(world(), broken.v, culprit);
  REQUIRE(on_every_rank(!text.empty() && broken.id >= 0));
  CHECK(same_text_everywhere(text));
  const domdec::Interval slab = b.slabs.bounds_of(culprit);
  using domdec::detail::message;
  CHECK_THAT(text, Catch::StartsWith("domdec: step 5, ") &&
                       Catch::Contains(message("on rank ", culprit, " of ", p)) &&
                       Catch::Contains(message("[id ", broken.id, "] is at (nan)")) &&
                       Catch::Contains(message("slab is [", slab.lower, ", ", slab.upper)) &&
                       Catch::Contains(message("In step 5 the propagation functor moved it from (",
                                               broken.old_x, ") to (nan); its velocity is (",
                                               broken.v, ").")) &&
                       Catch::EndsWith("Nothing was moved."));
  CHECK(b.driver.step() == 4);
}

TEST_CASE("with check_positions off a NaN is still stopped in its step, without the old position",
          "[driver][errors]") {
  DriverOptions options = Box<>::quiet_options();
  options.check_positions = false;
  Box<> b(options);
  std::vector<Particle> mine = some_particles(1000);
  const int culprit = world().size() - 1;
  bool done = false;
  const std::string text = message_of<domdec::ParticleError>([&] {
    b.driver.run(mine, 10, [&](Particle& q, std::int64_t step) {
      kick(q, step);
      if (step == 6 && world().rank() == culprit && !done) {
        done = true;
        q.x = not_a_number;
      }
    });
  });
  REQUIRE(on_every_rank(!text.empty()));
  CHECK(same_text_everywhere(text));
  CHECK_THAT(text, Catch::StartsWith("domdec: step 6, migrate call 7 on rank " +
                                     std::to_string(culprit)) &&
                       Catch::Contains("is at (nan)") &&
                       Catch::Contains("(DriverOptions::check_positions is off, so the Driver did "
                                       "not record where it was before step 6.)"));
  CHECK(b.driver.step() == 5);
}

TEST_CASE("the broken particle is found by id when open sides removed particles before it",
          "[driver][errors]") {
  const Domain<1> box({0.0}, {1.0}, Boundary::open);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  Driver driver(exchanger, &Particle::v, Box<>::quiet_options());
  std::vector<Particle> mine = some_particles(1000);
  const int culprit = world().size() - 1;
  // In step 4 on the culprit rank: the first particle leaves through the open side, the second
  // becomes NaN. After the boundary rule the NaN particle has moved up one index.
  int calls = 0;
  std::int64_t gone = -1, broken = -1;
  double old_x = 0.0;
  const std::string text = message_of<domdec::ParticleError>([&] {
    driver.run(mine, 10, [&](Particle& q, std::int64_t step) {
      const double x = q.x;
      q.x += 0.001 * q.v;
      if (step != 4 || world().rank() != culprit) return;
      if (calls == 0) {
        q.x = 1.5;
        gone = q.id;
      } else if (calls == 1) {
        q.x = -std::numeric_limits<double>::infinity();
        broken = q.id;
        old_x = x;
      }
      ++calls;
    });
  });
  boost::mpi::broadcast(world(), broken, culprit);
  boost::mpi::broadcast(world(), gone, culprit);
  boost::mpi::broadcast(world(), old_x, culprit);
  REQUIRE(on_every_rank(!text.empty()));
  using domdec::detail::message;
  CHECK_THAT(text, Catch::Contains(message("[id ", broken, "] is at (-inf)")) &&
                       Catch::Contains(message("In step 4 the propagation functor moved it from (",
                                               old_x, ") to (-inf)")));
  CHECK_THAT(text, !Catch::Contains(message("[id ", gone, "]")));
}

TEST_CASE("without ids the broken particle is matched by its index and position",
          "[driver][errors]") {
  const Domain<1> box({0.0}, {1.0}, Boundary::reflecting);
  const Decomposition<1> slabs(world(), box);
  Exchanger<Anonymous, 1, Serialized> exchanger(slabs, &Anonymous::x);
  Driver driver(exchanger, &Anonymous::v, Box<>::quiet_options());
  std::vector<Anonymous> mine;
  for (std::int64_t id = world().rank(); id < 300; id += world().size()) {
    const Particle q = initial_particle(id);
    mine.push_back({q.x, q.v});
  }
  const int culprit = world().size() - 1;
  int calls = 0;
  double old_x = 0.0;
  const std::string text = message_of<domdec::ParticleError>([&] {
    driver.run(mine, 10, [&](Anonymous& q, std::int64_t step) {
      const double x = q.x;
      q.x += q.v;
      if (step == 3 && world().rank() == culprit && calls++ == 2) {
        old_x = x;
        q.x = not_a_number;
      }
    });
  });
  boost::mpi::broadcast(world(), old_x, culprit);
  REQUIRE(on_every_rank(!text.empty()));
  CHECK_THAT(text,
             Catch::Contains("particle 2 of ") &&
                 Catch::Contains(domdec::detail::message(
                     "In step 3 the propagation functor moved it from (", old_x, ") to (nan)")));
}

TEST_CASE("a NaN from a whole-vector functor is a ParticleError on every rank, naming the step",
          "[driver][errors]") {
  Box<> b;
  std::vector<Particle> mine = some_particles(1000);
  const int last = world().size() - 1;
  const std::string text = message_of<domdec::ParticleError>([&] {
    b.driver.run(mine, 10, [&](std::vector<Particle>& ps, std::int64_t step) {
      for (Particle& q : ps) kick(q, step);
      if (step == 6 && world().rank() == last && !ps.empty())
        ps.back().x = std::numeric_limits<double>::quiet_NaN();
    });
  });
  REQUIRE(on_every_rank(!text.empty()));
  CHECK(same_text_everywhere(text));
  CHECK_THAT(text,
             Catch::StartsWith("domdec: step 6, migrate call 7 on rank " + std::to_string(last)) &&
                 Catch::Contains("is at (nan)") &&
                 Catch::Contains("The propagation functor takes the whole vector, so the "
                                 "Driver did not record where this particle was before "
                                 "step 6; its velocity is ("));
}

TEST_CASE("particles given to run outside the box are refused before the first step",
          "[driver][errors]") {
  Box<> b;
  std::vector<Particle> mine = some_particles(100);
  if (world().rank() == 0 && !mine.empty()) mine.front().x = 1.25;
  const std::string text = message_of<domdec::ParticleError>([&] { b.driver.run(mine, 5, kick); });
  REQUIRE(on_every_rank(!text.empty()));
  CHECK(same_text_everywhere(text));
  CHECK_THAT(text,
             Catch::StartsWith("domdec: placing the particles before step 1: migrate call ") &&
                 Catch::Contains("1.25") &&
                 Catch::Contains("It is one of the particles given to Driver::run, which "
                                 "must all be inside the box before step 1."));
  CHECK(b.driver.step() == 0);
}

TEST_CASE("an id function that throws on one rank stops every rank at that check",
          "[driver][errors]") {
  DriverOptions options = Box<>::quiet_options();
  options.check_every = 2;
  Box<> b(options);
  std::vector<Particle> mine = some_particles(200);
  const int last = world().size() - 1;
  bool armed = false;
  b.driver.identify_with([&](const Particle& q) -> std::uint64_t {
    if (armed) throw std::invalid_argument("no id today");
    return static_cast<std::uint64_t>(q.id);
  });
  const std::string text = message_of<domdec::RunError>([&] {
    b.driver.run(mine, 10, [&](Particle& q, std::int64_t step) {
      if (step == 4 && world().rank() == last) armed = true;
      kick(q, step);
    });
  });
  REQUIRE(on_every_rank(!text.empty()));
  CHECK(same_text_everywhere(text));
  CHECK(text == "domdec: step 4 on rank " + std::to_string(last) + " of " +
                    std::to_string(world().size()) +
                    ": the id function (Driver::identify_with) threw std::invalid_argument: no "
                    "id today");
  CHECK(b.driver.step() == 3);
}

TEST_CASE("observers run at multiples of their interval, at the start and at the end of a run",
          "[driver][observers]") {
  Box<> b;
  std::vector<Particle> mine = some_particles(100);
  std::vector<std::int64_t> every3, every4;
  std::vector<StepInfo> infos;
  b.driver.observe(3, [&](const std::vector<Particle>&, const StepInfo& i) {
    every3.push_back(i.step);
    infos.push_back(i);
  });
  b.driver.observe(
      4, [&](const std::vector<Particle>&, const StepInfo& i) { every4.push_back(i.step); });
  b.driver.run(mine, 10, kick);
  CHECK(every3 == std::vector<std::int64_t>{0, 3, 6, 9, 10});
  CHECK(every4 == std::vector<std::int64_t>{0, 4, 8, 10});
  CHECK(infos.front().first_step == 1);
  CHECK(infos.back().last_step == 10);
  // A second run continues the numbering; step 10 was already observed.
  b.driver.run(mine, 5, kick);
  CHECK(every3 == std::vector<std::int64_t>{0, 3, 6, 9, 10, 12, 15});
  CHECK(every4 == std::vector<std::int64_t>{0, 4, 8, 10, 12, 15});
  CHECK(infos.back().first_step == 11);
  CHECK(infos.back().last_step == 15);
}

TEST_CASE("an observer that throws on one rank ends the run on every rank", "[driver][errors]") {
  Box<> b;
  std::vector<Particle> mine = some_particles(100);
  const int last = world().size() - 1;
  b.driver.observe(5, [&](const std::vector<Particle>&, const StepInfo& i) {
    if (i.step == 10 && world().rank() == last) throw std::runtime_error("disk full");
  });
  const std::string text = message_of<domdec::RunError>([&] { b.driver.run(mine, 20, kick); });
  REQUIRE(on_every_rank(!text.empty()));
  CHECK_THAT(text, Catch::Contains("step 10 on rank " + std::to_string(last)) &&
                       Catch::Contains("observer 0 threw") && Catch::Contains("disk full"));
}

TEST_CASE("an observer that throws after its collective call stops every rank before the next",
          "[driver][errors]") {
  Box<> b;
  std::vector<Particle> mine = some_particles(100);
  const int last = world().size() - 1;
  std::vector<std::int64_t> second_called;
  // Both observers communicate; the first throws on one rank after its allreduce. Every rank
  // must stop before the second (which the failing rank would otherwise skip: a hang).
  b.driver.observe(5, [&](const std::vector<Particle>& ps, const StepInfo& i) {
    const auto n = sum_over_ranks(static_cast<std::uint64_t>(ps.size()));
    if (i.step == 10 && world().rank() == last)
      throw std::runtime_error("disk full after " + std::to_string(n));
  });
  b.driver.observe(5, [&](const std::vector<Particle>& ps, const StepInfo& i) {
    sum_over_ranks(static_cast<std::uint64_t>(ps.size()));
    second_called.push_back(i.step);
  });
  const std::string text = message_of<domdec::RunError>([&] { b.driver.run(mine, 20, kick); });
  REQUIRE(on_every_rank(!text.empty()));
  CHECK(same_text_everywhere(text));
  CHECK(text == "domdec: step 10 on rank " + std::to_string(last) + " of " +
                    std::to_string(world().size()) +
                    ": observer 0 threw std::runtime_error: disk full after 100");
  CHECK(second_called == std::vector<std::int64_t>{0, 5});
}

TEST_CASE("ranks that disagree on the run throw SetupError on every rank", "[driver][errors]") {
  Box<> b;
  std::vector<Particle> mine = some_particles(100);
  const std::int64_t steps = world().rank() == 0 ? 3 : 4;  // only differs with several ranks
  const std::string text = message_of<domdec::SetupError>([&] { b.driver.run(mine, steps, kick); });
  if (world().size() == 1) {
    CHECK(text.empty());
    CHECK(b.driver.step() == 3);
  } else {
    CHECK_THAT(text, Catch::Contains("number of steps"));
  }
  REQUIRE(on_every_rank(true));
}

// ---- Progress and summary -----------------------------------------------------------------------

TEST_CASE("progress lines and the summary appear on rank 0 only, and parse", "[driver][summary]") {
  DriverOptions options;
  options.progress_seconds = 0.0;  // a line at every check
  options.check_every = 2;
  Box<> b(options);
  const std::int64_t n = 1000;
  std::vector<Particle> mine = some_particles(n);
  const domdec::RunSummary summary = b.driver.run(mine, 10, kick);
  const std::string out = b.log.str();
  const int p = world().size();
  if (world().rank() != 0) {
    CHECK(out.empty());
  } else {
    const std::regex progress(
        R"(step (\d+)/(\d+) +([0-9.]+)% \| elapsed ([0-9.e+-]+) s \| eta ([0-9.e+-]+) s \| )"
        R"(([0-9.e+-]+) steps/s \| particles/proc min (\d+) max (\d+) \| imbalance ([0-9.]+)%)");
    std::vector<long> steps_seen;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (!std::regex_match(line, m, progress)) continue;
      steps_seen.push_back(std::stol(m[1]));
      CHECK(std::stol(m[2]) == 10);
      const long lo = std::stol(m[7]), hi = std::stol(m[8]);
      CHECK(lo <= hi);
      CHECK(lo * p <= n);
      CHECK(hi * p >= n);
    }
    CHECK(steps_seen == std::vector<long>{2, 4, 6, 8, 10});

    std::smatch m;
    const std::regex loop(
        R"(Loop time of ([0-9.e+-]+) on (\d+) procs for (\d+) steps with (\d+) particles)");
    REQUIRE(std::regex_search(out, m, loop));
    CHECK(std::stod(m[1]) > 0.0);
    CHECK(std::stoi(m[2]) == p);
    CHECK(std::stol(m[3]) == 10);
    CHECK(std::stol(m[4]) == n);
    double percent = 0.0;
    for (const char* section : {"Propagate", "Boundary", "Migrate", "Checks", "Output", "Other"}) {
      const std::regex row(std::string(section) +
                           R"( *\| ([0-9.e+-]+) *\| ([0-9.e+-]+) *\| ([0-9.e+-]+) *\| *([0-9.]+))");
      INFO(section);
      REQUIRE(std::regex_search(out, m, row));
      CHECK(std::stod(m[1]) <= std::stod(m[2]) * 1.0001);
      CHECK(std::stod(m[2]) <= std::stod(m[3]) * 1.0001);
      percent += std::stod(m[4]);
    }
    CHECK(percent == Approx(100.0).margin(0.1));
    const std::regex per_proc(R"(Particles per proc: min (\d+) avg ([0-9.]+) max (\d+))");
    REQUIRE(std::regex_search(out, m, per_proc));
    CHECK(std::stod(m[2]) == Approx(static_cast<double>(n) / p).margin(0.05));  // printed %.1f
    CHECK(std::regex_search(out, std::regex(R"(Migration per step: [0-9.e+-]+ messages)")));
    CHECK(std::regex_search(
        out,
        std::regex(
            R"(Conservation: 5 checks of the particle count and id checksum \(every 2 steps\): all passed)")));
  }
  // The returned summary is the printed one, on every rank.
  CHECK(summary.checks == 5);
  CHECK(summary.particles_per_rank.avg == Approx(static_cast<double>(n) / p));
  CHECK(summary.particles_per_rank.min <= summary.particles_per_rank.max);
  if (p > 1) CHECK(summary.messages > 0u);
}

TEST_CASE("quiet runs print no progress, but still the summary", "[driver][summary]") {
  DriverOptions options;
  options.quiet = true;
  options.progress_seconds = 0.0;
  Box<> b(options);
  std::vector<Particle> mine = some_particles(100);
  b.driver.run(mine, 10, kick);
  const std::string out = b.log.str();
  if (world().rank() == 0) {
    CHECK(out.find("step ") == std::string::npos);
    CHECK(out.find("Loop time of") != std::string::npos);
  } else {
    CHECK(out.empty());
  }
}

// ---- Steady state -------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("the Driver's loop allocates nothing in steady state", "[driver][allocation]",
                   (Box<Exchanger, Typed>), (Box<Exchanger, Serialized>),
                   (Box<AllgatherExchanger, Typed>)) {
  DriverOptions options;
  options.check_every = 5;
  options.progress_seconds = 0.0;  // progress lines formatted at every check
  TestType b(options);
  std::ostream nowhere(nullptr);  // rank 0 formats lines; writing them fails silently
  b.driver.options().log = &nowhere;
  b.driver.options().summary = false;
  std::vector<Particle> mine = some_particles(2000);
  std::vector<std::size_t> counts;
  counts.reserve(64);
  b.driver.observe(10, [&](const std::vector<Particle>&, const StepInfo&) {
    counts.push_back(domdec_test::allocations());
  });
  b.driver.run(mine, 200, kick);
  // From step 50 on (warm: buffers grown), nothing between two observations.
  REQUIRE(counts.size() == 21);
  std::size_t allocated = 0;
  for (std::size_t i = 6; i < counts.size(); ++i) allocated += counts[i] - counts[i - 1];
  CHECK(allocated == 0);
}

// ---- The allgather strategy ---------------------------------------------------------------------

TEMPLATE_TEST_CASE("the allgather strategy ends with the same particles as the exchange",
                   "[allgather]", Typed, Serialized) {
  Box<Exchanger, Typed> exchange;
  Box<AllgatherExchanger, TestType> allgather;
  std::vector<Particle> a = some_particles(1000), b = a;
  exchange.driver.run(a, 100, kick);
  const domdec::RunSummary summary = allgather.driver.run(b, 100, kick);
  CHECK(all_inside_my_slab(allgather.slabs, b));
  const std::vector<Particle> sa = sorted_everywhere(a), sb = sorted_everywhere(b);
  REQUIRE(on_every_rank(sa.size() == sb.size()));
  bool same = true;
  for (std::size_t i = 0; i < sa.size(); ++i) same = same && same_bits(sa[i], sb[i]);
  CHECK(same);
  // Its cost: P - 1 logical messages each way and two collectives per call; every rank
  // receives every other rank's particles.
  const domdec::MigrationStats& t = allgather.migrator.totals();
  const auto others = static_cast<std::size_t>(world().size() - 1);
  CHECK(t.calls == 101);  // the set-up and 100 steps
  CHECK(t.messages_sent == others * t.calls);
  CHECK(t.collectives == 2 * t.calls);
  const std::size_t received = sum_over_ranks(t.particles_received);
  CHECK(received == others * 1000 * t.calls);
  CHECK(summary.messages == others * world().size() * 100);
}

TEST_CASE("the allgather strategy reports an invalid particle on every rank and moves nothing",
          "[allgather][errors]") {
  Box<AllgatherExchanger, Typed> b;
  std::vector<Particle> mine = some_particles(100);
  b.migrator.migrate(mine);
  const int last = world().size() - 1;
  if (world().rank() == last && !mine.empty()) mine.front().x = 7.5;
  const std::vector<Particle> before = mine;
  const std::string text = message_of<domdec::ParticleError>([&] { b.migrator.migrate(mine); });
  REQUIRE(on_every_rank(!text.empty()));
  CHECK_THAT(text, Catch::Contains("on rank " + std::to_string(last)) && Catch::Contains("7.5") &&
                       Catch::Contains("outside the box"));
  CHECK(mine.size() == before.size());
  CHECK(std::equal(mine.begin(), mine.end(), before.begin()));
}

TEST_CASE("the allgather strategy carries a rank's failure and the caller's explanation",
          "[allgather][errors]") {
  Box<AllgatherExchanger, Serialized> b;
  std::vector<Particle> mine = some_particles(100);
  b.migrator.migrate(mine);
  const int p = world().size(), last = p - 1;
  const std::vector<Particle> before = mine;

  // A failure on the last rank (and on rank 0 with three or more ranks: the lowest wins).
  MigrateContext<Particle> context;
  context.step = 12;
  const bool fails = world().rank() == last || (p >= 3 && world().rank() == 0);
  const int reported = p >= 3 ? 0 : last;
  if (fails) {
    try {
      throw std::runtime_error("the force field diverged on rank " +
                               std::to_string(world().rank()));
    } catch (...) {
      context.failure = std::current_exception();
    }
  }
  std::string text;
  try {
    b.migrator.migrate(mine, context);
  } catch (const domdec::ParticleError&) {
    text = "ParticleError";
  } catch (const domdec::Error& e) {
    text = e.what();
  }
  CHECK(same_text_everywhere(text));
  CHECK(text == domdec::detail::message("domdec: step 12, allgather migrate call 2: rank ",
                                        reported, " of ", p,
                                        " failed before migrate: the force field diverged on "
                                        "rank ",
                                        reported, " (every rank stops here; nothing was moved)"));
  CHECK(mine.size() == before.size());
  CHECK(std::equal(mine.begin(), mine.end(), before.begin()));

  // An invalid particle: `explain` runs on its rank only, and every rank gets its text.
  int explained = 0;
  MigrateContext<Particle> explaining;
  explaining.step = 13;
  explaining.explain = [&](const Particle& q, std::size_t index) {
    ++explained;
    return domdec::detail::message("(explained on rank ", world().rank(), ": id ", q.id, ", index ",
                                   index, ")");
  };
  std::int64_t id = -1;
  if (world().rank() == last && mine.size() >= 2) {
    mine[1].x = -std::numeric_limits<double>::infinity();
    id = mine[1].id;
  }
  boost::mpi::broadcast(world(), id, last);
  text.clear();
  try {
    b.migrator.migrate(mine, explaining);
  } catch (const domdec::ParticleError& e) {
    text = e.what();
  }
  REQUIRE(on_every_rank(id >= 0));
  CHECK(same_text_everywhere(text));
  CHECK(explained == (world().rank() == last ? 1 : 0));
  const domdec::Interval slab = b.slabs.bounds_of(last);
  CHECK_THAT(text, Catch::StartsWith("domdec: step 13, allgather migrate call 3: particle 1 of ") &&
                       Catch::Contains(domdec::detail::message("on rank ", last, " of ", p, " [id ",
                                                               id, "] is at (-inf)")) &&
                       Catch::Contains("is not a finite number") &&
                       Catch::Contains(domdec::detail::message("Rank ", last, "'s slab is [",
                                                               slab.lower, ", ", slab.upper)) &&
                       Catch::Contains(domdec::detail::message("(explained on rank ", last, ": id ",
                                                               id, ", index 1)")));
}

TEST_CASE("the allgather strategy finds a NaN on an axis that is not the decomposition axis",
          "[allgather][errors]") {
  using domdec_test::Particle3;
  const Domain<3> box({0.0, 0.0, 0.0}, {1.0, 1.0, 1.0}, Boundary::periodic);
  const Decomposition<3> slabs(world(), box, 0);  // slabs along x
  AllgatherExchanger<Particle3, 3> allgather(slabs, &Particle3::r);
  std::vector<Particle3> mine;
  for (std::int64_t id = world().rank(); id < 30; id += world().size()) {
    Particle3 q;
    q.id = id;
    q.r = {(static_cast<double>(id) + 0.5) / 30.0, 0.5, 0.5};
    mine.push_back(q);
  }
  allgather.migrate(mine);
  REQUIRE(on_every_rank(!mine.empty()));
  if (world().rank() == world().size() - 1) mine.back().r[2] = not_a_number;  // only z is bad
  std::string text;
  try {
    allgather.migrate(mine);
  } catch (const domdec::ParticleError& e) {
    text = e.what();
  }
  CHECK(same_text_everywhere(text));
  CHECK_THAT(text, Catch::Contains("its coordinate along axis 2, nan, is not a finite number"));
  if (world().rank() == world().size() - 1) mine.back().r[2] = 0.5;
  CHECK_NOTHROW(allgather.migrate(mine));
  CHECK(sum_over_ranks(static_cast<std::int64_t>(mine.size())) == 30);
}

// ---- Random numbers and the id tally ---------------------------------------------------------

TEST_CASE("a particle's random numbers depend on (seed, id, step, purpose), not on the rank",
          "[random]") {
  std::vector<double> mine;
  for (std::uint64_t id = 0; id < 50; ++id) {
    RandomStream r(7, id, 3);
    mine.push_back(r.uniform());
    mine.push_back(r.normal());
  }
  // Every rank drew the same numbers.
  const std::vector<double> all = gather_everywhere(mine);
  bool same = true;
  for (std::size_t i = 0; i < all.size(); ++i) same = same && all[i] == mine[i % mine.size()];
  CHECK(same);
  // Changing any part of the key or counter changes the stream.
  const double base = RandomStream(7, 1, 3, 0).uniform();
  CHECK(RandomStream(8, 1, 3, 0).uniform() != base);
  CHECK(RandomStream(7, 2, 3, 0).uniform() != base);
  CHECK(RandomStream(7, 1, 4, 0).uniform() != base);
  CHECK(RandomStream(7, 1, 3, 1).uniform() != base);
  CHECK(RandomStream(7, 1, 3, 0).uniform() == base);
}

TEST_CASE("uniform draws lie in [0, 1) and normal draws have mean 0 and variance 1", "[random]") {
  const int n = 200000;
  double sum_u = 0, sum_z = 0, sum_z2 = 0;
  bool in_range = true;
  for (int i = 0; i < n; ++i) {
    RandomStream r(11, static_cast<std::uint64_t>(i), 0);
    const double u = r.uniform();
    in_range = in_range && u >= 0.0 && u < 1.0;
    sum_u += u;
    const double z = r.normal();
    sum_z += z;
    sum_z2 += z * z;
  }
  CHECK(in_range);
  // Tolerances are about 5 standard errors.
  CHECK(sum_u / n == Approx(0.5).margin(5 * 0.2887 / std::sqrt(n)));
  CHECK(sum_z / n == Approx(0.0).margin(5.0 / std::sqrt(n)));
  CHECK(sum_z2 / n == Approx(1.0).margin(5 * std::sqrt(2.0 / n)));
}

TEST_CASE("the id tally is independent of order and sees losses, duplicates and changed ids",
          "[conservation]") {
  std::vector<Particle> ps;
  for (std::int64_t id = 0; id < 100; ++id) ps.push_back({id, 0.0, 0.0});
  const domdec::IdTally all = domdec::tally_ids(ps);
  std::vector<Particle> shuffled(ps.rbegin(), ps.rend());
  CHECK(domdec::tally_ids(shuffled) == all);
  std::vector<Particle> lost(ps.begin() + 1, ps.end());
  CHECK(domdec::tally_ids(lost).count == 99);
  std::vector<Particle> swapped = ps;
  swapped[3].id = 4;  // id 3 lost, id 4 twice: same count
  CHECK(domdec::tally_ids(swapped).count == all.count);
  CHECK(domdec::tally_ids(swapped) != all);
}

// ---- Writers ------------------------------------------------------------------------------------

namespace {
std::string scratch_directory(const std::string& name) {
  // The same path on every rank: rank 0 chooses, everyone receives it.
  std::string dir;
  if (world().rank() == 0) {
    dir = (std::filesystem::temp_directory_path() /
           ("domdec-test-" + name + "-" + std::to_string(::getpid())))
              .string();
    std::filesystem::remove_all(dir);
  }
  boost::mpi::broadcast(world(), dir, 0);
  return dir;
}
}  // namespace

TEST_CASE("snapshots hold every particle once, on its owner, in LAMMPS and VTK form", "[output]") {
  const std::int64_t n = 300;
  Box<> b;
  std::vector<Particle> mine = some_particles(n);
  b.migrator.migrate(mine);
  const std::string dir = scratch_directory("snapshot");
  domdec::SnapshotWriter<Particle, 1> writer(b.slabs, dir, &Particle::x,
                                             domdec::Coordinates<Particle, 1>(&Particle::v));
  writer.write(mine, 0, 0.0);
  writer.write(mine, 5, 0.5);
  writer.select([](const Particle& p) { return p.id % 2 == 0; });
  writer.write(mine, 10, 1.0);
  const int p = world().size();
  if (world().rank() == 0) {
    std::ifstream in(writer.lammps_path());
    std::vector<std::vector<std::int64_t>> frames;  // ids per frame
    std::size_t misplaced = 0;
    for (std::string line; std::getline(in, line);) {
      if (line == "ITEM: TIMESTEP") frames.emplace_back();
      if (line.empty() || line.rfind("ITEM", 0) == 0 || frames.empty()) continue;
      std::istringstream fields(line);
      std::vector<double> v;
      for (double x; fields >> x;) v.push_back(x);
      if (v.size() != 9) continue;  // headers' numbers
      frames.back().push_back(static_cast<std::int64_t>(v[0]));
      misplaced += b.slabs.owner_of(v[1]) == static_cast<int>(v[7]) ? 0 : 1;
    }
    REQUIRE(frames.size() == 3);
    for (auto& f : frames) std::sort(f.begin(), f.end());
    std::vector<std::int64_t> every(n), even;
    for (std::int64_t i = 0; i < n; ++i) every[static_cast<std::size_t>(i)] = i;
    for (std::int64_t i = 0; i < n; i += 2) even.push_back(i);
    CHECK(frames[0] == every);
    CHECK(frames[1] == every);
    CHECK(frames[2] == even);
    CHECK(misplaced == 0);
    // ParaView: three frames in the .pvd, each .pvtp naming one piece per rank.
    std::ifstream pvd(writer.pvd_path());
    const std::string series((std::istreambuf_iterator<char>(pvd)),
                             std::istreambuf_iterator<char>());
    CHECK(series.find("timestep=\"0.5\"") != std::string::npos);
    std::ifstream pvtp(writer.vtk_directory() + "/" + writer.pvtp_name(10));
    const std::string joined((std::istreambuf_iterator<char>(pvtp)),
                             std::istreambuf_iterator<char>());
    std::size_t pieces = 0, points = 0;
    for (std::size_t at = joined.find("<Piece "); at != std::string::npos;
         at = joined.find("<Piece ", at + 1)) {
      ++pieces;
    }
    for (int r = 0; r < p; ++r) {
      std::ifstream piece(writer.vtk_directory() + "/" + writer.piece_name(10, r));
      const std::string xml((std::istreambuf_iterator<char>(piece)),
                            std::istreambuf_iterator<char>());
      std::smatch m;
      if (std::regex_search(xml, m, std::regex("NumberOfPoints=\"(\\d+)\"")))
        points += std::stoul(m[1]);
    }
    CHECK(pieces == static_cast<std::size_t>(p));
    CHECK(points == even.size());
  }
  REQUIRE(on_every_rank(true));
  if (world().rank() == 0) std::filesystem::remove_all(dir);
}

TEST_CASE("records written by id form a file sorted by id, whatever the rank count", "[output]") {
  const std::int64_t n = 500;
  Box<> b;
  std::vector<Particle> mine = some_particles(n);
  b.migrator.migrate(mine);
  const std::string dir = scratch_directory("records");
  if (world().rank() == 0) std::filesystem::create_directories(dir);
  REQUIRE(on_every_rank(true));
  const std::string path = dir + "/state.bin";
  domdec::write_records_by_id<Particle>(
      b.slabs, path, mine, static_cast<std::uint64_t>(n), [](const Particle& q) { return q; },
      [](const Particle& q) { return q.id; });
  if (world().rank() == 0) {
    std::ifstream in(path, std::ios::binary);
    std::vector<Particle> records(static_cast<std::size_t>(n));
    in.read(reinterpret_cast<char*>(records.data()),
            n * static_cast<std::streamsize>(sizeof(Particle)));
    CHECK(in.gcount() == n * static_cast<std::streamsize>(sizeof(Particle)));
    std::size_t wrong = 0;
    for (std::int64_t i = 0; i < n; ++i)
      wrong += same_bits(records[static_cast<std::size_t>(i)], initial_particle(i)) ? 0 : 1;
    CHECK(wrong == 0);
    std::filesystem::remove_all(dir);
  }
  REQUIRE(on_every_rank(true));
}

TEST_CASE("a snapshot directory that cannot be created is an OutputError on every rank",
          "[output][errors]") {
  Box<> b;
  const std::string dir = scratch_directory("blocked");
  if (world().rank() == 0) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/file") << "a file, not a directory\n";
  }
  REQUIRE(on_every_rank(true));
  const std::string text = message_of<domdec::OutputError>([&] {
    domdec::SnapshotWriter<Particle, 1> writer(b.slabs, dir + "/file/snapshots", &Particle::x);
  });
  REQUIRE(on_every_rank(!text.empty()));
  CHECK_THAT(text, Catch::Contains("cannot create") && Catch::Contains("file/snapshots"));
  if (world().rank() == 0) std::filesystem::remove_all(dir);
}
