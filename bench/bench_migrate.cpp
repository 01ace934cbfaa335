// bench/bench_migrate.cpp — the cost of one migration as a function of the fraction of each
// rank's particles that cross into a neighbouring slab (0.1 % ... 50 %) and of the particle
// size (24 and 200 bytes), for the hand-written MPI baseline and domdec typed (particles in a
// domdec::ParticleVector, default options; typed-sender-order: the same with
// ExchangerOptions::keep_sender_order on; typed-std: in a std::vector) and serialized,
// interleaved in one run.
// Before each timed migration the same particles (chosen by id) are moved into the neighbouring
// slab in every variant; the variants must end up holding the same particles bit for bit, or the
// benchmark fails.
//   bench_migrate --sizes 1e6,1e7 --fractions 0.001,0.01,0.1,0.5 --reps 7 [--fat]
// Output: one JSON object per line on rank 0.
#include <boost/mpi/environment.hpp>
#include <domdec/domdec.hpp>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "hand_written.hpp"

namespace {

using bench::Json;

/// Moves the particles chosen for `round` into a neighbouring slab: a particle is chosen with
/// probability `fraction`, keyed by its id, so every variant moves the same ones.
template <class Range>
std::size_t displace(Range& particles, double fraction, std::uint64_t round) {
  const int rank = bench::rank_of(), ranks = bench::size_of();
  const double width = 1.0 / ranks;
  std::size_t moved = 0;
  for (auto& p : particles) {
    const auto key = static_cast<std::uint64_t>(p.id) * 0x100000001B3ull ^ (round << 40);
    if (bench::unit(key) >= fraction) continue;
    const bool up = rank == 0 || (rank < ranks - 1 && (bench::mix(key) & 1));
    const int target = up ? rank + 1 : rank - 1;
    p.x = bench::cut(target, ranks) + width * (0.05 + 0.9 * bench::unit(key ^ 0xABCDEFull));
    ++moved;
  }
  return moved;
}

template <class P>
class Variant {
 public:
  explicit Variant(std::string name) : name_(std::move(name)) {}
  virtual ~Variant() = default;
  const std::string& name() const { return name_; }
  virtual std::size_t displace(double fraction, std::uint64_t round) = 0;
  virtual void migrate() = 0;
  virtual std::uint64_t local_fingerprint() const = 0;
  virtual std::size_t local_count() const = 0;

 private:
  std::string name_;
};

template <class P>
class Hand : public Variant<P> {
 public:
  explicit Hand(std::int64_t n) : Variant<P>("hand") {
    const int rank = bench::rank_of(), ranks = bench::size_of();
    box_ = std::make_unique<bench::HandWritten<P>>(MPI_COMM_WORLD,
                                                   bench::initial_capacity(n, rank, ranks));
    bench::for_each_initial_particle<P>(n, rank, ranks, 1.0, [this](const P& p) { box_->add(p); });
  }
  std::size_t displace(double fraction, std::uint64_t round) override {
    auto& a = box_->particles();
    struct Span {
      P* first;
      P* last;
      P* begin() const { return first; }
      P* end() const { return last; }
    } span{a.data(), a.data() + a.size()};
    return ::displace(span, fraction, round);
  }
  void migrate() override { box_->migrate(); }
  std::uint64_t local_fingerprint() const override { return bench::fingerprint(box_->particles()); }
  std::size_t local_count() const override { return box_->particles().size(); }

 private:
  std::unique_ptr<bench::HandWritten<P>> box_;
};

template <class P, class Transport, class Vector>
class Domdec : public Variant<P> {
 public:
  Domdec(std::string name, std::int64_t n, domdec::ExchangerOptions options = {})
      : Variant<P>(std::move(name)),
        box_({0.0}, {1.0}, domdec::Boundary::reflecting),
        slabs_(boost::mpi::communicator(), box_),
        exchanger_(slabs_, &P::x, options),
        mine_(bench::initial_particles<P, Vector>(n, slabs_.rank(), slabs_.size(), 1.0)) {}
  std::size_t displace(double fraction, std::uint64_t round) override {
    return ::displace(mine_, fraction, round);
  }
  void migrate() override { exchanger_.migrate(mine_); }
  std::uint64_t local_fingerprint() const override { return bench::fingerprint(mine_); }
  std::size_t local_count() const override { return mine_.size(); }

 private:
  domdec::Domain<1> box_;
  domdec::Decomposition<1> slabs_;
  domdec::Exchanger<P, 1, Transport> exchanger_;
  Vector mine_;
};

template <class P>
std::unique_ptr<Variant<P>> make_variant(const std::string& name, std::int64_t n) {
  if (name == "hand") return std::make_unique<Hand<P>>(n);
  if (name == "typed")
    return std::make_unique<Domdec<P, domdec::Typed, domdec::ParticleVector<P>>>(name, n);
  if (name == "typed-std")
    return std::make_unique<Domdec<P, domdec::Typed, std::vector<P>>>(name, n);
  if (name == "typed-sender-order") {
    domdec::ExchangerOptions in_order;
    in_order.keep_sender_order = true;
    return std::make_unique<Domdec<P, domdec::Typed, domdec::ParticleVector<P>>>(name, n,
                                                                                 in_order);
  }
  if (name == "serialized")
    return std::make_unique<Domdec<P, domdec::Serialized, domdec::ParticleVector<P>>>(name, n);
  bench::fail("unknown variant " + name);
}

template <class P>
void sweep(const bench::Options& options, const char* particle) {
  const int ranks = bench::size_of();
  const int reps = static_cast<int>(options.number("reps", 7));
  const auto names =
      options.words("variants", "hand,typed,typed-sender-order,typed-std,serialized");
  for (double size : options.numbers("sizes", "1e6")) {
    const auto n = static_cast<std::int64_t>(size);
    for (double fraction : options.numbers("fractions", "0.001,0.01,0.1,0.5")) {
      std::vector<std::unique_ptr<Variant<P>>> variants;
      for (const auto& name : names) variants.push_back(make_variant<P>(name, n));
      std::uint64_t round = 1;
      constexpr int warm_up = 3;  // rounds: buffers grow to their steady size
      for (; round <= warm_up; ++round) {
        for (auto& v : variants) {
          v->displace(fraction, round);
          v->migrate();
        }
      }
      std::vector<std::vector<double>> seconds(variants.size());
      std::vector<double> allocations(variants.size(), 0.0), by_mpi(variants.size(), 0.0);
      std::vector<std::uint64_t> moved(variants.size(), 0);
      for (int rep = 0; rep < reps; ++rep, ++round) {
        for (std::size_t k = 0; k < variants.size(); ++k) {
          const std::size_t i = (k + static_cast<std::size_t>(rep)) % variants.size();
          Variant<P>& v = *variants[i];
          moved[i] += bench::sum_over_ranks(std::uint64_t{v.displace(fraction, round)});
          bench::Allocations allocated;
          const double t =
              bench::timed([&] { allocated = bench::allocations_during([&] { v.migrate(); }); });
          seconds[i].push_back(t);
          allocations[i] =
              std::max(allocations[i], static_cast<double>(bench::max_over_ranks(allocated.all)));
          by_mpi[i] =
              std::max(by_mpi[i], static_cast<double>(bench::max_over_ranks(allocated.mpi)));
          Json()
              .add("bench", "migrate")
              .add("particle", particle)
              .add("particle_bytes", std::uint64_t{sizeof(P)})
              .add("variant", v.name())
              .add("n", n)
              .add("ranks", ranks)
              .add("fraction", fraction)
              .add("rep", rep)
              .add("seconds", t)
              .print();
        }
      }
      // Every variant moved the same particles the same way: same particles everywhere.
      const std::uint64_t reference = bench::sum_over_ranks(variants[0]->local_fingerprint());
      for (auto& v : variants) {
        if (bench::sum_over_ranks(v->local_fingerprint()) != reference ||
            bench::sum_over_ranks(std::uint64_t{v->local_count()}) != static_cast<std::uint64_t>(n))
          bench::fail(v->name() + " disagrees with " + variants[0]->name());
      }
      double hand = 0, hand_best = 0;
      for (std::size_t i = 0; i < variants.size(); ++i) {
        if (variants[i]->name() != "hand") continue;
        hand = bench::median(seconds[i]);
        hand_best = bench::best(seconds[i]);
      }
      for (std::size_t i = 0; i < variants.size(); ++i) {
        const double med = bench::median(seconds[i]);
        // Payload bytes that left each rank per migration (the same for every variant).
        const double bytes = static_cast<double>(moved[i]) / reps / ranks * sizeof(P);
        Json()
            .add("bench", "migrate")
            .add("summary", true)
            .add("particle", particle)
            .add("particle_bytes", std::uint64_t{sizeof(P)})
            .add("variant", variants[i]->name())
            .add("n", n)
            .add("ranks", ranks)
            .add("fraction", fraction)
            .add("reps", reps)
            .add("median_seconds", med)
            .add("bytes_sent_per_rank", bytes)
            .add("bytes_per_second", bytes / med)
            .add("time_over_hand", hand > 0 ? med / hand : 0.0)  // <1: faster than hand-written
            .add("best_seconds", bench::best(seconds[i]))
            .add("best_time_over_hand", hand_best > 0 ? bench::best(seconds[i]) / hand_best : 0.0)
            .add("max_allocations_per_migrate", allocations[i])
            .add("max_mpi_allocations_per_migrate", by_mpi[i])
            .print();
      }
    }
  }
}

}  // namespace

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  bench::attribute_mpi_allocations();
  const bench::Options options(argc, argv);
  if (options.has("fat")) {
    sweep<bench::FatParticle>(options, "fat");
  } else {
    sweep<bench::Particle>(options, "small");
  }
  return 0;
}
