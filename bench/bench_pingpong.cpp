// bench/bench_pingpong.cpp — moving N particles from one rank to another and back (2 ranks),
// MB/s one way, for every variant in one run, interleaved:
//   raw         MPI_Send/MPI_Recv of the same bytes from malloc'd buffers (plain C++)
//   raw-huge    the same from 2 MiB-aligned buffers advised MADV_HUGEPAGE (numpy's memory)
//   typed       domdec's typed transport: the stream of one contiguous particle array (the
//               library's send buffer) received straight into the peer's particle vector;
//               (a domdec::ParticleVector); mpi4py's `Send` of a numpy structured array is
//               its Python counterpart
//   typed-std   the same, received into a std::vector (no huge pages, zeroed on resize)
//   serialized  domdec's serialized transport: particles serialized into the library's byte
//               buffer, sent, received and deserialized into the peer's vector (mpi4py's
//               `send`); the particle is marked bitwise-serializable
//   serialized-memberwise  the same particle without that mark: serialized member by member
// bench/pingpong_mpi4py.py measures mpi4py's `Send` and `send` with the same sizes.
// Every transfer is checked (count and fingerprint of what arrived) outside the timing.
//   bench_pingpong --sizes 1e3,1e4,1e5,1e6,1e7 --reps 5
#include <boost/mpi/environment.hpp>
#include <domdec/domdec.hpp>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "hand_written.hpp"

namespace {

using bench::Json;
constexpr int tag = 3;

class Variant {
 public:
  explicit Variant(std::string name) : name_(std::move(name)) {}
  virtual ~Variant() = default;
  const std::string& name() const { return name_; }
  /// One round trip: rank 0 sends to rank 1, rank 1 sends back.
  virtual void round_trip() = 0;
  /// After a round trip: did what arrived on this rank arrive whole?
  virtual bool arrived_intact() const = 0;

 private:
  std::string name_;
};

template <class Buffer>
class Raw : public Variant {
 public:
  Raw(std::string name, std::size_t bytes) : Variant(std::move(name)), bytes_(bytes) {
    out_.reserve(bytes);
    in_.reserve(bytes);
    out_.set_size(bytes);
    in_.set_size(bytes);
    for (std::size_t i = 0; i < bytes; ++i) out_[i] = static_cast<unsigned char>(i * 7);
  }
  void round_trip() override {
    const int peer = 1 - bench::rank_of();
    const int n = static_cast<int>(bytes_);
    if (bench::rank_of() == 0) {
      MPI_Send(out_.data(), n, MPI_BYTE, peer, tag, MPI_COMM_WORLD);
      MPI_Recv(in_.data(), n, MPI_BYTE, peer, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(in_.data(), n, MPI_BYTE, peer, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(out_.data(), n, MPI_BYTE, peer, tag, MPI_COMM_WORLD);
    }
  }
  bool arrived_intact() const override { return std::memcmp(in_.data(), out_.data(), bytes_) == 0; }

 private:
  std::size_t bytes_;
  Buffer out_, in_;
};

/// malloc'd bytes with the HugeArray interface (what std::vector<unsigned char> would give,
/// without zeroing).
class MallocBytes {
 public:
  MallocBytes() = default;
  MallocBytes(const MallocBytes&) = delete;
  MallocBytes& operator=(const MallocBytes&) = delete;
  ~MallocBytes() { std::free(data_); }
  void reserve(std::size_t n) { data_ = static_cast<unsigned char*>(std::malloc(n ? n : 1)); }
  void set_size(std::size_t) {}
  unsigned char* data() { return data_; }
  const unsigned char* data() const { return data_; }
  unsigned char& operator[](std::size_t i) { return data_[i]; }

 private:
  unsigned char* data_ = nullptr;
};

/// domdec's transport (detail::Channel: what Exchanger::migrate sends and receives with).
template <class P, class Transport, class Arrivals>
class Domdec : public Variant {
  using Chan = domdec::detail::Channel<P, Transport>;

 public:
  Domdec(std::string name, std::int64_t n)
      : Variant(std::move(name)), channel_(domdec::ExchangerOptions{}.max_message_bytes) {
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    for (std::int64_t id = 0; id < n; ++id) source_.push_back(bench::make_particle<P>(id, n, 1.0));
    expected_ = bench::fingerprint(source_);
    if constexpr (std::is_same_v<Transport, domdec::Typed>) {
      Chan::put(bucket_, source_.data(), source_.data() + source_.size());  // the array to send
    }
    arrivals_.reserve(source_.size());
  }
  ~Domdec() override { MPI_Comm_free(&comm_); }

  void round_trip() override {
    const int peer = 1 - bench::rank_of();
    if (bench::rank_of() == 0) {
      send(peer);
      receive(peer);
    } else {
      receive(peer);
      send(peer);
    }
  }
  bool arrived_intact() const override {
    return arrivals_.size() == source_.size() && bench::fingerprint(arrivals_) == expected_;
  }

 private:
  void send(int peer) {
    if constexpr (std::is_same_v<Transport, domdec::Serialized>) {
      Chan::clear(bucket_);  // serializing is part of the serialized transport's cost
      Chan::put(bucket_, source_.data(), source_.data() + source_.size());
    }
    requests_.clear();
    channel_.send(comm_, peer, tag, bucket_, requests_);
    MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
  }
  void receive(int peer) {
    arrivals_.clear();
    channel_.receive(comm_, peer, tag, arrivals_);
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  Chan channel_;
  std::vector<P> source_;
  typename Chan::Bucket bucket_;
  Arrivals arrivals_;
  std::vector<MPI_Request> requests_;
  std::uint64_t expected_ = 0;
};

std::unique_ptr<Variant> make_variant(const std::string& name, std::int64_t n) {
  using bench::MemberwiseParticle;
  using bench::Particle;
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(Particle);
  if (name == "raw") return std::make_unique<Raw<MallocBytes>>(name, bytes);
  if (name == "raw-huge")
    return std::make_unique<Raw<bench::HugeArray<unsigned char>>>(name, bytes);
  using domdec::ParticleVector;
  if (name == "typed")
    return std::make_unique<Domdec<Particle, domdec::Typed, ParticleVector<Particle>>>(name, n);
  if (name == "typed-std")
    return std::make_unique<Domdec<Particle, domdec::Typed, std::vector<Particle>>>(name, n);
  if (name == "serialized")
    return std::make_unique<Domdec<Particle, domdec::Serialized, ParticleVector<Particle>>>(name,
                                                                                            n);
  if (name == "serialized-memberwise")
    return std::make_unique<
        Domdec<MemberwiseParticle, domdec::Serialized, ParticleVector<MemberwiseParticle>>>(name,
                                                                                            n);
  bench::fail("unknown variant " + name);
}

}  // namespace

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  const bench::Options options(argc, argv);
  if (bench::size_of() != 2) bench::fail("bench_pingpong runs on exactly 2 ranks");
  const int reps = static_cast<int>(options.number("reps", 5));
  const auto names =
      options.words("variants", "raw,raw-huge,typed,typed-std,serialized,serialized-memberwise");
  for (double size : options.numbers("sizes", "1e3,1e4,1e5,1e6,1e7")) {
    const auto n = static_cast<std::int64_t>(size);
    const double bytes = static_cast<double>(n) * sizeof(bench::Particle);
    const int trips = static_cast<int>(std::max(3.0, std::min(1000.0, 1e9 / std::max(bytes, 1.0))));
    std::vector<std::unique_ptr<Variant>> variants;
    for (const auto& name : names) variants.push_back(make_variant(name, n));
    for (auto& v : variants) v->round_trip();  // warm-up
    std::vector<std::vector<double>> seconds(variants.size());
    for (int rep = 0; rep < reps; ++rep) {
      for (std::size_t k = 0; k < variants.size(); ++k) {
        const std::size_t i = (k + static_cast<std::size_t>(rep)) % variants.size();
        Variant& v = *variants[i];
        const double t = bench::timed([&] {
                           for (int trip = 0; trip < trips; ++trip) v.round_trip();
                         }) /
                         (2.0 * trips);
        int intact = v.arrived_intact() ? 1 : 0, all = 0;
        MPI_Allreduce(&intact, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (all != 1) bench::fail(v.name() + ": the particles did not arrive intact");
        seconds[i].push_back(t);
        Json()
            .add("bench", "pingpong")
            .add("variant", v.name())
            .add("particles", n)
            .add("bytes", bytes)
            .add("rep", rep)
            .add("trips", trips)
            .add("seconds_one_way", t)
            .add("mb_per_second", bytes / t / 1e6)
            .print();
      }
    }
    double raw = 0;
    for (std::size_t i = 0; i < variants.size(); ++i)
      if (variants[i]->name() == "raw") raw = bench::median(seconds[i]);
    for (std::size_t i = 0; i < variants.size(); ++i) {
      const double med = bench::median(seconds[i]);
      Json()
          .add("bench", "pingpong")
          .add("summary", true)
          .add("variant", variants[i]->name())
          .add("particles", n)
          .add("bytes", bytes)
          .add("reps", reps)
          .add("median_seconds_one_way", med)
          .add("mb_per_second", bytes / med / 1e6)
          .add("best_mb_per_second", bytes / bench::best(seconds[i]) / 1e6)
          .add("ratio_to_raw", raw > 0 ? raw / med : 0.0)  // >1: faster than raw
          .print();
    }
  }
  return 0;
}
