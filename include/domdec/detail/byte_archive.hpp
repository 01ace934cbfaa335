// domdec/detail/byte_archive.hpp — the Boost.Serialization archives of the serialized
// transport: the user's serialize() writes straight into a reusable byte buffer.
//
// Why not boost::archive::binary_oarchive or boost::mpi::packed_oarchive: both allocate their
// internal state on every construction (one archive per message per step), go through a
// virtual streambuf or MPI_Pack call per member, and write class headers we do not need (both
// ends run the same binary). These two archives are header-only, allocate nothing once the
// buffer has grown, and copy plain data with memcpy. They support what particle types use:
// arithmetic types, enums, std::string, std::vector, std::array, std::pair, C arrays, nested
// structs with serialize() (member or free, split or not), base_object, and Boost's other
// STL serializers (std::map, std::set, ... with their boost/serialization/*.hpp included).
// Pointers cannot travel between processes and are rejected at compile time.
#pragma once

#include <array>
#include <boost/mpl/bool.hpp>
#include <boost/serialization/array_wrapper.hpp>
#include <boost/serialization/collection_size_type.hpp>
#include <boost/serialization/is_bitwise_serializable.hpp>
#include <boost/serialization/item_version_type.hpp>
#include <boost/serialization/library_version_type.hpp>
#include <boost/serialization/nvp.hpp>
#include <boost/serialization/serialization.hpp>
#include <boost/serialization/version.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "domdec/detail/byte_buffer.hpp"
#include "domdec/error.hpp"

namespace domdec::detail {

template <class T>
struct is_std_vector : std::false_type {};
template <class T, class A>
struct is_std_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_std_array : std::false_type {};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};
template <class T>
struct is_std_pair : std::false_type {};
template <class A, class B>
struct is_std_pair<std::pair<A, B>> : std::true_type {};
template <class T>
struct is_nvp : std::false_type {};
template <class T>
struct is_nvp<boost::serialization::nvp<T>> : std::true_type {};
template <class T>
struct is_array_wrapper : std::false_type {};
template <class T>
struct is_array_wrapper<boost::serialization::array_wrapper<T>> : std::true_type {};

/// Copied with one memcpy: arithmetic types, and trivially copyable types the user marked
/// BOOST_IS_BITWISE_SERIALIZABLE.
template <class T>
inline constexpr bool copied_as_bytes =
    std::is_trivially_copyable_v<T> &&
    (std::is_arithmetic_v<T> || boost::serialization::is_bitwise_serializable<T>::value);

// The "library version" Boost's STL serializers ask the archive for: above 5, so they write
// and read the same fields (item_version for node containers, none for vector<arithmetic>).
inline constexpr unsigned int archive_library_version = 17;

/// Output archive: appends the serialized form of values to a ByteBuffer.
class ByteWriter {
 public:
  using is_saving = boost::mpl::bool_<true>;
  using is_loading = boost::mpl::bool_<false>;

  explicit ByteWriter(ByteBuffer& out) noexcept : out_(&out) {}

  template <class T>
  ByteWriter& operator<<(const T& value) {
    save(value);
    return *this;
  }
  template <class T>
  ByteWriter& operator&(const T& value) {
    save(value);
    return *this;
  }

  void save_binary(const void* bytes, std::size_t n) { out_->append(bytes, n); }

  // The rest of the archive interface Boost's serializers call.
  boost::serialization::library_version_type get_library_version() const {
    return boost::serialization::library_version_type(archive_library_version);
  }
  template <class T>
  void register_type(const T* = nullptr) {}
  unsigned int get_flags() const { return 0; }

  template <class T>
  void save(const T& value) {
    static_assert(!std::is_pointer_v<T>,
                  "domdec: a pointer cannot travel to another process; store the value (or an "
                  "index) in the particle instead");
    if constexpr (copied_as_bytes<T>) {
      save_binary(&value, sizeof(T));
    } else if constexpr (std::is_enum_v<T>) {
      save(static_cast<std::underlying_type_t<T>>(value));
    } else if constexpr (std::is_same_v<T, std::string>) {
      save(static_cast<std::uint64_t>(value.size()));
      save_binary(value.data(), value.size());
    } else if constexpr (is_std_vector<T>::value) {
      save(static_cast<std::uint64_t>(value.size()));
      save_elements(value.data(), value.size());
    } else if constexpr (is_std_array<T>::value) {
      save_elements(value.data(), value.size());
    } else if constexpr (std::is_array_v<T>) {
      save_elements(&value[0], std::extent_v<T>);
    } else if constexpr (is_std_pair<T>::value) {
      save(value.first);
      save(value.second);
    } else if constexpr (is_nvp<T>::value) {
      save(value.const_value());
    } else if constexpr (is_array_wrapper<T>::value) {
      save_elements(value.address(), value.count());
    } else if constexpr (std::is_same_v<T, boost::serialization::collection_size_type>) {
      save(static_cast<std::uint64_t>(static_cast<std::size_t>(value)));
    } else if constexpr (std::is_same_v<T, boost::serialization::item_version_type>) {
      save(static_cast<std::uint32_t>(static_cast<unsigned int>(value)));
    } else {
      // A class with serialize() (member or free) or save()/load(): let Boost dispatch.
      boost::serialization::serialize_adl(*this, const_cast<T&>(value),
                                          boost::serialization::version<T>::value);
    }
  }

 private:
  template <class E>
  void save_elements(const E* first, std::size_t n) {
    if constexpr (copied_as_bytes<E>) {
      save_binary(first, n * sizeof(E));
    } else {
      for (std::size_t i = 0; i < n; ++i) save(first[i]);
    }
  }

  ByteBuffer* out_;
};

/// Input archive: reads values back from [begin, end) in the order ByteWriter wrote them.
/// Reading past the end throws CommunicationError (the two sides' serialize() disagree).
class ByteReader {
 public:
  using is_saving = boost::mpl::bool_<false>;
  using is_loading = boost::mpl::bool_<true>;

  ByteReader(const char* begin, const char* end) noexcept : at_(begin), end_(end) {}

  template <class T>
  ByteReader& operator>>(T&& value) {
    load(value);
    return *this;
  }
  template <class T>
  ByteReader& operator&(T&& value) {
    load(value);
    return *this;
  }

  void load_binary(void* bytes, std::size_t n) {
    require(n);
    if (n != 0) std::memcpy(bytes, at_, n);
    at_ += n;
  }

  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - at_); }

  boost::serialization::library_version_type get_library_version() const {
    return boost::serialization::library_version_type(archive_library_version);
  }
  template <class T>
  void register_type(const T* = nullptr) {}
  unsigned int get_flags() const { return 0; }
  void reset_object_address(const void*, const void*) {}
  void delete_created_pointers() {}

  template <class T>
  void load(T& target) {
    // Boost's serializers hand over const members (the key of a map's pair): loading is the
    // one time they are written, as in Boost's own archives.
    using U = std::remove_const_t<T>;
    U& value = const_cast<U&>(target);
    static_assert(!std::is_pointer_v<U>,
                  "domdec: a pointer cannot travel to another process; store the value (or an "
                  "index) in the particle instead");
    if constexpr (is_nvp<U>::value) {
      load(value.value());
    } else if constexpr (is_array_wrapper<U>::value) {
      load_elements(value.address(), value.count());
    } else if constexpr (copied_as_bytes<U>) {
      load_binary(&value, sizeof(U));
    } else if constexpr (std::is_enum_v<U>) {
      std::underlying_type_t<U> raw{};
      load(raw);
      value = static_cast<U>(raw);
    } else if constexpr (std::is_same_v<U, std::string>) {
      const std::size_t n = load_size();
      require(n);
      value.assign(at_, n);
      at_ += n;
    } else if constexpr (is_std_vector<U>::value) {
      const std::size_t n = load_size();
      using E = typename U::value_type;
      if constexpr (copied_as_bytes<E>) require(n * sizeof(E));
      value.resize(n);
      load_elements(value.data(), n);
    } else if constexpr (is_std_array<U>::value) {
      load_elements(value.data(), value.size());
    } else if constexpr (std::is_array_v<U>) {
      load_elements(&value[0], std::extent_v<U>);
    } else if constexpr (is_std_pair<U>::value) {
      load(value.first);
      load(value.second);
    } else if constexpr (std::is_same_v<U, boost::serialization::collection_size_type>) {
      value = boost::serialization::collection_size_type(load_size());
    } else if constexpr (std::is_same_v<U, boost::serialization::item_version_type>) {
      std::uint32_t raw = 0;
      load(raw);
      value = boost::serialization::item_version_type(raw);
    } else {
      boost::serialization::serialize_adl(*this, value, boost::serialization::version<U>::value);
    }
  }

 private:
  std::size_t load_size() {
    std::uint64_t n = 0;
    load(n);
    return static_cast<std::size_t>(n);
  }

  template <class E>
  void load_elements(E* first, std::size_t n) {
    if constexpr (copied_as_bytes<E>) {
      load_binary(first, n * sizeof(E));
    } else {
      for (std::size_t i = 0; i < n; ++i) load(first[i]);
    }
  }

  void require(std::size_t n) const {
    if (n > remaining()) {
      throw CommunicationError(
          "domdec: a serialized message ended before its particle did: the sender's and the "
          "receiver's serialize() disagree (different builds or versions of the particle type?)");
    }
  }

  const char* at_;
  const char* end_;
};

}  // namespace domdec::detail
