// tests/support/test_main.cpp — Catch2 (2.13) under MPI.
//
// - boost::mpi::environment around the whole session;
// - tests run in declaration order on every rank;
// - rank 0 reports on the terminal; every other rank reports into a buffer that is printed,
//   each line tagged "[rank r]", only when that rank had a failure;
// - after each test case, rank 0 names the ranks on which it failed;
// - the exit code is the verdict of all ranks: every rank exits non-zero when any rank failed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <boost/mpi/collectives.hpp>
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/environment.hpp>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// Tells, on rank 0, which ranks failed each test case. Collective: every rank runs the same
// test cases in the same order, so every rank reaches this call the same number of times.
class RankVerdictListener : public Catch::TestEventListenerBase {
 public:
  using Catch::TestEventListenerBase::TestEventListenerBase;

  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    boost::mpi::communicator world;
    const int failed = stats.totals.assertions.failed > 0 ? 1 : 0;
    std::vector<int> all;
    boost::mpi::gather(world, failed, all, 0);
    if (world.rank() != 0) return;
    std::string ranks;
    for (std::size_t r = 0; r < all.size(); ++r)
      if (all[r] != 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (!ranks.empty())
      std::cout << "FAILED on rank(s) " << ranks << ": " << stats.testInfo.name << std::endl;
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(RankVerdictListener)

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;

  std::ostringstream captured;
  std::streambuf* terminal = std::cout.rdbuf();
  if (world.rank() != 0) std::cout.rdbuf(captured.rdbuf());

  Catch::Session session;
  session.configData().runOrder = Catch::RunTests::InDeclarationOrder;
  session.configData().useColour = Catch::UseColour::No;  // logs, not terminals
  int status = session.applyCommandLine(argc, argv);
  int failures = status != 0 ? 1 : 0;
  if (status == 0) failures = session.run();
  std::cout.flush();
  std::cout.rdbuf(terminal);

  // Failing ranks' reports, in rank order, after rank 0's own.
  const std::string report = failures != 0 ? captured.str() : std::string();
  std::vector<std::string> reports;
  boost::mpi::gather(world, report, reports, 0);
  if (world.rank() == 0) {
    for (std::size_t r = 1; r < reports.size(); ++r) {
      if (reports[r].empty()) continue;
      std::istringstream lines(reports[r]);
      for (std::string line; std::getline(lines, line);) std::cout << "[rank " << r << "] " << line << '\n';
    }
  }
  int any_failed = 0;
  boost::mpi::all_reduce(world, failures != 0 ? 1 : 0, any_failed, boost::mpi::maximum<int>());
  if (world.rank() == 0) {
    std::cout << (any_failed ? "MPI verdict: FAILED" : "MPI verdict: passed") << " on "
              << world.size() << " rank(s)" << std::endl;
  }
  return any_failed != 0 ? 1 : 0;
}
