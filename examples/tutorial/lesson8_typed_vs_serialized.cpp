// Tutorial lesson 8, "Send vs send": the same particles sent typed (an MPI datatype: the bytes
// as they are, like mpi4py's `Send` of a numpy array) and serialized (Boost.Serialization into a
// byte stream and back, like mpi4py's `send`, which pickles), for 1e3 ... 1e6 particles.
// Part 1 times Boost.MPI's two ways between rank 0 and rank 1 (ping-pong); part 2 times
// domdec's Exchanger moving every particle to the neighbouring rank over both transports.
// Typed and serialized runs alternate, so a noisy machine slows both alike; medians are shown.
//   mpirun -np 4 ./build/examples/tutorial/lesson8_typed_vs_serialized
#include <mpi.h>

#include <algorithm>
#include <boost/mpi.hpp>
#include <boost/serialization/vector.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <domdec/domdec.hpp>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli.hpp"

namespace {

/// Plain data marked as an MPI datatype (below): travels typed.
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

/// The same members, not marked: Boost.MPI sends it serialized.
struct SerializedParticle {
  std::int64_t id;
  double x;
  double v;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & v;
  }
  bool operator==(const SerializedParticle& o) const { return id == o.id && x == o.x && v == o.v; }
};

}  // namespace

BOOST_IS_MPI_DATATYPE(Particle)

namespace {

using Clock = std::chrono::steady_clock;
constexpr int tag = 8;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// A barrier that sleeps while it waits. Open MPI's blocking calls spin, so ranks with nothing
/// to do would take the CPU from the two ranks being timed (on a machine with few cores).
void idle_barrier(const boost::mpi::communicator& world) {
  MPI_Request request;
  if (MPI_Ibarrier(MPI_Comm(world), &request) != MPI_SUCCESS)
    throw std::runtime_error("MPI_Ibarrier failed");
  int done = 0;
  for (;;) {
    if (MPI_Test(&request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      throw std::runtime_error("MPI_Test failed");
    if (done != 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

template <class P>
std::vector<P> make_particles(std::int64_t first_id, std::size_t n, double x0, double width) {
  std::vector<P> ps(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double f = (static_cast<double>(i) + 0.5) / static_cast<double>(n);
    ps[i] = {first_id + static_cast<std::int64_t>(i), x0 + width * f, 1e-3 * (f - 0.5)};
  }
  return ps;
}

/// One typed round trip 0 -> 1 -> 0 of `out` over `pair` (ranks 0 and 1), like mpi4py's
/// comm.Send / comm.Recv into a preallocated buffer: the receiver knows the count. Returns the
/// time of one way.
double typed_round_trip(const boost::mpi::communicator& pair, const std::vector<Particle>& out,
                        std::vector<Particle>& in) {
  const int n = static_cast<int>(out.size());
  pair.barrier();
  const Clock::time_point start = Clock::now();
  if (pair.rank() == 0) {
    pair.send(1, tag, out.data(), n);
    pair.recv(1, tag, in.data(), n);
  } else {
    pair.recv(0, tag, in.data(), n);
    pair.send(0, tag, in.data(), n);
  }
  return seconds_since(start) / 2;
}

/// The same round trip serialized, like mpi4py's comm.send / comm.recv of a list of objects.
double serialized_round_trip(const boost::mpi::communicator& pair,
                             const std::vector<SerializedParticle>& out,
                             std::vector<SerializedParticle>& in) {
  pair.barrier();
  const Clock::time_point start = Clock::now();
  if (pair.rank() == 0) {
    pair.send(1, tag, out);
    pair.recv(1, tag, in);
  } else {
    pair.recv(0, tag, in);
    pair.send(0, tag, in);
  }
  return seconds_since(start) / 2;
}

/// One migrate of all of this rank's particles to the upper neighbour; returns the time of
/// the slowest rank. `origin` tracks whose particles this rank holds, to check the arrivals.
template <class Exchanger>
double shift_all(const boost::mpi::communicator& world, Exchanger& exchanger,
                 std::vector<Particle>& mine, bool& correct, int& origin, std::size_t n) {
  const int p = world.size();
  for (Particle& q : mine) q.x += 1.0 / p;  // one slab up: everybody leaves
  exchanger.decomposition().domain().apply_boundaries(mine, &Particle::x);
  world.barrier();
  const Clock::time_point start = Clock::now();
  exchanger.migrate(mine);
  const double mine_seconds = seconds_since(start);
  origin = (origin + p - 1) % p;  // now holding the lower neighbour's former particles
  // Exactly that rank's n ids (ids are unique, so n of them in its range are all of them).
  const auto first = static_cast<std::int64_t>(origin) * static_cast<std::int64_t>(n);
  const auto end = first + static_cast<std::int64_t>(n);
  correct = correct && mine.size() == n &&
            std::all_of(mine.begin(), mine.end(),
                        [&](const Particle& q) { return q.id >= first && q.id < end; });
  return boost::mpi::all_reduce(world, mine_seconds, boost::mpi::maximum<double>());
}

int repetitions(std::size_t n) {
  return static_cast<int>(std::clamp<std::size_t>(3000000 / n, 5, 200));
}

}  // namespace

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;

  tutorial::Cli cli(argc, argv,
                    "Times typed against serialized transfer of n particles (24 bytes each) for "
                    "n = min, 10 min, ..., max. Needs at least 2 ranks.");
  const auto smallest = cli.option<long>("--min", 1000, "fewest particles");
  const auto largest = cli.option<long>("--max", 1000000, "most particles");
  if (smallest < 1 || largest < smallest) cli.reject("need 1 <= --min <= --max");
  if (world.size() < 2) cli.reject("needs at least 2 ranks: mpirun -np 2 or more");
  if (const auto status = cli.finish(world.rank() == 0)) return *status;

  const int rank = world.rank(), p = world.size();
  bool correct = true;
  std::vector<std::size_t> sizes;
  for (long n = smallest; n <= largest; n *= 10) sizes.push_back(static_cast<std::size_t>(n));

  if (rank == 0) {
    std::printf("part 1: Boost.MPI, rank 0 -> rank 1 (one way, median of a ping-pong)\n");
    std::printf("%10s %12s %12s %16s %18s\n", "particles", "bytes", "typed ms", "serialized ms",
                "serialized/typed");
  }
  // Ranks 0 and 1 time; the others wait for them without spinning.
  const boost::mpi::communicator pair = world.split(rank < 2 ? 0 : 1);
  for (const std::size_t n : sizes) {
    if (rank >= 2) break;
    const std::vector<Particle> typed = make_particles<Particle>(0, n, 0.0, 1.0);
    const std::vector<SerializedParticle> serialized =
        make_particles<SerializedParticle>(0, n, 0.0, 1.0);
    std::vector<Particle> typed_in(n);
    std::vector<SerializedParticle> serialized_in;
    std::vector<double> t_typed, t_serialized;
    for (int rep = 0; rep < repetitions(n); ++rep) {  // alternate: noise hits both alike
      t_typed.push_back(typed_round_trip(pair, typed, typed_in));
      t_serialized.push_back(serialized_round_trip(pair, serialized, serialized_in));
      if (rank == 0) correct = correct && typed_in == typed && serialized_in == serialized;
    }
    if (rank == 0) {
      const double a = median(t_typed), b = median(t_serialized);
      std::printf("%10zu %12zu %12.3f %16.3f %18.1f\n", n, n * sizeof(Particle), 1e3 * a, 1e3 * b,
                  b / a);
    }
  }

  idle_barrier(world);

  if (rank == 0) {
    std::printf(
        "\npart 2: domdec Exchanger, all %d ranks move all their particles to the next "
        "rank (per migrate, slowest rank, median)\n",
        p);
    std::printf("%10s %12s %12s %16s %18s\n", "per rank", "bytes", "typed ms", "serialized ms",
                "serialized/typed");
  }
  const domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::periodic);
  const domdec::Decomposition<1> slabs(world, box);
  domdec::Exchanger<Particle, 1, domdec::Typed> typed_exchanger(slabs, &Particle::x);
  domdec::Exchanger<Particle, 1, domdec::Serialized> serialized_exchanger(slabs, &Particle::x);
  for (const std::size_t n : sizes) {
    const double x0 = slabs.local_bounds().lower, width = slabs.local_bounds().width();
    const auto first_id = static_cast<std::int64_t>(rank) * static_cast<std::int64_t>(n);
    std::vector<Particle> for_typed = make_particles<Particle>(first_id, n, x0, width);
    std::vector<Particle> for_serialized = for_typed;
    int typed_origin = rank, serialized_origin = rank;
    std::vector<double> t_typed, t_serialized;
    for (int rep = 0; rep < repetitions(n); ++rep) {
      t_typed.push_back(shift_all(world, typed_exchanger, for_typed, correct, typed_origin, n));
      t_serialized.push_back(
          shift_all(world, serialized_exchanger, for_serialized, correct, serialized_origin, n));
    }
    correct = correct && for_typed == for_serialized;  // both transports: the same particles
    if (rank == 0) {
      const double a = median(t_typed), b = median(t_serialized);
      std::printf("%10zu %12zu %12.3f %16.3f %18.1f\n", n, n * sizeof(Particle), 1e3 * a, 1e3 * b,
                  b / a);
    }
  }

  const bool everywhere =
      boost::mpi::all_reduce(world, correct ? 1 : 0, boost::mpi::minimum<int>()) == 1;
  if (rank == 0) {
    std::printf("%s\n", everywhere ? "every transfer delivered exactly the particles sent"
                                   : "ERROR: some transfer delivered wrong particles");
    std::fflush(stdout);
  }
  return everywhere ? 0 : 1;
}
