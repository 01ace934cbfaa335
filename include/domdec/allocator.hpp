// domdec/allocator.hpp — memory for particle vectors and communication buffers: large blocks
// on transparent huge pages, and vectors that do not zero particles about to be overwritten.
//
// Why: on Linux with transparent huge pages in `madvise` mode (Debian's default), memory from
// glibc's malloc sits on 4 KiB pages. MPI's shared-memory transport then pins and copies large
// messages page by page; measured here, a 24 MB message travels at ~10 GB/s from malloc'd
// memory and at ~20 GB/s from 2 MiB-aligned memory advised MADV_HUGEPAGE (numpy advises its
// large arrays, which is why mpi4py's `Send` was faster than plain C++). domdec's own buffers
// use this allocator; users opt in for their particle vector with `domdec::ParticleVector<P>`.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace domdec {
namespace detail {

/// A transparent huge page on x86-64 (and AArch64 with 4 KiB base pages).
inline constexpr std::size_t huge_page_bytes = std::size_t{1} << 21;

inline constexpr std::size_t round_up_to_huge_page(std::size_t n) noexcept {
  return (n + huge_page_bytes - 1) & ~(huge_page_bytes - 1);
}

/// True when a block of `n` bytes is mapped on its own and advised to use huge pages.
inline constexpr bool is_huge_block(std::size_t n) noexcept { return n >= huge_page_bytes; }

/// `n` bytes aligned to `alignment`. Blocks of at least 2 MiB are mapped directly (mmap),
/// aligned to 2 MiB and advised MADV_HUGEPAGE before their first touch, so the kernel backs
/// them with huge pages when it can (the advice is harmless when it cannot); they are returned
/// to the system when freed. Smaller blocks come from operator new. Throws std::bad_alloc.
inline void* allocate_bytes(std::size_t n, std::size_t alignment = alignof(std::max_align_t)) {
  if (!is_huge_block(n)) {
    if (alignment > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
      return ::operator new(n, std::align_val_t(alignment));
    return ::operator new(n);
  }
  const std::size_t size = round_up_to_huge_page(n);
  if (size < n || size + huge_page_bytes < size) throw std::bad_alloc();  // overflow
  // Over-map by one huge page, then trim to a 2 MiB-aligned block of `size` bytes.
  void* mapped = ::mmap(nullptr, size + huge_page_bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(mapped);
  const std::uintptr_t aligned = (start + huge_page_bytes - 1) & ~(huge_page_bytes - 1);
  if (aligned > start) ::munmap(mapped, aligned - start);
  const std::uintptr_t end = start + size + huge_page_bytes;
  if (end > aligned + size) ::munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
  void* block = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
  ::madvise(block, size, MADV_HUGEPAGE);  // advice: ignored where huge pages are unavailable
#endif
  return block;
}

/// Frees a block from allocate_bytes with the same `n` and `alignment`.
inline void deallocate_bytes(void* p, std::size_t n,
                             std::size_t alignment = alignof(std::max_align_t)) noexcept {
  if (p == nullptr) return;
  if (!is_huge_block(n)) {
    if (alignment > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
      ::operator delete(p, std::align_val_t(alignment));
    else
      ::operator delete(p);
    return;
  }
  ::munmap(p, round_up_to_huge_page(n));
}

}  // namespace detail

/// A standard allocator for particle vectors (`domdec::ParticleVector<P>`) that
/// - places blocks of 2 MiB or more on transparent huge pages (see detail::allocate_bytes):
///   large migrations and transfers copy about twice as fast, with no tuning by the user;
/// - default-initializes instead of value-initializing: `resize(n)` on a vector of a
///   plain-data particle type leaves the new particles' members unset instead of zeroing them,
///   so arrivals received into the vector are written once, not twice. Every particle added by
///   `resize` must therefore be assigned before it is read (types with default member
///   initializers or a constructor are initialized as usual).
/// Otherwise it behaves as std::allocator: stateless, all instances compare equal.
template <class T>
class ParticleAllocator {
 public:
  using value_type = T;

  ParticleAllocator() noexcept = default;
  template <class U>
  ParticleAllocator(const ParticleAllocator<U>&) noexcept {}  // NOLINT: rebinding is implicit

  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(detail::allocate_bytes(n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    detail::deallocate_bytes(p, n * sizeof(T), alignof(T));
  }

  /// Default-initialization: `new (p) U` (no zeroing of plain data).
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }

  template <class U>
  friend bool operator==(const ParticleAllocator&, const ParticleAllocator<U>&) noexcept {
    return true;
  }
  template <class U>
  friend bool operator!=(const ParticleAllocator&, const ParticleAllocator<U>&) noexcept {
    return false;
  }
};

/// A particle vector on huge pages whose `resize` does not zero plain-data particles: what
/// `Exchanger::migrate` is fastest with. A drop-in for std::vector<P> (same interface).
template <class P>
using ParticleVector = std::vector<P, ParticleAllocator<P>>;

}  // namespace domdec
