// Tutorial lesson 3, "Unordered execution": ranks run at their own pace, so what they print
// arrives in no fixed order. Part 1 lets every rank print as soon as its (simulated) work is
// done; part 2 prints the same reports through domdec::print_in_rank_order, which gathers
// every rank's text on rank 0 and prints it there, rank by rank.
//   mpirun -np 4 ./build/examples/tutorial/lesson3_ordered_output
#include <boost/mpi.hpp>
#include <chrono>
#include <cstdint>
#include <domdec/ordered_output.hpp>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "cli.hpp"

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;

  tutorial::Cli cli(argc, argv,
                    "Part 1: every rank prints when its work is done (the order varies from run "
                    "to run). Part 2: domdec::print_in_rank_order prints the same reports in "
                    "rank order.");
  const auto rounds = cli.option<int>("--rounds", 3, "pieces of work on each rank");
  const auto seed =
      cli.option<std::uint32_t>("--seed", 0, "seed of the work durations (0: a new one per run)");
  if (rounds < 1) cli.reject("--rounds must be at least 1");
  if (const auto status = cli.finish(world.rank() == 0)) return *status;

  const int rank = world.rank();
  std::seed_seq seeds{seed != 0 ? seed : std::random_device{}(), static_cast<std::uint32_t>(rank)};
  std::mt19937 generator(seeds);
  std::uniform_int_distribution<int> milliseconds(1, 40);

  // Part 1: print as soon as each piece of work is done.
  if (rank == 0) std::cout << "--- part 1: every rank prints when it is ready ---\n" << std::flush;
  world.barrier();  // everybody starts the work together (it does not order the output!)
  int total_ms = 0;
  for (int round = 1; round <= rounds; ++round) {
    const int ms = milliseconds(generator);  // work of uneven length, like real work
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    total_ms += ms;
    std::ostringstream line;
    line << "as ready: rank " << rank << " finished piece " << round << " (" << ms << " ms)\n";
    std::cout << line.str() << std::flush;
  }

  // Part 2: the same report, in rank order. Collective: every rank calls it.
  world.barrier();
  if (rank == 0) std::cout << "--- part 2: domdec::print_in_rank_order ---\n" << std::flush;
  std::ostringstream report;
  report << "in order: rank " << rank << " finished " << rounds << " pieces in " << total_ms
         << " ms";
  domdec::print_in_rank_order(world, report.str(), std::cout);
}
