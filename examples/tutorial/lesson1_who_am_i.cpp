// Tutorial lesson 1, "Who am I?": every process started by mpirun runs this same program; each
// learns its rank (0, 1, ...) and the number of ranks, says so once, and exits.
//   mpirun -np 4 ./build/examples/tutorial/lesson1_who_am_i
//   ./build/examples/tutorial/lesson1_who_am_i        (no mpirun: one process, rank 0 of 1)
#include <unistd.h>

#include <boost/mpi.hpp>
#include <iostream>
#include <sstream>

#include "cli.hpp"

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);  // MPI_Init; MPI_Finalize when it goes out of scope
  boost::mpi::communicator world;           // MPI_COMM_WORLD: every process of this run

  tutorial::Cli cli(argc, argv, "Every rank reports its rank and the number of ranks, once.");
  if (const auto status = cli.finish(world.rank() == 0)) return *status;

  std::ostringstream line;  // built first and written at once, so lines do not mix
  line << "Hello from rank " << world.rank() << " of " << world.size() << " (process " << getpid()
       << " on " << boost::mpi::environment::processor_name() << ")\n";
  std::cout << line.str() << std::flush;
}
