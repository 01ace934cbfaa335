// driver_quickstart: docs/driver.md's example. The README's quickstart with the Driver owning
// the loop: it propagates, applies the walls, migrates, checks that no particle was lost,
// calls an observer, prints progress and a run summary.
//   mpirun -np 4 ./build/examples/particle_box/driver_quickstart
#include <boost/mpi.hpp>
#include <cstdint>
#include <domdec/domdec.hpp>
#include <iostream>
#include <vector>

struct Particle {
  std::int64_t id;
  double x, v;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & v;
  }
};
BOOST_IS_MPI_DATATYPE(Particle)

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;
  domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::reflecting);
  domdec::Decomposition<1> slabs(world, box);
  domdec::Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  domdec::Driver driver(exchanger, &Particle::v);  // walls flip v

  // Every 25 steps (and at the start and the end): the particles on this rank.
  driver.observe(25, [&](const std::vector<Particle>& mine, const domdec::StepInfo& info) {
    const long n = boost::mpi::all_reduce(world, long(mine.size()), std::plus<long>());
    if (world.rank() == 0) std::cout << "step " << info.step << ": " << n << " particles\n";
  });

  std::vector<Particle> mine;  // rank 0 creates them all; the Driver hands them out first
  if (world.rank() == 0)
    for (std::int64_t id = 0; id < 1000; ++id)
      mine.push_back({id, (id + 0.5) / 1000, 0.003 * (id % 11 - 5)});

  driver.run(mine, 100, [](Particle& p) { p.x += p.v; });  // your physics, per particle
}
