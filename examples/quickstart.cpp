// quickstart: the README's example. Particles on a ring [0, 1) cut into one slab per rank;
// each step moves them, wraps them, and hands each to the rank that now owns it.
//   mpirun -np 4 ./build/examples/quickstart
#include <domdec/domdec.hpp>

#include <boost/mpi.hpp>
#include <cstdint>
#include <iostream>
#include <vector>

struct Particle {
  std::int64_t id;
  double x, v;
  template <class Archive> void serialize(Archive& ar, unsigned) { ar & id & x & v; }
};
BOOST_IS_MPI_DATATYPE(Particle)  // plain data: travels typed, no packing

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;
  domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::periodic);
  domdec::Decomposition<1> slabs(world, box);                      // one slab per rank
  domdec::Exchanger<Particle, 1> exchanger(slabs, &Particle::x);   // where the position lives

  std::vector<Particle> mine;  // each rank creates the particles in its own slab
  for (std::int64_t id = 0; id < 1000; ++id) {
    const double x = (id + 0.5) / 1000;
    if (slabs.owner_of(x) == world.rank()) mine.push_back({id, x, 0.001 * (id % 11 - 5)});
  }
  for (int step = 0; step < 100; ++step) {
    for (auto& p : mine) p.x += p.v;             // your physics: no communication
    box.apply_boundaries(mine, &Particle::x);    // wrap around the ring
    exchanger.migrate(mine);                     // leavers go to their new owner
  }
  std::cout << "rank " << world.rank() << ": " << mine.size() << " particles, "
            << exchanger.totals().particles_sent << " sent in 100 steps\n";
  const long total = boost::mpi::all_reduce(world, long(mine.size()), std::plus<long>());
  if (world.rank() == 0) std::cout << "total: " << total << " particles\n";  // nothing lost
}
