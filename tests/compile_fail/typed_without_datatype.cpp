// Must NOT compile: asking for typed transport of a type that is not an MPI datatype.
#include <string>

#include <domdec/domdec.hpp>

struct Labelled {
  double x;
  std::string label;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & x & label;
  }
};

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;
  domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::periodic);
  domdec::Decomposition<1> slabs(world, box);
  domdec::Exchanger<Labelled, 1, domdec::Typed> exchanger(slabs, &Labelled::x);
}
