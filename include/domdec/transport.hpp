// domdec/transport.hpp — how particles travel: *typed* (the particle type is an MPI datatype:
// one contiguous buffer, no packing; mpi4py's `Send`) or *serialized* (Boost.Serialization
// into bytes; mpi4py's `send`). Chosen at compile time from the type, overridable by a tag.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <boost/core/demangle.hpp>
#include <boost/mpi/datatype.hpp>
#include <boost/serialization/serialization.hpp>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "domdec/allocator.hpp"
#include "domdec/detail/byte_archive.hpp"
#include "domdec/detail/byte_buffer.hpp"
#include "domdec/detail/format.hpp"
#include "domdec/detail/mpi_check.hpp"
#include "domdec/error.hpp"

namespace domdec {

/// Transport tag: particles travel as an MPI datatype (BOOST_IS_MPI_DATATYPE), straight from
/// and into contiguous particle arrays. The fast path for plain-data particles.
struct Typed {
  static constexpr const char* name = "typed";
};

/// Transport tag: particles travel as Boost.Serialization bytes. Works for any type with a
/// serialize() (std::string, std::vector members...); costs a copy through a byte buffer.
struct Serialized {
  static constexpr const char* name = "serialized";
};

namespace detail {

// --- Is the type serializable? ---------------------------------------------------------
// A member named `serialize` (public or private with `friend class boost::serialization::
// access`): looked up in a class that also inherits one, so the lookup is ambiguous exactly
// when the particle type has one, whatever its access.
struct SerializeNameClash {
  void serialize();
};
template <class T>
struct WithSerializeClash : T, SerializeNameClash {};
template <class T, class = void>
struct has_serialize_name : std::true_type {};
template <class T>
struct has_serialize_name<T, std::void_t<decltype(&WithSerializeClash<T>::serialize)>>
    : std::false_type {};
template <class T, class = void>
struct has_public_serialize : std::false_type {};
template <class T>
struct has_public_serialize<
    T, std::void_t<decltype(std::declval<T&>().serialize(std::declval<ByteWriter&>(), 0u))>>
    : std::true_type {};
template <class T>
constexpr bool has_member_serialize() {
  if constexpr (std::is_class_v<T> && !std::is_final_v<T>) return has_serialize_name<T>::value;
  else return has_public_serialize<T>::value;
}

// A free serialize(Archive&, T&, unsigned) in T's namespace or in boost::serialization:
// the probe overload below is chosen only when no such function exists (it is more
// specialized than Boost's catch-all and ambiguous with any user overload for T).
struct SerializeProbe {};
struct NoFreeSerialize {};
}  // namespace detail
}  // namespace domdec

namespace boost::serialization {
template <class T>
::domdec::detail::NoFreeSerialize serialize(::domdec::detail::SerializeProbe&, T&,
                                           const unsigned int);
}  // namespace boost::serialization

namespace domdec {
namespace detail {
template <class T, class = void>
struct has_free_serialize : std::true_type {};  // ambiguous call: a user overload exists
template <class T>
struct has_free_serialize<
    T, std::void_t<decltype(serialize(std::declval<SerializeProbe&>(), std::declval<T&>(),
                                      std::declval<boost::serialization::version_type>()))>>
    : std::bool_constant<!std::is_same_v<
          decltype(serialize(std::declval<SerializeProbe&>(), std::declval<T&>(),
                             std::declval<boost::serialization::version_type>())),
          NoFreeSerialize>> {};
}  // namespace detail

/// True when particles of type P can travel serialized: arithmetic types, and classes with a
/// serialize() member (any access) or a free serialize() found by Boost.Serialization.
template <class P>
inline constexpr bool is_serializable_v = std::is_arithmetic_v<P> ||
                                          detail::has_member_serialize<P>() ||
                                          detail::has_free_serialize<P>::value;

/// True when particles of type P can travel typed (BOOST_IS_MPI_DATATYPE(P) was declared).
template <class P>
inline constexpr bool is_typed_v = boost::mpi::is_mpi_datatype<P>::value;

/// The transport a particle type gets unless told otherwise: Typed for MPI datatypes,
/// Serialized for everything else.
template <class P>
using default_transport_t = std::conditional_t<is_typed_v<P>, Typed, Serialized>;

/// Compile-time requirements of transport T for particle type P, with messages that say how
/// to fix the type. Instantiated by every class that sends particles.
template <class P, class T>
struct TransportRequirements {
  static_assert(std::is_same_v<T, Typed> || std::is_same_v<T, Serialized>,
                "domdec: the transport must be domdec::Typed or domdec::Serialized");
  static_assert(is_typed_v<P> || is_serializable_v<P>,
                "domdec: this particle type cannot be sent to another rank. Give it a member "
                "`template <class Archive> void serialize(Archive& ar, unsigned) { ar & id & x & "
                "v; }` listing every member (it then travels serialized), and for plain data also "
                "write BOOST_IS_MPI_DATATYPE(YourParticle) after the struct so it travels typed.");
  static_assert(!std::is_same_v<T, Typed> || is_typed_v<P>,
                "domdec: domdec::Typed needs an MPI datatype: write BOOST_IS_MPI_DATATYPE("
                "YourParticle) after a serialize() that lists every member, or use "
                "domdec::Serialized.");
  static_assert(!std::is_same_v<T, Typed> || std::is_trivially_copyable_v<P>,
                "domdec: a typed particle must be trivially copyable (plain data: no "
                "std::string, std::vector or virtual functions); use domdec::Serialized.");
  static_assert(std::is_default_constructible_v<P>,
                "domdec: particle types must be default constructible (arrivals are received "
                "into default-constructed particles)");
  static_assert(std::is_copy_constructible_v<P> && std::is_move_assignable_v<P>,
                "domdec: particle types must be copyable and move-assignable");
};

/// The C++ name of P, for messages.
template <class P>
std::string type_name() {
  return boost::core::demangle(typeid(P).name());
}

namespace detail {

// --- Streams ---------------------------------------------------------------------------
// A migration sends each peer one *stream*: one or more messages with the same tag, all of
// the chunk size except the last, which is shorter (possibly empty) and ends the stream.
// Chunking keeps every message under the int-count limits of MPI and Boost.MPI
// (boostorg/mpi#122); the receiver learns sizes by MPI_Mprobe, so no count messages travel.

/// What one stream operation moved, added into MigrationStats by the Exchanger.
struct StreamCounts {
  std::size_t particles = 0;
  std::size_t messages = 0;
  std::size_t bytes = 0;
};

/// The largest count an MPI call takes (counts are `int`).
inline constexpr std::size_t max_int_count = static_cast<std::size_t>(INT_MAX);

/// `n` as an MPI count. Chunking keeps every message within max_int_count (the Exchanger
/// refuses a larger max_message_bytes), so the check never fires unless that is broken.
inline int to_int_count(std::size_t n) {
  if (n > max_int_count) {
    throw CommunicationError(message("domdec: internal error: a message of ", n,
                                     " elements exceeds MPI's int count; please report it"));
  }
  return static_cast<int>(n);
}

template <class P, class Transport>
class Channel;

/// Typed: buckets are particle arrays sent with the particle's MPI datatype. They live on huge
/// pages when large (allocator.hpp): MPI copies large messages about twice as fast from them.
template <class P>
class Channel<P, Typed> {
 public:
  using Bucket = std::vector<P, ParticleAllocator<P>>;

  explicit Channel(std::size_t max_message_bytes)
      : datatype_(boost::mpi::get_mpi_datatype<P>(P())),
        chunk_(max_message_bytes / sizeof(P) > 0 ? max_message_bytes / sizeof(P) : 1) {}

  /// Empty when the datatype's memory layout matches P's, else what is wrong and how to fix
  /// it. Boost builds the datatype from serialize() and never resizes it to sizeof(P).
  std::string layout_problem() const {
    MPI_Aint lower = 0, extent = 0;
    int size = 0;
    mpi_check(MPI_Type_get_extent(datatype_, &lower, &extent), "MPI_Type_get_extent");
    mpi_check(MPI_Type_size(datatype_, &size), "MPI_Type_size");
    if (lower == 0 && static_cast<std::size_t>(extent) == sizeof(P)) return {};
    return message("domdec: the MPI datatype of ", type_name<P>(), " (built from its serialize())",
                   " spans ", extent, " bytes from offset ", lower, " and carries ", size,
                   " bytes, but sizeof is ", sizeof(P),
                   ": arrays of it would be read at the wrong places. List every member in "
                   "serialize(), avoid trailing padding (order members largest first or add an "
                   "explicit padding member), or use domdec::Serialized.");
  }
  std::uint64_t extent() const {
    MPI_Aint lower = 0, extent = 0;
    mpi_check(MPI_Type_get_extent(datatype_, &lower, &extent), "MPI_Type_get_extent");
    return static_cast<std::uint64_t>(extent);
  }

  static void clear(Bucket& bucket) noexcept { bucket.clear(); }
  static void put(Bucket& bucket, const P& p) { bucket.push_back(p); }
  /// Appends the contiguous particles [first, last).
  static void put(Bucket& bucket, const P* first, const P* last) {
    bucket.insert(bucket.end(), first, last);
  }
  static std::size_t count(const Bucket& bucket) noexcept { return bucket.size(); }

  /// Posts the stream of `bucket` to `dest` as non-blocking sends appended to `requests`.
  /// The bucket must stay untouched until the requests complete.
  StreamCounts send(MPI_Comm comm, int dest, int tag, const Bucket& bucket,
                    std::vector<MPI_Request>& requests) const {
    StreamCounts sent;
    std::size_t offset = 0;
    for (;;) {
      const std::size_t n = std::min(chunk_, bucket.size() - offset);
      MPI_Request request;
      mpi_check(MPI_Isend(bucket.data() + offset, to_int_count(n), datatype_, dest, tag, comm,
                          &request),
                "MPI_Isend");
      requests.push_back(request);
      ++sent.messages;
      offset += n;
      if (n < chunk_) break;  // the short message ends the stream
    }
    sent.particles = bucket.size();
    sent.bytes = bucket.size() * sizeof(P);
    return sent;
  }

  /// Receives the stream from `source` straight into the end of `particles`.
  template <class Alloc>
  StreamCounts receive(MPI_Comm comm, int source, int tag, std::vector<P, Alloc>& particles) {
    StreamCounts received;
    for (;;) {
      MPI_Message probed;
      MPI_Status status;
      mpi_check(MPI_Mprobe(source, tag, comm, &probed, &status), "MPI_Mprobe");
      int n = 0;
      mpi_check(MPI_Get_count(&status, datatype_, &n), "MPI_Get_count");
      const std::size_t old = particles.size();
      particles.resize(old + static_cast<std::size_t>(n));
      mpi_check(MPI_Mrecv(particles.data() + old, n, datatype_, &probed, MPI_STATUS_IGNORE),
                "MPI_Mrecv");
      ++received.messages;
      received.particles += static_cast<std::size_t>(n);
      if (static_cast<std::size_t>(n) < chunk_) break;
    }
    received.bytes = received.particles * sizeof(P);
    return received;
  }

 private:
  MPI_Datatype datatype_;
  std::size_t chunk_;  // particles per full message
};

/// Serialized: a bucket is a byte stream [particle count: 8 bytes][serialized particles...], or
/// for bitwise-serializable particles just [particles...] (received like a typed stream).
template <class P>
class Channel<P, Serialized> {
 public:
  struct Bucket {
    ByteBuffer bytes;
    std::size_t count = 0;
  };

  explicit Channel(std::size_t max_message_bytes)
      : chunk_(max_message_bytes > 0 ? max_message_bytes : 1) {}

  std::string layout_problem() const { return {}; }
  std::uint64_t extent() const { return 0; }

  static void clear(Bucket& bucket) noexcept {
    bucket.bytes.clear();
    bucket.count = 0;
  }
  static void put(Bucket& bucket, const P& p) {
    if constexpr (whole) {
      bucket.bytes.append(&p, sizeof(P));
    } else {
      if (bucket.bytes.empty()) bucket.bytes.extend(sizeof(std::uint64_t));  // the count, later
      ByteWriter writer(bucket.bytes);
      writer << p;
    }
    ++bucket.count;
  }
  /// Appends the contiguous particles [first, last): one copy for bitwise-serializable ones.
  static void put(Bucket& bucket, const P* first, const P* last) {
    if constexpr (whole) {
      bucket.bytes.append(first, static_cast<std::size_t>(last - first) * sizeof(P));
      bucket.count += static_cast<std::size_t>(last - first);
    } else {
      for (; first != last; ++first) put(bucket, *first);
    }
  }
  static std::size_t count(const Bucket& bucket) noexcept { return bucket.count; }

  StreamCounts send(MPI_Comm comm, int dest, int tag, Bucket& bucket,
                    std::vector<MPI_Request>& requests) const {
    if constexpr (!whole) {
      if (bucket.bytes.empty()) bucket.bytes.extend(sizeof(std::uint64_t));
      const auto count = static_cast<std::uint64_t>(bucket.count);
      std::memcpy(bucket.bytes.data(), &count, sizeof count);
    }
    StreamCounts sent;
    std::size_t offset = 0;
    for (;;) {
      const std::size_t n = std::min(chunk_, bucket.bytes.size() - offset);
      MPI_Request request;
      mpi_check(MPI_Isend(bucket.bytes.data() + offset, to_int_count(n), MPI_BYTE, dest, tag, comm,
                          &request),
                "MPI_Isend");
      requests.push_back(request);
      ++sent.messages;
      offset += n;
      if (n < chunk_) break;
    }
    sent.particles = bucket.count;
    sent.bytes = bucket.bytes.size();
    return sent;
  }

  template <class Alloc>
  StreamCounts receive(MPI_Comm comm, int source, int tag, std::vector<P, Alloc>& particles) {
    if constexpr (whole) {
      return receive_whole(comm, source, tag, particles);
    } else {
      return receive_counted(comm, source, tag, particles);
    }
  }

 private:
  // Bitwise-serializable particles are serialized as their bytes: the stream is the particles
  // one after another, without a count (the receiver knows the size of each message), and is
  // received straight into the end of the particle vector, as typed streams are.
  static constexpr bool whole = copied_as_bytes<P>;

  template <class Alloc>
  StreamCounts receive_counted(MPI_Comm comm, int source, int tag,
                               std::vector<P, Alloc>& particles) {
    StreamCounts received;
    incoming_.clear();
    for (;;) {
      MPI_Message probed;
      MPI_Status status;
      mpi_check(MPI_Mprobe(source, tag, comm, &probed, &status), "MPI_Mprobe");
      int n = 0;
      mpi_check(MPI_Get_count(&status, MPI_BYTE, &n), "MPI_Get_count");
      char* at = incoming_.extend(static_cast<std::size_t>(n));
      mpi_check(MPI_Mrecv(at, n, MPI_BYTE, &probed, MPI_STATUS_IGNORE), "MPI_Mrecv");
      ++received.messages;
      if (static_cast<std::size_t>(n) < chunk_) break;
    }
    received.bytes = incoming_.size();
    ByteReader reader(incoming_.data(), incoming_.data() + incoming_.size());
    std::uint64_t count = 0;
    reader >> count;
    particles.reserve(particles.size() + static_cast<std::size_t>(count));
    for (std::uint64_t i = 0; i < count; ++i) {
      particles.emplace_back();
      reader >> particles.back();
    }
    if (reader.remaining() != 0) {
      throw CommunicationError(message(
          "domdec: a serialized message from rank ", source, " had ", reader.remaining(),
          " bytes left after its ", count, " particles: the sender's and the receiver's "
          "serialize() disagree (different builds or versions of ", type_name<P>(), "?)"));
    }
    received.particles = static_cast<std::size_t>(count);
    return received;
  }

  template <class Alloc>
  StreamCounts receive_whole(MPI_Comm comm, int source, int tag, std::vector<P, Alloc>& particles) {
    StreamCounts received;
    const std::size_t old = particles.size();
    for (;;) {
      MPI_Message probed;
      MPI_Status status;
      mpi_check(MPI_Mprobe(source, tag, comm, &probed, &status), "MPI_Mprobe");
      int n = 0;
      mpi_check(MPI_Get_count(&status, MPI_BYTE, &n), "MPI_Get_count");
      const std::size_t bytes = received.bytes + static_cast<std::size_t>(n);
      particles.resize(old + (bytes + sizeof(P) - 1) / sizeof(P));  // a chunk may end mid-particle
      char* at = reinterpret_cast<char*>(particles.data() + old) + received.bytes;
      mpi_check(MPI_Mrecv(at, n, MPI_BYTE, &probed, MPI_STATUS_IGNORE), "MPI_Mrecv");
      received.bytes = bytes;
      ++received.messages;
      if (static_cast<std::size_t>(n) < chunk_) break;
    }
    if (received.bytes % sizeof(P) != 0) {
      particles.resize(old);
      throw CommunicationError(message(
          "domdec: a serialized stream from rank ", source, " of ", received.bytes,
          " bytes is not a whole number of ", type_name<P>(), " (", sizeof(P),
          " bytes each): the sender's and the receiver's particle types differ (different "
          "builds or versions?)"));
    }
    received.particles = received.bytes / sizeof(P);
    return received;
  }

  std::size_t chunk_;  // bytes per full message
  ByteBuffer incoming_;
};

}  // namespace detail
}  // namespace domdec
