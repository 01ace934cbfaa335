// huge_transfer: one migration whose payload exceeds 2 GiB, between two ranks. MPI and
// Boost.MPI count in int, and Boost.MPI crashes on serialized messages over 2 GiB
// (boostorg/mpi#122); the Exchanger cuts every stream into messages of at most
// ExchangerOptions::max_message_bytes (1 GiB by default), so this must simply work.
// A benchmark-style program, not a test: it needs ~10 GiB of free memory and tens of seconds.
//
//   mpirun -np 2 ./build/tests/reliability/huge_transfer [serialized|typed] [GiB] [chunk MiB]
//
// Rank 0 creates every particle inside rank 1's slab; one migrate sends them all; rank 1
// checks that every id arrived exactly once with its payload intact. Exit status 0 only then.
#include <domdec/domdec.hpp>

#include <algorithm>
#include <boost/mpi/collectives.hpp>
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/environment.hpp>
#include <boost/serialization/vector.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <type_traits>
#include <vector>

namespace {

/// Serialized: 2 KiB of payload each, so ~1.2 million particles make 2.25 GiB.
struct Heavy {
  std::int64_t id = 0;
  double x = 0.0;
  std::vector<double> payload;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & payload;
  }
};
constexpr std::size_t heavy_payload = 256;

/// Typed: 24 bytes each, so ~100 million particles make 2.25 GiB.
struct Light {
  std::int64_t id = 0;
  double x = 0.0;
  double v = 0.0;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar & id & x & v;
  }
};

}  // namespace

BOOST_IS_MPI_DATATYPE(Light)

namespace {

double value_of(std::int64_t id, std::size_t j) {
  return static_cast<double>(id) + 1e-3 * static_cast<double>(j);
}

/// MemAvailable from /proc/meminfo, in bytes (0 if unknown).
std::uint64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

template <class P>
P make(std::int64_t id, double x);
template <>
Heavy make<Heavy>(std::int64_t id, double x) {
  Heavy h;
  h.id = id;
  h.x = x;
  h.payload.resize(heavy_payload);
  for (std::size_t j = 0; j < heavy_payload; ++j) h.payload[j] = value_of(id, j);
  return h;
}
template <>
Light make<Light>(std::int64_t id, double x) {
  return {id, x, value_of(id, 0)};
}

bool intact(const Heavy& h) {
  if (h.payload.size() != heavy_payload) return false;
  for (std::size_t j = 0; j < heavy_payload; ++j)
    if (h.payload[j] != value_of(h.id, j)) return false;
  return true;
}
bool intact(const Light& l) { return l.v == value_of(l.id, 0); }

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Baselines {
  double pack = 0.0;
  double raw_send = 0.0;
  double datatype_send = 0.0;
};

/// Rank 0 sends `count` elements of `type` (`size` bytes each) from `data` to rank 1 in
/// blocking messages of at most `chunk` elements; rank 1 receives them into a fresh buffer.
/// Returns the slower rank's time.
double raw_send(const boost::mpi::communicator& world, const char* data, std::size_t count,
                std::size_t chunk, MPI_Datatype type, std::size_t size) {
  domdec::detail::ByteBuffer received;
  boost::mpi::broadcast(world, count, 0);  // only the sender knows it
  world.barrier();
  const auto start = std::chrono::steady_clock::now();
  if (world.rank() == 1) received.resize_uninitialized(count * size);
  for (std::size_t offset = 0; offset < count; offset += chunk) {
    const int n = static_cast<int>(std::min(chunk, count - offset));
    if (world.rank() == 0) {
      MPI_Send(data + offset * size, n, type, 1, 7, MPI_COMM_WORLD);
    } else {
      MPI_Recv(received.data() + offset * size, n, type, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
  }
  const double mine = since(start);
  double slowest = 0.0;
  boost::mpi::all_reduce(world, mine, slowest, boost::mpi::maximum<double>());
  return slowest;
}

template <class P, class Transport>
int transfer(const boost::mpi::communicator& world, double gib, std::size_t chunk_bytes,
             std::size_t bytes_per_particle) {
  const auto target = static_cast<std::uint64_t>(gib * 1073741824.0);
  const auto n = static_cast<std::int64_t>(target / bytes_per_particle + 1);
  const domdec::Domain<1> box({0.0}, {1.0}, domdec::Boundary::periodic);
  const domdec::Decomposition<1> slabs(world, box);
  domdec::ExchangerOptions options;
  options.max_message_bytes = chunk_bytes;
  domdec::Exchanger<P, 1, Transport> exchanger(slabs, &P::x, options);

  std::vector<P> mine;
  if (world.rank() == 0) {
    mine.reserve(static_cast<std::size_t>(n));
    for (std::int64_t id = 0; id < n; ++id)
      mine.push_back(make<P>(id, 0.5 + 0.4 * static_cast<double>(id) / static_cast<double>(n)));
  }

  // Baselines in the same run: what packing alone costs, and what MPI itself takes to move the
  // same bytes in messages of the same size.
  Baselines base;
  if constexpr (std::is_same_v<Transport, domdec::Serialized>) {
    domdec::detail::ByteBuffer packed;
    world.barrier();
    auto t = std::chrono::steady_clock::now();
    if (world.rank() == 0) {
      domdec::detail::ByteWriter writer(packed);
      for (const P& p : mine) writer << p;
    }
    base.pack = since(t);
    base.raw_send = raw_send(world, packed.data(), packed.size(), chunk_bytes, MPI_BYTE, 1);
  } else {
    base.raw_send = raw_send(world, reinterpret_cast<const char*>(mine.data()),
                             mine.size() * sizeof(P), chunk_bytes, MPI_BYTE, 1);
    base.datatype_send =
        raw_send(world, reinterpret_cast<const char*>(mine.data()), mine.size(),
                 chunk_bytes / sizeof(P), boost::mpi::get_mpi_datatype<P>(), sizeof(P));
  }

  world.barrier();
  const auto start = std::chrono::steady_clock::now();
  const domdec::MigrationStats stats = exchanger.migrate(mine);
  const double seconds = since(start);

  // Rank 1: every id exactly once, every payload intact.
  bool ok = true;
  if (world.rank() == 1) {
    std::vector<bool> seen(static_cast<std::size_t>(n), false);
    ok = mine.size() == static_cast<std::size_t>(n);
    for (const P& p : mine) {
      const bool valid_id = p.id >= 0 && p.id < n && !seen[static_cast<std::size_t>(p.id)];
      ok = ok && valid_id && intact(p);
      if (valid_id) seen[static_cast<std::size_t>(p.id)] = true;
    }
  } else {
    ok = mine.empty();
  }
  const bool all_ok = boost::mpi::all_reduce(world, ok ? 1 : 0, boost::mpi::minimum<int>()) == 1;
  std::size_t sent = stats.bytes_sent, messages = stats.messages_sent;
  boost::mpi::broadcast(world, sent, 0);
  boost::mpi::broadcast(world, messages, 0);
  double slowest = 0.0;
  boost::mpi::reduce(world, seconds, slowest, boost::mpi::maximum<double>(), 0);
  if (world.rank() == 0) {
    std::cout << Transport::name << ": " << n << " particles, " << sent << " bytes ("
              << static_cast<double>(sent) / 1073741824.0 << " GiB) in " << messages
              << " messages of at most " << chunk_bytes << " bytes; migrate took " << slowest
              << " s (" << static_cast<double>(sent) / slowest / 1e9 << " GB/s); "
              << (all_ok ? "every particle arrived intact" : "FAILED: particles lost or damaged")
              << "\n  baselines in this run: raw MPI_BYTE send of the same bytes in the same "
                 "chunks "
              << base.raw_send << " s";
    if (base.pack > 0) std::cout << ", serializing them alone " << base.pack << " s";
    if (base.datatype_send > 0)
      std::cout << ", raw send with the particle's MPI datatype " << base.datatype_send << " s";
    std::cout << std::endl;
  }
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char* argv[]) {
  boost::mpi::environment env(argc, argv);
  boost::mpi::communicator world;
  const std::string mode = argc > 1 ? argv[1] : "serialized";
  const double gib = argc > 2 ? std::stod(argv[2]) : 2.25;
  const std::size_t chunk = (argc > 3 ? std::stoul(argv[3]) : 1024ul) << 20;
  if (world.size() != 2 || (mode != "serialized" && mode != "typed")) {
    if (world.rank() == 0)
      std::cerr << "usage: mpirun -np 2 huge_transfer [serialized|typed] [GiB] [chunk MiB]\n";
    return 2;
  }
  // Both ranks share this machine: sender's particles and buffer, receiver's buffer and
  // particles, so about four times the payload (plus vector growth on the receiver).
  const auto needed = static_cast<std::uint64_t>(4.5 * gib * 1073741824.0);
  std::uint64_t available = world.rank() == 0 ? available_memory() : 0;
  boost::mpi::broadcast(world, available, 0);
  if (available < needed) {
    if (world.rank() == 0)
      std::cerr << "huge_transfer: needs about " << needed / 1073741824.0 << " GiB of free memory, "
                << available / 1073741824.0 << " GiB available; not run\n";
    return 3;
  }
  if (mode == "serialized") {
    return transfer<Heavy, domdec::Serialized>(world, gib, chunk,
                                               heavy_payload * sizeof(double) + 24);
  }
  return transfer<Light, domdec::Typed>(world, gib, chunk, sizeof(Light));
}
