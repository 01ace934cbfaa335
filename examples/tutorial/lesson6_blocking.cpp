// Tutorial lesson 6, "Blocking": every rank sends a large array to its right neighbour in a
// ring and receives one from its left neighbour.
//
// Written the naive way (send, then receive) it deadlocks once messages are large: a blocking
// send of a large message returns only when the receiver has started to receive it, and every
// rank is still sending. `--deadlock` runs that version with a watchdog: the send is exactly
// what MPI_Send does (MPI_Isend + wait), but the wait gives up after `--timeout` seconds, says
// so, and the program exits with status 3 instead of hanging.
//
// By default it runs the two fixes: MPI_Sendrecv (send and receive in one call, which MPI
// schedules without deadlock) and non-blocking isend/irecv followed by wait_all.
//   mpirun -np 4 ./build/examples/tutorial/lesson6_blocking
//   mpirun -np 4 ./build/examples/tutorial/lesson6_blocking --deadlock
#include <mpi.h>

#include <algorithm>
#include <boost/mpi.hpp>
#include <chrono>
#include <cstddef>
#include <domdec/ordered_output.hpp>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int tag = 6;

/// The array rank `from` sends: its values say who sent them, so a wrong delivery shows.
std::vector<double> payload(int from, std::size_t count) {
  std::vector<double> values(count);
  for (std::size_t i = 0; i < count; ++i) values[i] = from + 1e-9 * static_cast<double>(i);
  return values;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Fix 1: one call that sends and receives. MPI progresses both, so the ring cannot lock.
/// (Boost.MPI 1.74's sendrecv takes single values only, so this calls MPI directly.)
void exchange_with_sendrecv(const boost::mpi::communicator& world, int right, int left,
                            const std::vector<double>& out, std::vector<double>& in) {
  const int rc = MPI_Sendrecv(out.data(), static_cast<int>(out.size()), MPI_DOUBLE, right, tag,
                              in.data(), static_cast<int>(in.size()), MPI_DOUBLE, left, tag,
                              MPI_Comm(world), MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) throw std::runtime_error("MPI_Sendrecv failed");
}

/// Fix 2: post both operations without waiting, then wait for both.
void exchange_with_isend_irecv(const boost::mpi::communicator& world, int right, int left,
                               const std::vector<double>& out, std::vector<double>& in) {
  boost::mpi::request requests[2] = {
      world.irecv(left, tag, in.data(), static_cast<int>(in.size())),
      world.isend(right, tag, out.data(), static_cast<int>(out.size())),
  };
  boost::mpi::wait_all(requests, requests + 2);
}

/// The naive version: send (blocking), then receive. The send is MPI_Isend + waiting for it
/// to complete, which is what MPI_Send does, except that the wait gives up at the deadline.
/// Returns true when this rank's send completed in time. Collective (every rank calls it).
bool naive_exchange_with_watchdog(const boost::mpi::communicator& world, int right, int left,
                                  const std::vector<double>& out, std::vector<double>& in,
                                  double timeout, std::ostringstream& report) {
  const Clock::time_point start = Clock::now();
  boost::mpi::request send = world.isend(right, tag, out.data(), static_cast<int>(out.size()));
  bool sent = false;
  while (!sent && seconds_since(start) < timeout) {  // a blocking send waits here, for ever
    sent = static_cast<bool>(send.test());
  }
  if (sent) {
    world.recv(left, tag, in.data(), static_cast<int>(in.size()));  // ...and only then receives
    report << "rank " << world.rank() << ": the naive exchange finished in " << std::fixed
           << std::setprecision(1) << 1e3 * seconds_since(start) << " ms";
  } else {
    report << "rank " << world.rank() << ": still blocked after " << timeout << " s in its send of "
           << out.size() * sizeof(double) << " bytes to rank " << right
           << ", which never posted the receive: it is blocked sending too";
  }
  // Undo the deadlock so every rank can leave cleanly. No rank receives before its own
  // deadline unless its send went through, so every stuck rank was really stuck. Then the
  // stuck ranks post the receive the naive code never reached, and every send completes.
  const int stuck = boost::mpi::all_reduce(world, sent ? 0 : 1, std::plus<int>());
  if (!sent) {
    world.recv(left, tag, in.data(), static_cast<int>(in.size()));
    send.wait();
  }
  return stuck == 0;
}

}  // namespace

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;

  tutorial::Cli cli(argc, argv,
                    "Every rank sends an array to its right neighbour in a ring and receives one "
                    "from its left. By default: the two deadlock-free versions. With --deadlock: "
                    "the naive send-then-receive version, which locks up for large arrays; a "
                    "watchdog reports it and the program exits with status 3.");
  const auto count = cli.option<long>("--count", 1000000, "doubles per message");
  const bool deadlock = cli.flag("--deadlock", "run the naive version that deadlocks");
  const auto timeout = cli.option<double>("--timeout", 2.0, "seconds the watchdog waits");
  if (count < 1) cli.reject("--count must be at least 1");
  if (!(timeout > 0.0)) cli.reject("--timeout must be positive");
  if (const auto status = cli.finish(world.rank() == 0)) return *status;

  const int rank = world.rank(), size = world.size();
  const int right = (rank + 1) % size, left = (rank + size - 1) % size;
  const auto n = static_cast<std::size_t>(count);
  const std::vector<double> out = payload(rank, n);
  const std::vector<double> expected = payload(left, n);
  std::vector<double> in(n);

  if (deadlock) {
    world.barrier();  // every rank starts its send together
    std::ostringstream report;
    const bool finished =
        naive_exchange_with_watchdog(world, right, left, out, in, timeout, report);
    domdec::print_in_rank_order(world, report.str(), std::cout);
    if (rank == 0) {
      if (finished) {
        std::cout << "no deadlock: messages of " << n * sizeof(double) << " bytes were small "
                  << "enough for MPI to buffer them; try a larger --count" << std::endl;
      } else {
        std::cerr << "DEADLOCK: every rank sent before receiving, and a blocking send of a large "
                  << "message waits for its receiver. A real MPI_Send would have waited forever; "
                  << "the watchdog gave up after " << timeout << " s. Exiting with status 3. "
                  << "Run without --deadlock for the two fixes." << std::endl;
      }
    }
    return finished ? 0 : 3;
  }

  bool all_correct = true;
  for (const std::string method : {"sendrecv", "isend/irecv + wait_all"}) {
    std::fill(in.begin(), in.end(), -1.0);
    if (method == "sendrecv") {
      exchange_with_sendrecv(world, right, left, out, in);
    } else {
      exchange_with_isend_irecv(world, right, left, out, in);
    }
    const bool correct = in == expected;
    all_correct = all_correct && correct;
    std::ostringstream report;
    report << method << ": rank " << rank << " received " << n << " doubles from rank " << left
           << (correct ? " (correct)" : " (WRONG)");
    domdec::print_in_rank_order(world, report.str(), std::cout);
  }
  const bool everywhere =
      boost::mpi::all_reduce(world, all_correct ? 1 : 0, boost::mpi::minimum<int>()) == 1;
  if (rank == 0) {
    std::cout << (everywhere ? "both fixes finished, every rank received its left neighbour's array"
                             : "ERROR: some rank received wrong data")
              << std::endl;
  }
  return everywhere ? 0 : 1;
}
