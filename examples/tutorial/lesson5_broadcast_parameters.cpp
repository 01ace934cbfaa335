// Tutorial lesson 5, "Telling each rank how to behave": only the root reads the run's
// parameters (here from the command line; in real runs often from a file), then broadcasts
// them as one struct; every rank receives the same values and takes its role from its rank.
// Even a bad parameter is broadcast: every rank learns that it must stop, so none is left
// waiting for a message that never comes.
//   mpirun -np 4 ./build/examples/tutorial/lesson5_broadcast_parameters --particles 1000
#include <boost/mpi.hpp>
#include <cstdint>
#include <domdec/ordered_output.hpp>
#include <iostream>
#include <sstream>

#include "cli.hpp"

namespace {

/// What the root tells every rank. Plain data listed in serialize() and marked as an MPI
/// datatype: broadcast typed, as one block of 32 bytes (members largest first: no padding).
struct RunParameters {
  std::int64_t particles = 0;
  double dt = 0.0;
  std::uint64_t seed = 0;
  std::int32_t steps = 0;
  std::int32_t status = -1;  // -1: run; otherwise every rank exits with this status
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & particles & dt & seed & steps & status;
  }
};

}  // namespace

BOOST_IS_MPI_DATATYPE(RunParameters)

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;
  const int root = 0;

  RunParameters parameters;
  if (world.rank() == root) {  // only the root looks at the command line
    tutorial::Cli cli(argc, argv,
                      "Rank 0 reads the parameters and broadcasts them; rank 0 then coordinates "
                      "and the other ranks each work on their share of the particles.");
    parameters.particles = cli.option<std::int64_t>("--particles", 1000, "particles in the run");
    parameters.steps = cli.option<std::int32_t>("--steps", 100, "time steps");
    parameters.dt = cli.option<double>("--dt", 0.01, "time step length");
    parameters.seed = cli.option<std::uint64_t>("--seed", 2024, "seed of the run");
    if (parameters.particles < 0) cli.reject("--particles must be at least 0");
    if (parameters.steps < 1) cli.reject("--steps must be at least 1");
    if (!(parameters.dt > 0.0)) cli.reject("--dt must be positive");
    parameters.status = cli.finish(/*print=*/true).value_or(-1);
  }
  boost::mpi::broadcast(world, parameters, root);  // every rank calls it, on every path
  if (parameters.status >= 0) return parameters.status;

  // Roles: rank 0 coordinates; the others split the particles into contiguous blocks. With a
  // single rank, rank 0 does the work itself.
  const int rank = world.rank(), size = world.size();
  const int workers = size > 1 ? size - 1 : 1;
  const int worker = size > 1 ? rank - 1 : 0;  // index among the workers; -1 for the coordinator
  std::int64_t first = 0, count = 0;
  if (worker >= 0) {
    first = parameters.particles * worker / workers;
    count = parameters.particles * (worker + 1) / workers - first;
  }

  std::ostringstream report;
  report << "rank " << rank << ": particles " << parameters.particles << ", steps "
         << parameters.steps << ", dt " << parameters.dt << ", seed " << parameters.seed << " | ";
  if (worker >= 0) {
    report << "worker: particles [" << first << ", " << first + count << ")";
  } else {
    report << "coordinator";
  }
  domdec::print_in_rank_order(world, report.str(), std::cout);

  // The coordinator checks that the blocks cover every particle exactly once.
  const std::int64_t covered = boost::mpi::all_reduce(world, count, std::plus<std::int64_t>());
  if (rank == root) {
    std::cout << "coordinator: the workers cover " << covered << " of " << parameters.particles
              << " particles" << std::endl;
  }
  return covered == parameters.particles ? 0 : 1;
}
