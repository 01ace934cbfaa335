// Tutorial lesson 9, "The particle box": particles move in the 1-D box [0, 1] with reflecting
// walls; rank r owns the slab [r/P, (r+1)/P) and the particles in it. The same simulation runs
// twice, from the same start:
//   1. the tutorial's way: after every step every rank receives ALL particles (allgather) and
//      keeps those in its slab — simple, but every rank receives the whole system every step;
//   2. domdec's way: after every step the Exchanger sends only the particles that left a slab,
//      to the rank that owns them now.
// Then both final particle sets are gathered on rank 0 and compared, and the communication
// volume per step of each way is printed.
//   mpirun -np 4 ./build/examples/tutorial/lesson9_particle_box
#include <mpi.h>

#include <algorithm>
#include <boost/mpi.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <domdec/domdec.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.hpp"

namespace {

struct Particle {
  std::int64_t id;
  double x;  // position in [0, 1]
  double v;  // velocity
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & v;
  }
};

}  // namespace

BOOST_IS_MPI_DATATYPE(Particle)

namespace {

using Clock = std::chrono::steady_clock;

/// A well-mixed 64-bit hash (splitmix64): particle `id`'s start depends only on (seed, id),
/// never on the number of ranks.
std::uint64_t mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
double uniform01(std::uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

/// The particles whose start position lies in this rank's slab.
std::vector<Particle> initial_particles(const domdec::Decomposition<1>& slabs, std::int64_t n,
                                        std::uint64_t seed, double max_speed) {
  std::vector<Particle> mine;
  for (std::int64_t id = 0; id < n; ++id) {
    const std::uint64_t h = mix(seed ^ mix(static_cast<std::uint64_t>(id)));
    const Particle p{id, uniform01(h), max_speed * (2.0 * uniform01(mix(h)) - 1.0)};
    if (slabs.owner_of(p.x) == slabs.rank()) mine.push_back(p);
  }
  return mine;
}

/// The physics of one step, identical in both ways: move, then reflect at the walls.
void move(std::vector<Particle>& mine, const domdec::Domain<1>& box, double dt) {
  for (Particle& p : mine) p.x += p.v * dt;
  box.apply_boundaries(mine, &Particle::x, &Particle::v);  // mirror x, flip v at a wall
}

/// The tutorial's way (mpi4py: comm.Allgatherv): every rank receives every particle and keeps
/// those in its slab. Returns the bytes this rank received.
std::size_t share_everything(const boost::mpi::communicator& world,
                             const domdec::Decomposition<1>& slabs, std::vector<Particle>& mine,
                             std::vector<int>& counts, std::vector<int>& offsets,
                             std::vector<Particle>& everyone) {
  const int n_mine = static_cast<int>(mine.size());
  boost::mpi::all_gather(world, n_mine, counts);  // how many each rank has
  offsets.assign(counts.size(), 0);
  for (std::size_t r = 1; r < counts.size(); ++r) offsets[r] = offsets[r - 1] + counts[r - 1];
  everyone.resize(static_cast<std::size_t>(offsets.back() + counts.back()));
  const MPI_Datatype type = boost::mpi::get_mpi_datatype(Particle{});
  const int rc = MPI_Allgatherv(mine.data(), n_mine, type, everyone.data(), counts.data(),
                                offsets.data(), type, MPI_Comm(world));  // then all of them
  if (rc != MPI_SUCCESS) throw std::runtime_error("MPI_Allgatherv failed");
  mine.clear();
  for (const Particle& p : everyone)
    if (slabs.owner_of(p.x) == slabs.rank()) mine.push_back(p);  // keep my own
  return (everyone.size() - static_cast<std::size_t>(n_mine)) * sizeof(Particle);
}

/// Sorted by id, gathered on rank 0 (empty elsewhere).
std::vector<Particle> final_state(const boost::mpi::communicator& world,
                                  const std::vector<Particle>& mine) {
  std::vector<Particle> all = domdec::gather_to_root(world, mine);  // lesson 3's helper
  std::sort(all.begin(), all.end(),
            [](const Particle& a, const Particle& b) { return a.id < b.id; });
  return all;
}

/// Every particle, in id order, bit for bit: equal when (and only when) the states are.
bool same_particles(const std::vector<Particle>& a, const std::vector<Particle>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(Particle)) == 0);
}

/// A digest of the final state that does not depend on the number of ranks.
std::uint64_t digest(const std::vector<Particle>& sorted) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the bytes
  const auto* bytes = reinterpret_cast<const unsigned char*>(sorted.data());
  for (std::size_t i = 0; i < sorted.size() * sizeof(Particle); ++i)
    h = (h ^ bytes[i]) * 1099511628211ull;
  return h;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;

  tutorial::Cli cli(argc, argv,
                    "Particles in the box [0, 1] with reflecting walls, one slab per rank, run "
                    "twice: sharing every particle with every rank after each step (the "
                    "tutorial's way), and with domdec's Exchanger. Prints the communication of "
                    "each and checks that both end with the same particles.");
  const auto n = cli.option<std::int64_t>("--particles", 100000, "particles in the box");
  const auto steps = cli.option<int>("--steps", 100, "time steps");
  const auto dt = cli.option<double>("--dt", 0.01, "time step");
  const auto max_speed = cli.option<double>("--max-speed", 0.5, "speeds are uniform in +-this");
  const auto seed = cli.option<std::uint64_t>("--seed", 2024, "seed of the initial particles");
  if (n < 0 || n > std::numeric_limits<int>::max())
    cli.reject("--particles must be between 0 and 2^31 - 1 (MPI counts are int)");
  if (steps < 0) cli.reject("--steps must be at least 0");
  if (!(dt > 0.0)) cli.reject("--dt must be positive");
  if (const auto status = cli.finish(world.rank() == 0)) return *status;

  const int rank = world.rank(), p = world.size();
  const domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::reflecting);
  const domdec::Decomposition<1> slabs(world, box);  // equal slabs, one per rank

  // 1. The tutorial's way: allgather everything after every step.
  std::vector<Particle> mine = initial_particles(slabs, n, seed, max_speed);
  std::vector<int> counts, offsets;
  std::vector<Particle> everyone;
  std::size_t allgather_bytes = 0;
  world.barrier();
  Clock::time_point start = Clock::now();
  for (int step = 0; step < steps; ++step) {
    move(mine, box, dt);
    allgather_bytes += share_everything(world, slabs, mine, counts, offsets, everyone);
  }
  const double allgather_seconds = seconds_since(start);
  const std::vector<Particle> by_allgather = final_state(world, mine);

  // 2. domdec's way: only the particles that left a slab travel, to their new owner.
  domdec::Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  mine = initial_particles(slabs, n, seed, max_speed);
  world.barrier();
  start = Clock::now();
  for (int step = 0; step < steps; ++step) {
    move(mine, box, dt);
    exchanger.migrate(mine);
  }
  const double domdec_seconds = seconds_since(start);
  const std::vector<Particle> by_domdec = final_state(world, mine);

  // Communication per step, summed over all ranks.
  const domdec::MigrationStats& s = exchanger.totals();
  const auto sum = [&](std::size_t v) {
    return boost::mpi::all_reduce(world, v, std::plus<std::size_t>());
  };
  const std::size_t all_bytes = sum(allgather_bytes), dd_bytes = sum(s.bytes_received);
  const std::size_t dd_messages = sum(s.messages_received), moved = sum(s.particles_received);
  const double t_all =
      boost::mpi::all_reduce(world, allgather_seconds, boost::mpi::maximum<double>());
  const double t_dd = boost::mpi::all_reduce(world, domdec_seconds, boost::mpi::maximum<double>());

  if (rank == 0) {
    const double per_step = steps > 0 ? 1.0 / steps : 0.0;
    std::printf("%lld particles, %d steps, %d ranks\n", static_cast<long long>(n), steps, p);
    std::printf("communication per step, all ranks together:\n");
    std::printf(
        "  allgather everything: %12.0f bytes received (every rank gets all %lld "
        "particles), 2 collectives\n",
        all_bytes * per_step, static_cast<long long>(n));
    std::printf(
        "  domdec Exchanger:     %12.0f bytes received (%.1f particles crossed a "
        "boundary), %.1f messages + 1 small allreduce\n",
        dd_bytes * per_step, moved * per_step, dd_messages * per_step);
    if (dd_bytes > 0)
      std::printf("  ratio:                %12.1f x less with domdec\n",
                  static_cast<double>(all_bytes) / static_cast<double>(dd_bytes));
    std::printf("wall time of the %d steps (slowest rank): allgather %.3f s, domdec %.3f s\n",
                steps, t_all, t_dd);
    const bool same =
        same_particles(by_allgather, by_domdec) && by_domdec.size() == static_cast<std::size_t>(n);
    std::printf(
        "both ways end with the same particle set: %s (%zu particles, ids, positions "
        "and velocities compared bit for bit)\n",
        same ? "yes" : "NO", by_domdec.size());
    std::printf("final state digest: %016llx\n",
                static_cast<unsigned long long>(digest(by_domdec)));
    std::fflush(stdout);
  }
  const int verdict = rank == 0 ? (same_particles(by_allgather, by_domdec) &&
                                   by_domdec.size() == static_cast<std::size_t>(n))
                                      ? 0
                                      : 1
                                : 0;
  return boost::mpi::all_reduce(world, verdict, boost::mpi::maximum<int>());
}
