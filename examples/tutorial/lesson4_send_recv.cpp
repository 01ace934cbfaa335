// Tutorial lesson 4, "send/recv": point-to-point messages between two ranks, told apart by tags.
// Part 1 passes a token around a ring: rank 0 sends it to rank 1, which adds its name and sends
// it on, ... until it comes back to rank 0. The ring's neighbours come from a domdec
// Decomposition of a periodic box, where the last slab's upper neighbour is rank 0.
// Part 2: rank 0 sends every other rank a few messages of different kinds, one tag per kind;
// the receiver looks at each message's tag to know what it is.
//   mpirun -np 4 ./build/examples/tutorial/lesson4_send_recv
#include <boost/mpi.hpp>
#include <boost/serialization/string.hpp>
#include <domdec/domdec.hpp>
#include <iostream>
#include <sstream>
#include <string>

#include "cli.hpp"

namespace {
// Tags: any non-negative int; the receiver asks for a tag (or for any tag and then looks).
constexpr int token_tag = 0;
constexpr int work_tag = 1;  // an int: one piece of work to do
constexpr int stop_tag = 2;  // nothing more will come
}  // namespace

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;

  tutorial::Cli cli(argc, argv,
                    "Part 1: a token goes round the ring of ranks. Part 2: rank 0 sends work "
                    "items and a stop message to every rank; the tag says which is which.");
  const auto items = cli.option<int>("--items", 3, "work items rank 0 sends to each rank");
  if (items < 0) cli.reject("--items must be at least 0");
  if (const auto status = cli.finish(world.rank() == 0)) return *status;

  const int rank = world.rank(), size = world.size();
  if (size == 1) {
    if (rank == 0) std::cout << "only one rank: nobody to talk to (try mpirun -np 4)\n";
    return 0;
  }

  // Part 1: the ring. Slabs of a periodic box: rank r's upper neighbour is r + 1, the last
  // rank's is 0.
  const domdec::Domain<1> ring({0.0}, {1.0}, domdec::Boundary::periodic);
  const domdec::Decomposition<1> slabs(world, ring);
  const int next = *slabs.upper_neighbour();
  const int previous = *slabs.lower_neighbour();
  if (rank == 0) {
    world.send(next, token_tag, std::string("0"));  // std::string: travels serialized
    std::string token;
    world.recv(previous, token_tag, token);
    std::cout << "the token went round the ring: " << token << " -> 0\n";
  } else {
    std::string token;
    world.recv(previous, token_tag, token);  // blocks until the message from `previous` is here
    token += " -> " + std::to_string(rank);
    world.send(next, token_tag, token);
  }

  // Part 2: rank 0 sends items, then a stop; every other rank takes whatever comes next from
  // rank 0 and looks at the tag to know what it is.
  std::ostringstream report;
  if (rank == 0) {
    for (int dest = 1; dest < size; ++dest) {
      for (int i = 0; i < items; ++i) world.send(dest, work_tag, 100 * dest + i);  // an int
      world.send(dest, stop_tag);  // a message with no content: the tag says it all
    }
    report << "rank 0: sent " << items << " work items and a stop to each of " << size - 1
           << " ranks";
  } else {
    int sum = 0, received = 0;
    for (;;) {
      const boost::mpi::status next_message = world.probe(0, boost::mpi::any_tag);
      if (next_message.tag() == stop_tag) {
        world.recv(0, stop_tag);
        break;
      }
      int item = 0;
      world.recv(0, work_tag, item);
      sum += item;
      ++received;
    }
    report << "rank " << rank << ": received " << received << " work items (sum " << sum
           << "), then the stop message";
  }
  domdec::print_in_rank_order(world, report.str(), std::cout);  // lesson 3
}
