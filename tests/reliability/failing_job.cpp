// failing_job: step loops that go wrong on purpose on rank 1 at step 5, and must still end
// cleanly: every rank exits non-zero within seconds with a message that says what happened,
// and no rank is left waiting. It is also the reference for the error-handling pattern of
// docs/reliability.md (`main` below).
//
// A plain Exchanger loop (no driver):
//   mpirun -np 3 failing_job nan        a NaN position: ParticleError on every rank, which
//                                       returns 1 after MPI_Finalize
//   mpirun -np 3 failing_job exception  the step throws on rank 1 and hands the exception to
//                                       migrate: domdec::Error on every rank, MPI_Finalize
//   mpirun -np 3 failing_job unrouted   the step throws on rank 1 and does not hand it on: that
//                                       rank aborts the job (MPI_Abort), nobody hangs
// The same failures under domdec::Driver, which routes them itself (check_every is 100, so
// nothing waits for a check point):
//   mpirun -np 3 failing_job driver_nan           ParticleError on every rank in step 5, with
//                                                 the particle's position before the step
//   mpirun -np 3 failing_job driver_exception     RunError on every rank in step 5
//   mpirun -np 3 failing_job allgather_nan        the same two over AllgatherExchanger
//   mpirun -np 3 failing_job allgather_exception
//
// tests/reliability/check_failing_job.cmake runs it and checks exit code, messages and time.
#include <domdec/domdec.hpp>

#include <algorithm>
#include <array>
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/environment.hpp>
#include <cmath>
#include <cstdint>
#include <exception>
#include <iostream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Particle {
  std::int64_t id = 0;
  double x = 0.0;
  double v = 0.0;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & v;
  }
};

enum class Mode { nan, exception, unrouted };

constexpr int bad_step = 5;
constexpr int bad_rank = 1;

// The step loop: propagate, apply the walls, migrate. The propagation also remembers the first
// particle it broke and where it was before, so the error can say so (MigrateContext::explain).
int run(const boost::mpi::communicator& world, Mode mode) {
  const domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::periodic);
  const domdec::Decomposition<1> slabs(world, box);
  domdec::Exchanger<Particle, 1> exchanger(slabs, &Particle::x);
  std::vector<Particle> mine;
  for (std::int64_t id = 0; id < 1000; ++id) {
    const double x = (static_cast<double>(id) + 0.5) / 1000.0;
    if (slabs.owner_of(x) == world.rank())
      mine.push_back({id, x, 0.001 * static_cast<double>(id % 7 - 3)});
  }

  struct Broken {
    std::int64_t id = -1;
    double old_x = 0.0;
    double v = 0.0;
  } broken;
  domdec::MigrateContext<Particle> context;
  context.explain = [&](const Particle& p, std::size_t) {
    if (p.id != broken.id) return std::string();
    std::ostringstream text;
    text.precision(17);
    text << "Before step " << context.step << " it was at " << broken.old_x << " with velocity "
         << broken.v << ".";
    return text.str();
  };

  for (int step = 1; step <= 10; ++step) {
    context.step = step;
    context.failure = nullptr;
    try {
      for (Particle& p : mine) {
        const double old_x = p.x;
        p.x += p.v;  // the physics
        if (step == bad_step && world.rank() == bad_rank && &p == &mine.front()) {
          if (mode == Mode::nan) p.x = std::numeric_limits<double>::quiet_NaN();
          if (mode != Mode::nan) {
            throw std::runtime_error("the force on particle " + std::to_string(p.id) + " diverged");
          }
        }
        if (!std::isfinite(p.x) && broken.id < 0) broken = {p.id, old_x, p.v};
      }
    } catch (...) {
      if (mode == Mode::unrouted) throw;           // the mistake this mode shows: the others wait
      context.failure = std::current_exception();  // every rank will stop in migrate
    }
    box.apply_boundaries(mine, &Particle::x);
    exchanger.migrate(mine, context);
  }
  std::cout << "rank " << world.rank() << " finished all steps" << std::endl;
  return 0;
}

// The same job on the Driver: the functor breaks a particle (or throws) on rank 1 at step 5.
// The Driver checks the new positions, hands a throw to that step's migrate, and every rank
// stops in step 5; each rank says where it stopped before the error reaches `main`.
template <class Migrator>
int run_driver(const boost::mpi::communicator& world, Mode mode) {
  const domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::periodic);
  const domdec::Decomposition<1> slabs(world, box);
  Migrator migrator(slabs, &Particle::x);
  domdec::DriverOptions options;
  options.quiet = true;
  options.summary = false;  // check_every stays 100: errors must not wait for a check point
  domdec::Driver driver(migrator, &Particle::v, options);
  std::vector<Particle> mine;
  for (std::int64_t id = world.rank(); id < 1000; id += world.size()) {
    mine.push_back(
        {id, (static_cast<double>(id) + 0.5) / 1000.0, 0.001 * static_cast<double>(id % 7 - 3)});
  }
  bool injected = false;
  auto propagate = [&](Particle& p, std::int64_t step) {
    const double old_x = p.x;
    p.x += p.v;  // the physics
    if (step != bad_step || world.rank() != bad_rank || injected) return;
    injected = true;
    if (mode == Mode::exception) {
      throw std::runtime_error("the force on particle " + std::to_string(p.id) + " diverged");
    }
    p.x = std::numeric_limits<double>::quiet_NaN();
    const domdec::Interval slab = slabs.local_bounds();
    std::ostringstream line;
    line.precision(17);
    line << "rank " << world.rank() << " injected NaN: step " << step << ", id " << p.id
         << ", before (" << old_x << "), velocity (" << p.v << "), slab [" << slab.lower << ", "
         << slab.upper << ")\n";
    std::cout << line.str() << std::flush;
  };
  try {
    driver.run(mine, 10, propagate);
  } catch (...) {
    std::cout << "rank " << world.rank() << " stopped after step " << driver.step() << std::endl;
    throw;
  }
  std::cout << "rank " << world.rank() << " finished all steps" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char* argv[]) {
  int rank = -1;
  int code = 0;
  {
    boost::mpi::environment env(argc, argv);
    boost::mpi::communicator world;
    rank = world.rank();
    const std::string name = argc > 1 ? argv[1] : "";
    const std::array<std::string, 7> modes{
        "nan",           "exception",          "unrouted", "driver_nan", "driver_exception",
        "allgather_nan", "allgather_exception"};
    if (std::find(modes.begin(), modes.end(), name) == modes.end()) {
      if (rank == 0) {
        std::cerr << "usage: failing_job nan|exception|unrouted|driver_nan|driver_exception|"
                     "allgather_nan|allgather_exception\n";
      }
      return 2;  // the same on every rank: each reaches MPI_Finalize
    }
    const bool nan = name.find("nan") != std::string::npos;
    const Mode mode = nan ? Mode::nan : name == "unrouted" ? Mode::unrouted : Mode::exception;
    const bool driver = name.rfind("driver_", 0) == 0;
    const bool allgather = name.rfind("allgather_", 0) == 0;
    try {
      if (driver) {
        code = run_driver<domdec::Exchanger<Particle, 1>>(world, mode);
      } else if (allgather) {
        code = run_driver<domdec::AllgatherExchanger<Particle, 1>>(world, mode);
      } else {
        code = run(world, mode);
      }
    } catch (const domdec::CommunicationError& e) {
      // An MPI call failed on this rank: the others may be waiting for it.
      std::cerr << "rank " << rank << ": " << e.what() << "; aborting the job" << std::endl;
      env.abort(3);
    } catch (const domdec::ParticleError& e) {
      // Thrown by migrate on every rank with the same message: every rank can return.
      std::cout << "rank " << rank << ": ParticleError: " << e.what() << std::endl;
      code = 1;
    } catch (const domdec::RunError& e) {
      // The Driver's: user code threw on some rank, and every rank stopped with it.
      std::cout << "rank " << rank << ": RunError: " << e.what() << std::endl;
      code = 1;
    } catch (const domdec::Error& e) {
      // SetupError from a constructor, or a failure a rank handed to migrate: every rank.
      std::cout << "rank " << rank << ": Error: " << e.what() << std::endl;
      code = 1;
    } catch (const std::exception& e) {
      // Thrown on this rank only: the others would wait for it forever, so end the job.
      std::cerr << "rank " << rank << " failed alone: " << e.what() << "; aborting the job"
                << std::endl;
      env.abort(4);
    }
    std::cout << "rank " << rank << " calls MPI_Finalize, exit code " << code << std::endl;
  }  // MPI_Finalize
  // Not guaranteed to be seen from every rank: once one rank has exited non-zero, mpirun ends
  // the others, which by then are through MPI_Finalize.
  std::cout << "rank " << rank << " finalized" << std::endl;
  return code;
}
