// particle_box: the tutorial's 1-D box at scale. N particles in [0, 1] with reflecting walls,
// positions uniform, velocities normal, moved ballistically (optionally with Brownian noise)
// by domdec's Driver over all ranks. The result does not depend on the number of ranks: every
// particle's initial values and noise come from a counter-based generator keyed by its id.
//
//   mpirun -np 4 ./build/examples/particle_box/particle_box --particles 1e6 --steps 1000
//   ./build/examples/particle_box/particle_box --help
//
// With --output DIR it writes the space-time density (density.csv, ranks.csv, run.json, for
// plot_spacetime.py), snapshots for OVITO/VMD (particles.lammpstrj) and ParaView
// (particles.pvd), the run summary (summary.txt) and the final state sorted by id
// (final_state.bin: int64 id, double x, double v per particle; bitwise comparable).
#include <boost/mpi.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <domdec/domdec.hpp>
#include <domdec/random.hpp>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Particle {
  std::int64_t id;
  double x;  // position in [0, 1]
  double v;  // velocity
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & v;
  }
};

}  // namespace

BOOST_IS_MPI_DATATYPE(Particle)  // plain data: travels typed unless --transport serialized

namespace {

// ---- Command line ---------------------------------------------------------------------------

struct Settings {
  std::int64_t particles = 1000000;
  std::int64_t steps = 1000;
  double dt = 1e-3;
  std::uint64_t seed = 1;
  std::string transport = "typed";
  std::string strategy = "exchange";
  std::string output;
  bool quiet = false;
  bool help = false;
  std::string initial = "uniform";
  double diffusion = 0.0;
  std::int64_t check_every = 100;
  bool check_positions = true;
  double progress_seconds = 1.0;
  std::int64_t snapshot_every = 0;  // 0: steps / 10
  std::int64_t snapshot_particles = 10000;
  std::int64_t density_every = 0;  // 0: steps / 200
  std::int64_t bins = 200;
};

const char* const usage =
    R"(particle_box: N particles in the 1-D box [0, 1] with reflecting walls, distributed
over the MPI ranks by domdec. Positions start uniform, velocities normal (mean 0, sd 1); each
step moves every particle by v dt (plus Brownian noise with --diffusion), reflects it at the
walls and hands it to the rank owning its new position. The result is the same, bit for bit,
at any number of ranks.

usage: mpirun -np P particle_box [options]

  --particles N         number of particles (default 1000000; 1e6 is accepted)
  --steps S             number of steps (default 1000)
  --dt DT               time step (default 0.001)
  --seed K              random seed of the initial conditions and noise (default 1)
  --transport T         typed | serialized: how particles travel (default typed)
  --strategy S          exchange | allgather: exchange sends each particle to its new owner;
                        allgather is the tutorial's approach (every rank receives every
                        particle every step and keeps its own), for comparison (default exchange)
  --output DIR          write density, snapshots, summary and final state into DIR
  --quiet               no progress lines (the summary is still printed)
  --initial I           uniform | left: positions uniform in [0, 1), or in [0, 0.25) (a gas
                        expanding into the box: all particles start on the first ranks)
  --diffusion D         Brownian noise with diffusion coefficient D (default 0)
  --check-every K       conservation check every K steps (default 100)
  --check-positions on|off  check every new position for NaN/Inf in the propagation loop, so
                        an error can say where the particle was before (default on)
  --progress-seconds T  at most one progress line every T seconds (default 1)
  --snapshot-every K    with --output: a snapshot every K steps (default steps / 10)
  --snapshot-particles M  with --output: snapshots hold particles with id < M (default 10000)
  --density-every K     with --output: a density row every K steps (default steps / 200)
  --bins B              with --output: density bins along x (default 200)
  --help                this text
)";

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A count such as 1000000 or 1e6: an integer, written as such or in scientific notation.
std::int64_t parse_count(const std::string& flag, const std::string& text, std::int64_t minimum) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [at, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || at != end) {
    double d = 0.0;
    auto [at2, ec2] = std::from_chars(text.data(), end, d);
    if (ec2 != std::errc() || at2 != end || !std::isfinite(d) || d != std::floor(d) ||
        std::fabs(d) > 9e18) {
      throw UsageError(flag + " needs a whole number, got '" + text + "'");
    }
    value = static_cast<std::int64_t>(d);
  }
  if (value < minimum) {
    throw UsageError(flag + " must be at least " + std::to_string(minimum) + ", got " + text);
  }
  return value;
}

double parse_number(const std::string& flag, const std::string& text, double minimum,
                    bool inclusive) {
  double value = 0.0;
  const char* end = text.data() + text.size();
  auto [at, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || at != end || !std::isfinite(value)) {
    throw UsageError(flag + " needs a number, got '" + text + "'");
  }
  if (inclusive ? value < minimum : value <= minimum) {
    std::ostringstream m;
    m << flag << " must be " << (inclusive ? "at least " : "greater than ") << minimum << ", got "
      << text;
    throw UsageError(m.str());
  }
  return value;
}

std::string parse_choice(const std::string& flag, const std::string& text,
                         std::initializer_list<const char*> choices) {
  std::string list;
  for (const char* c : choices) {
    if (text == c) return text;
    list += (list.empty() ? "" : " | ") + std::string(c);
  }
  throw UsageError("unknown " + flag + " '" + text + "': choose " + list);
}

Settings parse(int argc, char* argv[]) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") {
      s.help = true;
    } else if (flag == "--particles") {
      s.particles = parse_count(flag, value(), 1);
    } else if (flag == "--steps") {
      s.steps = parse_count(flag, value(), 0);
    } else if (flag == "--dt") {
      s.dt = parse_number(flag, value(), 0.0, false);
    } else if (flag == "--seed") {
      s.seed = static_cast<std::uint64_t>(parse_count(flag, value(), 0));
    } else if (flag == "--transport") {
      s.transport = parse_choice(flag, value(), {"typed", "serialized"});
    } else if (flag == "--strategy") {
      s.strategy = parse_choice(flag, value(), {"exchange", "allgather"});
    } else if (flag == "--output") {
      s.output = value();
      if (s.output.empty()) throw UsageError("--output needs a directory");
    } else if (flag == "--quiet") {
      s.quiet = true;
    } else if (flag == "--initial") {
      s.initial = parse_choice(flag, value(), {"uniform", "left"});
    } else if (flag == "--diffusion") {
      s.diffusion = parse_number(flag, value(), 0.0, true);
    } else if (flag == "--check-every") {
      s.check_every = parse_count(flag, value(), 1);
    } else if (flag == "--check-positions") {
      s.check_positions = parse_choice(flag, value(), {"on", "off"}) == "on";
    } else if (flag == "--progress-seconds") {
      s.progress_seconds = parse_number(flag, value(), 0.0, true);
    } else if (flag == "--snapshot-every") {
      s.snapshot_every = parse_count(flag, value(), 1);
    } else if (flag == "--snapshot-particles") {
      s.snapshot_particles = parse_count(flag, value(), 0);
    } else if (flag == "--density-every") {
      s.density_every = parse_count(flag, value(), 1);
    } else if (flag == "--bins") {
      s.bins = parse_count(flag, value(), 1);
    } else {
      throw UsageError("unknown option '" + flag + "'");
    }
  }
  if (s.snapshot_every == 0) s.snapshot_every = std::max<std::int64_t>(1, s.steps / 10);
  if (s.density_every == 0) s.density_every = std::max<std::int64_t>(1, s.steps / 200);
  return s;
}

// ---- Initial conditions -----------------------------------------------------------------------

// Rank r creates one contiguous block of about N / P ids: O(N / P) work on every rank. Each
// particle's position and velocity come from its own random stream (seed, id, step 0), so they do
// not depend on which rank creates it; the Driver's set-up migration then hands every particle to
// the rank owning its position.
std::vector<Particle> create_particles(const Settings& s, int rank, int size) {
  const std::int64_t n = s.particles;
  const auto block = [n, size](std::int64_t r) {  // the first id of rank r's block
    return r * (n / size) + std::min<std::int64_t>(r, n % size);
  };
  const std::int64_t first = block(rank), last = block(rank + 1);
  const double width = s.initial == "left" ? 0.25 : 1.0;
  std::vector<Particle> particles;
  // Room for the fluctuations of the slab's population, so steady steps never reallocate.
  particles.reserve(static_cast<std::size_t>(static_cast<double>(last - first) * 1.1) + 1024);
  for (std::int64_t id = first; id < last; ++id) {
    domdec::RandomStream random(s.seed, static_cast<std::uint64_t>(id), 0, 0);
    const double x = width * random.uniform();
    const double v = random.normal();
    particles.push_back({id, x, v});
  }
  return particles;
}

// ---- Output: density over time, particles per rank, snapshots --------------------------------

class Output {
 public:
  Output(const boost::mpi::communicator& world, const domdec::Decomposition<1>& slabs,
         const Settings& s)
      : world_(world),
        settings_(s),
        snapshots_(slabs, s.output, &Particle::x, domdec::Coordinates<Particle, 1>(&Particle::v)),
        local_(static_cast<std::size_t>(s.bins)),
        global_(static_cast<std::size_t>(s.bins)) {
    const std::int64_t keep = s.snapshot_particles;
    snapshots_.select([keep](const Particle& p) { return p.id < keep; });
    if (world.rank() == 0) {
      density_.open(s.output + "/density.csv");
      ranks_.open(s.output + "/ranks.csv");
      density_ << "step,time";
      for (std::int64_t b = 0; b < s.bins; ++b) density_ << ",bin" << b;
      density_ << '\n';
      ranks_ << "step,time";
      for (int r = 0; r < world.size(); ++r) ranks_ << ",rank" << r;
      ranks_ << '\n';
    }
  }

  // Observer: the density along x (a histogram reduced to rank 0) and the particles per rank.
  void record_density(const std::vector<Particle>& particles, const domdec::StepInfo& info) {
    std::fill(local_.begin(), local_.end(), 0);
    const auto bins = static_cast<double>(settings_.bins);
    for (const Particle& p : particles) {
      auto b = static_cast<std::size_t>(p.x * bins);
      if (b >= local_.size()) b = local_.size() - 1;  // x == 1, the upper wall
      ++local_[b];
    }
    boost::mpi::reduce(world_, local_.data(), static_cast<int>(local_.size()), global_.data(),
                       std::plus<long long>(), 0);
    std::vector<long long> counts;
    boost::mpi::gather(world_, static_cast<long long>(particles.size()), counts, 0);
    if (world_.rank() != 0) return;
    const double time = static_cast<double>(info.step) * settings_.dt;
    density_ << info.step << ',' << time;
    for (long long c : global_) density_ << ',' << c;
    density_ << '\n';
    ranks_ << info.step << ',' << time;
    for (long long c : counts) ranks_ << ',' << c;
    ranks_ << '\n';
    if (!density_ || !ranks_) {
      throw std::runtime_error("cannot write density.csv or ranks.csv in " + settings_.output);
    }
  }

  // Observer: a snapshot of the particles with id < --snapshot-particles.
  void snapshot(const std::vector<Particle>& particles, const domdec::StepInfo& info) {
    snapshots_.write(particles, info.step, static_cast<double>(info.step) * settings_.dt);
  }

  void close() {
    if (world_.rank() != 0) return;
    density_.close();
    ranks_.close();
  }

 private:
  boost::mpi::communicator world_;
  const Settings& settings_;
  domdec::SnapshotWriter<Particle, 1> snapshots_;
  std::vector<long long> local_, global_;
  std::ofstream density_, ranks_;
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void write_run_json(const Settings& s, const domdec::Decomposition<1>& slabs,
                    const domdec::RunSummary& summary) {
  std::ofstream out(s.output + "/run.json");
  out.precision(17);
  out << "{\n  \"particles\": " << s.particles << ",\n  \"steps\": " << s.steps
      << ",\n  \"dt\": " << s.dt << ",\n  \"seed\": " << s.seed
      << ",\n  \"transport\": " << json_string(s.transport)
      << ",\n  \"strategy\": " << json_string(s.strategy)
      << ",\n  \"initial\": " << json_string(s.initial) << ",\n  \"diffusion\": " << s.diffusion
      << ",\n  \"ranks\": " << slabs.size() << ",\n  \"cuts\": [";
  for (std::size_t i = 0; i < slabs.cuts().size(); ++i) out << (i ? ", " : "") << slabs.cuts()[i];
  out << "],\n  \"bins\": " << s.bins << ",\n  \"density_every\": " << s.density_every
      << ",\n  \"snapshot_every\": " << s.snapshot_every
      << ",\n  \"loop_seconds\": " << summary.loop_seconds
      << ",\n  \"steps_per_second\": " << summary.steps_per_second()
      << ",\n  \"particle_steps_per_second\": " << summary.particle_steps_per_second()
      << ",\n  \"messages_per_step\": " << summary.messages_per_step()
      << ",\n  \"bytes_per_step\": " << summary.bytes_per_step() << "\n}\n";
  if (!out) throw std::runtime_error("cannot write " + s.output + "/run.json");
}

// ---- The run ----------------------------------------------------------------------------------

template <template <class, int, class> class Migrator, class Transport>
void simulate(const boost::mpi::communicator& world, const Settings& s) {
  const domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::reflecting);
  const domdec::Decomposition<1> slabs(world, box);  // one equal slab per rank
  Migrator<Particle, 1, Transport> migrator(slabs, &Particle::x);

  domdec::DriverOptions options;
  options.check_every = s.check_every;
  options.check_positions = s.check_positions;
  options.quiet = s.quiet;
  options.progress_seconds = s.progress_seconds;
  domdec::Driver driver(migrator, &Particle::v, options);  // reflections flip v

  std::optional<Output> output;
  if (!s.output.empty()) {
    output.emplace(world, slabs, s);
    driver.observe(s.density_every,
                   [&output](const std::vector<Particle>& p, const domdec::StepInfo& i) {
                     output->record_density(p, i);
                   });
    driver.observe(s.snapshot_every,
                   [&output](const std::vector<Particle>& p, const domdec::StepInfo& i) {
                     output->snapshot(p, i);
                   });
  }

  if (world.rank() == 0) {
    std::cout << "particle_box: " << s.particles << " particles, " << s.steps
              << " steps of dt = " << s.dt << ", " << world.size() << " ranks, " << s.transport
              << " transport, " << s.strategy << " strategy, " << s.initial << " start, diffusion "
              << s.diffusion << ", seed " << s.seed << std::endl;
  }
  std::vector<Particle> particles = create_particles(s, world.rank(), world.size());
  const double dt = s.dt;
  domdec::RunSummary summary;
  if (s.diffusion > 0.0) {
    const double sigma = std::sqrt(2.0 * s.diffusion * dt);
    const std::uint64_t seed = s.seed;
    summary = driver.run(particles, s.steps, [=](Particle& p, std::int64_t step) {
      domdec::RandomStream noise(seed, static_cast<std::uint64_t>(p.id),
                                 static_cast<std::uint64_t>(step), 1);
      p.x += p.v * dt + sigma * noise.normal();
    });
  } else {
    summary = driver.run(particles, s.steps, [dt](Particle& p) { p.x += p.v * dt; });
  }

  if (output) {
    output->close();
    domdec::write_records_by_id<Particle>(
        slabs, s.output + "/final_state.bin", particles, static_cast<std::uint64_t>(s.particles),
        [](const Particle& p) { return p; }, [](const Particle& p) { return p.id; });
    std::string problem;
    if (world.rank() == 0) {
      try {
        write_run_json(s, slabs, summary);
        std::ofstream text(s.output + "/summary.txt");
        text << summary.text();
        if (!text) throw std::runtime_error("cannot write " + s.output + "/summary.txt");
      } catch (const std::exception& e) {
        problem = e.what();
      }
    }
    boost::mpi::broadcast(world, problem, 0);
    if (!problem.empty()) throw domdec::OutputError("particle_box: " + problem);
    if (world.rank() == 0) {
      std::cout << "\nparticle_box: output in " << s.output
                << ": final_state.bin, density.csv, ranks.csv, run.json, summary.txt, "
                   "particles.lammpstrj (OVITO, VMD), particles.pvd (ParaView)"
                << std::endl;
    }
  }
}

}  // namespace

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;
  Settings settings;
  try {
    settings = parse(argc, argv);  // every rank parses the same arguments alike
  } catch (const UsageError& e) {
    if (world.rank() == 0) std::cerr << "particle_box: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (settings.help) {
    if (world.rank() == 0) std::cout << usage;
    return 0;
  }
  try {
    const bool typed = settings.transport == "typed";
    if (settings.strategy == "exchange") {
      if (typed)
        simulate<domdec::Exchanger, domdec::Typed>(world, settings);
      else
        simulate<domdec::Exchanger, domdec::Serialized>(world, settings);
    } else {
      if (typed)
        simulate<domdec::AllgatherExchanger, domdec::Typed>(world, settings);
      else
        simulate<domdec::AllgatherExchanger, domdec::Serialized>(world, settings);
    }
  } catch (const domdec::CommunicationError& e) {
    // An MPI call failed on this rank only: the others may be waiting for it. End the job.
    std::cerr << "particle_box: rank " << world.rank() << ": " << e.what() << std::endl;
    env.abort(3);
  } catch (const domdec::Error& e) {
    // Every other domdec error — ParticleError (a NaN or infinite position), RunError (our code
    // threw on some rank), ConservationError, SetupError, OutputError — is thrown on every rank
    // with the same message, in the same step: rank 0 prints it once, every rank returns 1
    // through MPI_Finalize.
    if (world.rank() == 0) std::cerr << "particle_box: error: " << e.what() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    // Anything else (std::bad_alloc, ...) may have happened on this rank only: end the job.
    std::cerr << "particle_box: rank " << world.rank() << ": " << e.what() << std::endl;
    env.abort(4);
  } catch (...) {
    std::cerr << "particle_box: rank " << world.rank() << ": an unknown exception" << std::endl;
    env.abort(4);
  }
  return 0;
}
