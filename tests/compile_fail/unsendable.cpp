// Must NOT compile: a particle type that is neither an MPI datatype nor serializable.
// The test expects domdec's static_assert message, which tells the user how to fix the type.
#include <domdec/domdec.hpp>

struct Unsendable {
  double x;  // no serialize(), no BOOST_IS_MPI_DATATYPE
};

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;
  domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::periodic);
  domdec::Decomposition<1> slabs(world, box);
  domdec::Exchanger<Unsendable, 1> exchanger(slabs, &Unsendable::x);
  std::vector<Unsendable> mine;
  exchanger.migrate(mine);
}
