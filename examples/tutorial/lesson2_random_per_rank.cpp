// Tutorial lesson 2, "Different work per rank": the same program does different work on each
// rank because it looks at its rank. Each rank draws numbers from a normal distribution whose
// mean is its rank and prints the mean it got. Every rank's random stream is seeded from the
// one command-line seed and the rank: different on every rank, the same in every run.
//   mpirun -np 4 ./build/examples/tutorial/lesson2_random_per_rank --seed 2024
#include <boost/mpi.hpp>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>

#include "cli.hpp"

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;

  tutorial::Cli cli(argc, argv,
                    "Each rank draws numbers from N(rank, 1) and prints their mean. The streams "
                    "differ per rank and are reproducible from --seed.");
  const auto seed = cli.option<std::uint32_t>("--seed", 2024, "seed of the whole run");
  const auto draws = cli.option<long>("--draws", 100000, "numbers drawn on each rank");
  if (draws < 1) cli.reject("--draws must be at least 1");
  if (const auto status = cli.finish(world.rank() == 0)) return *status;

  // One seed for the run, mixed with the rank: rank 0 and rank 1 get unrelated streams, and
  // the same (seed, rank) gives the same stream in every run.
  const int rank = world.rank();
  std::seed_seq seeds{seed, static_cast<std::uint32_t>(rank)};
  std::mt19937_64 generator(seeds);
  std::normal_distribution<double> normal(/*mean=*/rank, /*stddev=*/1.0);

  double sum = 0.0, first = 0.0;
  for (long i = 0; i < draws; ++i) {
    const double x = normal(generator);
    if (i == 0) first = x;
    sum += x;
  }
  const double mean = sum / static_cast<double>(draws);

  std::ostringstream line;
  line << std::fixed << std::setprecision(6) << "rank " << rank << ": seed (" << seed << ", "
       << rank << "), mean of " << draws << " draws from N(" << rank << ", 1) = " << mean
       << ", first draw - rank = " << std::showpos << first - rank << '\n';
  std::cout << line.str() << std::flush;
}
