// bench/bench_common.hpp — what every benchmark shares: the particle types, the workload
// (positions, velocities, which particles cross), timing of collective operations, medians,
// JSON output lines, memory and allocation counts, and command-line options.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <boost/mpi/datatype.hpp>
#include <boost/serialization/is_bitwise_serializable.hpp>
#include <boost/serialization/serialization.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace bench {

// --- Particles ----------------------------------------------------------------------------

/// The tutorial's particle: 24 bytes of plain data. Typed (an MPI datatype) and marked
/// bitwise-serializable, so the serialized transport copies it whole.
struct Particle {
  std::int64_t id;
  double x;
  double v;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar& id& x& v;
  }
};

/// The same particle without the bitwise mark: serialized member by member.
struct MemberwiseParticle {
  std::int64_t id;
  double x;
  double v;
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar& id& x& v;
  }
};

/// A fat particle of 200 bytes (a particle with many properties: 22 extra doubles).
struct FatParticle {
  std::int64_t id;
  double x;
  double v;
  double properties[22];
  template <class Archive>
  void serialize(Archive& ar, unsigned) {
    ar& id& x& v& properties;
  }
};
static_assert(sizeof(Particle) == 24 && sizeof(FatParticle) == 200, "particle sizes");

// --- Hashing: deterministic "randomness" keyed by particle id (rank-count independent) ------

inline std::uint64_t mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
/// A uniform double in [0, 1) from a key.
inline double unit(std::uint64_t key) { return static_cast<double>(mix(key) >> 11) * 0x1.0p-53; }

// --- The workload: N particles in the box [0, 1] with reflecting walls, equal slabs ---------

/// The cut between slab r-1 and slab r when [0, 1] is cut into `ranks` equal slabs; the same
/// arithmetic as domdec::Decomposition, so every variant agrees on ownership to the last bit.
inline double cut(int r, int ranks) {
  return r == ranks ? 1.0 : 0.0 + 1.0 * (static_cast<double>(r) / ranks);
}

/// Particle `id` of `n`, as created at step 0: evenly spaced, velocity uniform in
/// [-max_speed, max_speed].
template <class P>
P make_particle(std::int64_t id, std::int64_t n, double max_speed) {
  P p{};
  p.id = id;
  p.x = (static_cast<double>(id) + 0.5) / static_cast<double>(n);
  p.v = max_speed * (2.0 * unit(static_cast<std::uint64_t>(id)) - 1.0);
  if constexpr (std::is_same_v<P, FatParticle>) {
    for (int k = 0; k < 22; ++k) p.properties[k] = static_cast<double>(id) + k;
  }
  return p;
}

/// The ids that may start in slab `rank` of `ranks`: [first, last).
inline std::pair<std::int64_t, std::int64_t> initial_ids(std::int64_t n, int rank, int ranks) {
  const double lo = cut(rank, ranks), hi = cut(rank + 1, ranks);
  return {std::max<std::int64_t>(0, static_cast<std::int64_t>(lo * n) - 2),
          std::min<std::int64_t>(n, static_cast<std::int64_t>(hi * n) + 2)};
}

/// Room for a rank's particles: its share and 10 % headroom for the fluctuations.
inline std::size_t initial_capacity(std::int64_t n, int rank, int ranks) {
  const auto [first, last] = initial_ids(n, rank, ranks);
  return static_cast<std::size_t>(static_cast<double>(last - first) * 1.1) + 16;
}

/// Calls `sink(p)` for each particle of `n` that starts in slab `rank` of `ranks`, in id order.
template <class P, class Sink>
void for_each_initial_particle(std::int64_t n, int rank, int ranks, double max_speed, Sink&& sink) {
  const double lo = cut(rank, ranks), hi = cut(rank + 1, ranks);
  const auto [first, last] = initial_ids(n, rank, ranks);
  for (std::int64_t id = first; id < last; ++id) {
    const P p = make_particle<P>(id, n, max_speed);
    const bool inside = p.x >= lo && (p.x < hi || (rank == ranks - 1 && p.x <= hi));
    if (inside) sink(p);
  }
}

/// The particles of `n` that start in slab `rank` of `ranks`, in id order.
template <class P, class Vector = std::vector<P>>
Vector initial_particles(std::int64_t n, int rank, int ranks, double max_speed) {
  Vector mine;
  mine.reserve(initial_capacity(n, rank, ranks));
  for_each_initial_particle<P>(n, rank, ranks, max_speed,
                               [&mine](const P& p) { mine.push_back(p); });
  return mine;
}

/// The propagation and wall rule of the 1-D box step, shared by every variant so that all
/// compute the same numbers: x += v dt, mirrored at the walls 0 and 1 with v flipped (the
/// same expressions as domdec::Domain::reflect for a single bounce).
template <class P>
inline void propagate_and_reflect(P& p, double dt) {
  double x = p.x + p.v * dt;
  if (x < 0.0) {
    x = 2.0 * 0.0 - x;
    p.v = -p.v;
  } else if (x > 1.0) {
    x = 2.0 * 1.0 - x;
    p.v = -p.v;
  }
  p.x = x;
}

/// Order-independent fingerprint of a set of particles (ids and the bits of x and v).
template <class Range>
std::uint64_t fingerprint(const Range& particles) {
  std::uint64_t sum = 0;
  for (const auto& p : particles) {
    std::uint64_t xb = 0, vb = 0;
    std::memcpy(&xb, &p.x, 8);
    std::memcpy(&vb, &p.v, 8);
    sum += mix(static_cast<std::uint64_t>(p.id) ^ mix(xb ^ mix(vb)));
  }
  return sum;
}

// --- MPI helpers ------------------------------------------------------------------------

inline int rank_of(MPI_Comm c = MPI_COMM_WORLD) {
  int r = 0;
  MPI_Comm_rank(c, &r);
  return r;
}
inline int size_of(MPI_Comm c = MPI_COMM_WORLD) {
  int s = 0;
  MPI_Comm_size(c, &s);
  return s;
}
inline double max_over_ranks(double value) {
  double out = 0;
  MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return out;
}
inline std::uint64_t sum_over_ranks(std::uint64_t value) {
  std::uint64_t out = 0;
  MPI_Allreduce(&value, &out, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  return out;
}
inline std::uint64_t max_over_ranks(std::uint64_t value) {
  std::uint64_t out = 0;
  MPI_Allreduce(&value, &out, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

/// Seconds the slowest rank spent in `op`, all ranks starting together.
template <class Op>
double timed(Op&& op) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double start = MPI_Wtime();
  op();
  return max_over_ranks(MPI_Wtime() - start);
}

inline double best(const std::vector<double>& values) {
  return values.empty() ? 0.0 : *std::min_element(values.begin(), values.end());
}

inline double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

/// Stops every rank with a message (a benchmark that computed something wrong must not
/// report a time).
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "bench: rank %d: %s\n", rank_of(), what.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 2);
  std::abort();
}

// --- Memory and allocations ---------------------------------------------------------------

/// Every allocation of this process so far (malloc family, operator new, and the mmap calls
/// that allocate memory): counted by alloc_counter.cpp, which every benchmark links.
std::uint64_t allocation_count();
/// Those of them called from Open MPI's own code (after attribute_mpi_allocations()).
std::uint64_t mpi_allocation_count();
/// Learns where Open MPI's libraries and components live; call after MPI_Init.
void attribute_mpi_allocations();

/// Allocations of this process during `op`, all and Open MPI's own.
struct Allocations {
  std::uint64_t all = 0;
  std::uint64_t mpi = 0;
};
template <class Op>
Allocations allocations_during(Op&& op) {
  const std::uint64_t all = allocation_count(), mpi = mpi_allocation_count();
  op();
  return {allocation_count() - all, mpi_allocation_count() - mpi};
}

/// A field of /proc/self/status in bytes (VmHWM: peak resident memory, VmRSS: now).
inline std::uint64_t proc_status_bytes(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0) {
      std::istringstream fields(line.substr(key.size()));
      std::uint64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

// --- Output: one JSON object per line on rank 0 ---------------------------------------------

class Json {
 public:
  Json& add(const std::string& key, const std::string& value) {
    item(key) << '"' << value << '"';
    return *this;
  }
  Json& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  Json& add(const std::string& key, double value) {
    if (std::isfinite(value)) {
      char text[32];
      std::snprintf(text, sizeof text, "%.6g", value);
      item(key) << text;
    } else {
      item(key) << "null";
    }
    return *this;
  }
  Json& add(const std::string& key, std::uint64_t value) {
    item(key) << value;
    return *this;
  }
  Json& add(const std::string& key, std::int64_t value) {
    item(key) << value;
    return *this;
  }
  Json& add(const std::string& key, int value) { return add(key, std::int64_t{value}); }
  Json& add(const std::string& key, bool value) {
    item(key) << (value ? "true" : "false");
    return *this;
  }
  /// Prints the line on rank 0.
  void print() const {
    if (rank_of() == 0) {
      std::printf("{%s}\n", out_.str().c_str());
      std::fflush(stdout);
    }
  }

 private:
  std::ostringstream& item(const std::string& key) {
    if (!first_) out_ << ", ";
    first_ = false;
    out_ << '"' << key << "\": ";
    return out_;
  }
  std::ostringstream out_;
  bool first_ = true;
};

// --- Options: --name value --------------------------------------------------------------

class Options {
 public:
  Options(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string key = argv[i];
      if (key.rfind("--", 0) != 0) usage("unexpected argument " + key);
      key = key.substr(2);
      if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        values_[key] = argv[++i];
      } else {
        values_[key] = "1";  // a flag
      }
    }
  }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  std::string text(const std::string& key, const std::string& fallback) const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second;
  }
  double number(const std::string& key, double fallback) const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : std::stod(it->second);
  }
  std::vector<double> numbers(const std::string& key, const std::string& fallback) const {
    std::vector<double> out;
    std::istringstream list(text(key, fallback));
    for (std::string item; std::getline(list, item, ',');) out.push_back(std::stod(item));
    return out;
  }
  std::vector<std::string> words(const std::string& key, const std::string& fallback) const {
    std::vector<std::string> out;
    std::istringstream list(text(key, fallback));
    for (std::string item; std::getline(list, item, ',');) out.push_back(item);
    return out;
  }

 private:
  [[noreturn]] static void usage(const std::string& what) {
    if (rank_of() == 0) std::fprintf(stderr, "bench: %s\n", what.c_str());
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::abort();
  }
  std::map<std::string, std::string> values_;
};

}  // namespace bench

BOOST_IS_MPI_DATATYPE(bench::Particle)
BOOST_IS_BITWISE_SERIALIZABLE(bench::Particle)
BOOST_IS_MPI_DATATYPE(bench::MemberwiseParticle)
BOOST_IS_MPI_DATATYPE(bench::FatParticle)
BOOST_IS_BITWISE_SERIALIZABLE(bench::FatParticle)
