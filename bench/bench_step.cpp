// bench/bench_step.cpp — the whole 1-D box step (propagate, reflect at the walls, migrate to
// the owner) over N particles, for every variant in one run, interleaved:
//   hand        the hand-written MPI baseline (bench/hand_written.hpp)
//   typed       domdec typed, the fast way: the step's physics and walls passed to
//               Exchanger::migrate (one pass over memory), particles in a ParticleVector
//   serialized  the same over the serialized transport
//   typed-loop  domdec typed, written as the README does: the user's loop over a
//               std::vector, Domain::apply_boundaries, Exchanger::migrate (three passes)
//   allgather   the tutorial's approach (bench/allgather_strategy.hpp)
// Every variant starts from the same particles and runs the same steps; at the end their
// particles must agree bit for bit (an order-independent fingerprint of ids, x and v), or the
// benchmark fails instead of reporting a time.
//
// Modes:
//   (default)  time: --sizes 1e5,1e6,1e7 --reps 5 [--steps S] [--variants a,b,...]
//   --memory   peak resident memory per rank of one variant: --variants typed --sizes 1e7
//   --counts   messages and bytes per rank per step (MigrationStats), weak scaling:
//              --per-rank 20000 --steps 20
// Output: one JSON object per line on rank 0.
#include <boost/mpi/environment.hpp>
#include <domdec/domdec.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "allgather_strategy.hpp"
#include "bench_common.hpp"
#include "hand_written.hpp"

namespace {

using bench::ExchangeCounts;
using bench::Json;
using bench::Particle;

/// Largest displacement per step as a fraction of a slab's width: about 1 % of a rank's
/// particles cross a given slab boundary per step.
constexpr double displacement_per_slab = 0.04;

double time_step_for(int ranks) { return displacement_per_slab / ranks; }  // |v| <= 1

/// One way of running the step, with its own copy of the particles.
class Variant {
 public:
  explicit Variant(std::string name) : name_(std::move(name)) {}
  virtual ~Variant() = default;
  const std::string& name() const { return name_; }
  virtual void run(int steps) = 0;
  virtual std::uint64_t local_fingerprint() const = 0;
  virtual std::size_t local_count() const = 0;
  virtual ExchangeCounts counts() const = 0;

 private:
  std::string name_;
};

class Hand : public Variant {
 public:
  Hand(std::int64_t n, double dt) : Variant("hand"), dt_(dt) {
    const int rank = bench::rank_of(), ranks = bench::size_of();
    box_ = std::make_unique<bench::HandWritten<Particle>>(MPI_COMM_WORLD,
                                                          bench::initial_capacity(n, rank, ranks));
    bench::for_each_initial_particle<Particle>(n, rank, ranks, 1.0,
                                               [this](const Particle& p) { box_->add(p); });
  }
  void run(int steps) override {
    for (int s = 0; s < steps; ++s) box_->step(dt_);
  }
  std::uint64_t local_fingerprint() const override { return bench::fingerprint(box_->particles()); }
  std::size_t local_count() const override { return box_->particles().size(); }
  ExchangeCounts counts() const override {
    ExchangeCounts c;
    c.bytes_sent = box_->sent() * sizeof(Particle);
    c.bytes_received = box_->received() * sizeof(Particle);
    return c;
  }

 private:
  double dt_;
  std::unique_ptr<bench::HandWritten<Particle>> box_;
};

/// domdec, written as a user would: the loop, the walls, the migration; or (Fused) the same
/// physics handed to migrate, which applies it in its pass over the particles.
template <class Transport, class Vector, bool Fused>
class Domdec : public Variant {
 public:
  Domdec(std::string name, std::int64_t n, double dt)
      : Variant(std::move(name)),
        dt_(dt),
        box_({0.0}, {1.0}, domdec::Boundary::reflecting),
        slabs_(boost::mpi::communicator(), box_),
        exchanger_(slabs_, &Particle::x),
        mine_(bench::initial_particles<Particle, Vector>(n, slabs_.rank(), slabs_.size(), 1.0)) {}

  void run(int steps) override {
    const double dt = dt_;
    for (int s = 0; s < steps; ++s) {
      if constexpr (Fused) {
        // The same physics code as the hand-written baseline, so that only the library
        // differs. Written with the Domain it reads:
        //   p.x += p.v * dt; const auto [x, flipped] = box.reflect(p.x, 0); p.x = x; ...
        exchanger_.migrate(mine_, [dt](Particle& p) { bench::propagate_and_reflect(p, dt); });
      } else {
        for (Particle& p : mine_) p.x += p.v * dt;
        box_.apply_boundaries(mine_, &Particle::x, &Particle::v);
        exchanger_.migrate(mine_);
      }
    }
  }
  std::uint64_t local_fingerprint() const override { return bench::fingerprint(mine_); }
  std::size_t local_count() const override { return mine_.size(); }
  ExchangeCounts counts() const override { return from(exchanger_.totals()); }

 protected:
  static ExchangeCounts from(const domdec::MigrationStats& s) {
    ExchangeCounts c;
    c.messages_sent = s.messages_sent;
    c.messages_received = s.messages_received;
    c.bytes_sent = s.bytes_sent;
    c.bytes_received = s.bytes_received;
    c.collectives = s.collectives;
    return c;
  }
  double dt_;
  domdec::Domain<1> box_;
  domdec::Decomposition<1> slabs_;
  domdec::Exchanger<Particle, 1, Transport> exchanger_;
  Vector mine_;
};

/// The tutorial's approach. The one place to switch to the driver's `allgather` strategy.
class Allgather : public Variant {
 public:
  Allgather(std::int64_t n, double dt)
      : Variant("allgather"),
        dt_(dt),
        strategy_(MPI_COMM_WORLD),
        mine_(bench::initial_particles<Particle>(n, bench::rank_of(), bench::size_of(), 1.0)) {}
  void run(int steps) override {
    for (int s = 0; s < steps; ++s) {
      for (Particle& p : mine_) bench::propagate_and_reflect(p, dt_);
      strategy_.exchange(mine_);
    }
  }
  std::uint64_t local_fingerprint() const override { return bench::fingerprint(mine_); }
  std::size_t local_count() const override { return mine_.size(); }
  ExchangeCounts counts() const override { return strategy_.counts; }

 private:
  double dt_;
  bench::AllgatherStrategy<Particle> strategy_;
  std::vector<Particle> mine_;
};

std::unique_ptr<Variant> make_variant(const std::string& name, std::int64_t n, double dt) {
  if (name == "hand") return std::make_unique<Hand>(n, dt);
  using domdec::ParticleVector;
  if (name == "typed")
    return std::make_unique<Domdec<domdec::Typed, ParticleVector<Particle>, true>>(name, n, dt);
  if (name == "serialized")
    return std::make_unique<Domdec<domdec::Serialized, ParticleVector<Particle>, true>>(name, n,
                                                                                        dt);
  if (name == "typed-loop")
    return std::make_unique<Domdec<domdec::Typed, std::vector<Particle>, false>>(name, n, dt);
  if (name == "allgather") return std::make_unique<Allgather>(n, dt);
  bench::fail("unknown variant " + name);
}

int default_steps(std::int64_t n) {
  return static_cast<int>(std::max<std::int64_t>(5, 20'000'000 / std::max<std::int64_t>(n, 1)));
}

/// Every variant ran the same steps from the same particles: they must hold the same set.
void check_agreement(const std::vector<std::unique_ptr<Variant>>& variants, std::int64_t n) {
  const std::uint64_t reference = bench::sum_over_ranks(variants.front()->local_fingerprint());
  for (const auto& v : variants) {
    const std::uint64_t count = bench::sum_over_ranks(std::uint64_t{v->local_count()});
    const std::uint64_t print = bench::sum_over_ranks(v->local_fingerprint());
    if (count != static_cast<std::uint64_t>(n) || print != reference) {
      bench::fail(v->name() + " disagrees with " + variants.front()->name() + " (" +
                  std::to_string(count) + " of " + std::to_string(n) + " particles)");
    }
  }
}

void time_steps(const bench::Options& options) {
  const int ranks = bench::size_of();
  const double dt = time_step_for(ranks);
  const auto names = options.words("variants", "hand,typed,serialized,typed-loop,allgather");
  const int reps = static_cast<int>(options.number("reps", 5));
  for (double size : options.numbers("sizes", "1e5,1e6,1e7")) {
    const auto n = static_cast<std::int64_t>(size);
    const int steps =
        options.has("steps") ? static_cast<int>(options.number("steps", 10)) : default_steps(n);
    std::vector<std::unique_ptr<Variant>> variants;
    for (const auto& name : names) variants.push_back(make_variant(name, n, dt));
    // Warm-up: buffers grow to their steady size (the tail of the vector, where arrivals
    // go, takes a few hundred steps to settle at small N).
    const int warm_up = std::max(steps, 20);
    for (auto& v : variants) v->run(warm_up);
    std::vector<std::vector<double>> seconds(variants.size());
    std::vector<double> allocations(variants.size(), 0.0), by_mpi(variants.size(), 0.0);
    for (int rep = 0; rep < reps; ++rep) {
      for (std::size_t k = 0; k < variants.size(); ++k) {
        const std::size_t i = (k + static_cast<std::size_t>(rep)) % variants.size();  // rotate
        Variant& v = *variants[i];
        bench::Allocations allocated;
        const double t =
            bench::timed([&] { allocated = bench::allocations_during([&] { v.run(steps); }); });
        const double per_step = static_cast<double>(bench::max_over_ranks(allocated.all)) / steps;
        const double mpi_per_step =
            static_cast<double>(bench::max_over_ranks(allocated.mpi)) / steps;
        allocations[i] = std::max(allocations[i], per_step);
        by_mpi[i] = std::max(by_mpi[i], mpi_per_step);
        seconds[i].push_back(t);
        Json()
            .add("bench", "step")
            .add("variant", v.name())
            .add("n", n)
            .add("ranks", ranks)
            .add("rep", rep)
            .add("steps", steps)
            .add("seconds", t)
            .add("allocations_per_step", per_step)
            .add("mpi_allocations_per_step", mpi_per_step)
            .print();
      }
    }
    check_agreement(variants, n);
    double hand = 0.0, hand_best = 0.0;
    for (std::size_t i = 0; i < variants.size(); ++i) {
      if (variants[i]->name() != "hand") continue;
      hand = bench::median(seconds[i]);
      hand_best = bench::best(seconds[i]);
    }
    for (std::size_t i = 0; i < variants.size(); ++i) {
      const double med = bench::median(seconds[i]);
      const ExchangeCounts c = variants[i]->counts();
      const double total_steps = static_cast<double>(steps) * reps + warm_up;
      Json()
          .add("bench", "step")
          .add("summary", true)
          .add("variant", variants[i]->name())
          .add("n", n)
          .add("ranks", ranks)
          .add("reps", reps)
          .add("steps", steps)
          .add("warm_up_steps", warm_up)
          .add("median_seconds_per_step", med / steps)
          .add("particle_steps_per_second", static_cast<double>(n) * steps / med)
          .add("ratio_to_hand", hand > 0 ? hand / med : 0.0)  // >1: faster than hand-written
          .add("best_seconds_per_step", bench::best(seconds[i]) / steps)
          .add("best_ratio_to_hand", hand_best > 0 ? hand_best / bench::best(seconds[i]) : 0.0)
          .add("max_allocations_per_step", allocations[i])
          .add("max_mpi_allocations_per_step", by_mpi[i])
          .add("crossing_fraction",
               static_cast<double>(bench::sum_over_ranks(c.bytes_sent / sizeof(Particle))) /
                   (static_cast<double>(n) * total_steps))
          .add("agrees_with_first", true)
          .print();
    }
  }
}

void measure_memory(const bench::Options& options) {
  const auto name = options.words("variants", "typed").front();
  const auto n = static_cast<std::int64_t>(options.numbers("sizes", "1e7").front());
  const int steps = static_cast<int>(options.number("steps", 20));
  const std::uint64_t before = bench::proc_status_bytes("VmRSS");
  auto v = make_variant(name, n, time_step_for(bench::size_of()));
  v->run(steps);
  const std::uint64_t peak = bench::proc_status_bytes("VmHWM");
  const std::uint64_t payload = v->local_count() * sizeof(Particle);
  const double ratio = static_cast<double>(peak) / static_cast<double>(payload);
  double worst = 0;
  MPI_Allreduce(&ratio, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  Json()
      .add("bench", "memory")
      .add("variant", name)
      .add("n", n)
      .add("ranks", bench::size_of())
      .add("steps", steps)
      .add("peak_rss_bytes", bench::max_over_ranks(peak))
      .add("payload_bytes", bench::max_over_ranks(payload))
      .add("rss_before_particles_bytes", bench::max_over_ranks(before))
      .add("peak_over_payload", worst)
      .print();
}

void count_messages(const bench::Options& options) {
  const int ranks = bench::size_of();
  const auto per_rank = static_cast<std::int64_t>(options.number("per-rank", 20000));
  const int steps = static_cast<int>(options.number("steps", 20));
  const std::int64_t n = per_rank * ranks;
  for (const auto& name : options.words("variants", "typed,allgather")) {
    auto v = make_variant(name, n, time_step_for(ranks));
    v->run(steps);
    const ExchangeCounts c = v->counts();
    auto per_step = [&](std::uint64_t value, bool worst) {
      const std::uint64_t total =
          worst ? bench::max_over_ranks(value) : bench::sum_over_ranks(value) / ranks;
      return static_cast<double>(total) / steps;
    };
    Json()
        .add("bench", "counts")
        .add("variant", name)
        .add("ranks", ranks)
        .add("particles_per_rank", per_rank)
        .add("steps", steps)
        .add("messages_sent_per_step", per_step(c.messages_sent, false))
        .add("messages_received_per_step", per_step(c.messages_received, false))
        .add("max_messages_received_per_step", per_step(c.messages_received, true))
        .add("bytes_sent_per_step", per_step(c.bytes_sent, false))
        .add("bytes_received_per_step", per_step(c.bytes_received, false))
        .add("max_bytes_received_per_step", per_step(c.bytes_received, true))
        .add("collectives_per_step", per_step(c.collectives, false))
        .print();
  }
}

}  // namespace

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  bench::attribute_mpi_allocations();
  const bench::Options options(argc, argv);
  if (options.has("memory")) {
    measure_memory(options);
  } else if (options.has("counts")) {
    count_messages(options);
  } else {
    time_steps(options);
  }
  return 0;
}
