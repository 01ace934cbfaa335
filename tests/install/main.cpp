// The smallest domdec program: particles spread over the ranks, moved, migrated, counted.
#include <domdec/domdec.hpp>

#include <boost/mpi.hpp>
#include <cstdint>
#include <iostream>
#include <vector>

struct Particle {
  std::int64_t id;
  double x;
  double v;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & v;
  }
};
BOOST_IS_MPI_DATATYPE(Particle)

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;
  const domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::periodic);
  const domdec::Decomposition<1> slabs(world, box);
  domdec::Exchanger<Particle, 1> exchanger(slabs, &Particle::x);

  std::vector<Particle> mine;
  for (std::int64_t id = 0; id < 1000; ++id) {
    const double x = (id + 0.5) / 1000.0;
    if (slabs.owner_of(x) == world.rank()) mine.push_back({id, x, 0.013 * (id % 7 - 3)});
  }
  for (int step = 0; step < 100; ++step) {
    for (auto& p : mine) p.x += p.v;
    box.apply_boundaries(mine, &Particle::x);
    exchanger.migrate(mine);
  }
  const long total = boost::mpi::all_reduce(world, static_cast<long>(mine.size()), std::plus<long>());
  if (world.rank() == 0) std::cout << "downstream: " << total << " particles on " << world.size() << " ranks\n";
  return total == 1000 ? 0 : 1;
}
