// bench/alloc_counter.cpp — counts every allocation of a benchmark process, to prove that a
// steady-state step allocates nothing. It replaces the malloc family (so operator new, the
// C++ library, Boost and Open MPI are all counted) and mmap (domdec's huge-page blocks are
// mapped directly), forwarding to glibc. Counting is one relaxed atomic increment per call.
// Calls made from Open MPI's own libraries are also counted apart (attribute_mpi_allocations),
// so that what MPI does inside a collective is told from what domdec does.
#include <link.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
std::atomic<std::uint64_t> allocations{0};
std::atomic<std::uint64_t> mpi_allocations{0};

// Code ranges of Open MPI's libraries and components, filled once after MPI_Init.
struct Range {
  std::uintptr_t begin, end;
};
constexpr int max_ranges = 512;
Range mpi_code[max_ranges];
std::atomic<int> mpi_ranges{0};

bool from_mpi(const void* caller) {
  const auto at = reinterpret_cast<std::uintptr_t>(caller);
  const int n = mpi_ranges.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i)
    if (at >= mpi_code[i].begin && at < mpi_code[i].end) return true;
  return false;
}

inline void count(const void* caller) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (mpi_ranges.load(std::memory_order_relaxed) != 0 && from_mpi(caller))
    mpi_allocations.fetch_add(1, std::memory_order_relaxed);
}

int add_mpi_library(dl_phdr_info* info, std::size_t, void*) {
  const char* name = info->dlpi_name;
  if (name == nullptr ||
      (std::strstr(name, "libmpi") == nullptr && std::strstr(name, "libopen-") == nullptr &&
       std::strstr(name, "openmpi") == nullptr))
    return 0;
  int n = mpi_ranges.load(std::memory_order_relaxed);
  for (int i = 0; i < info->dlpi_phnum && n < max_ranges; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_LOAD || (segment.p_flags & PF_X) == 0) continue;
    const std::uintptr_t begin = info->dlpi_addr + segment.p_vaddr;
    mpi_code[n++] = {begin, begin + segment.p_memsz};
  }
  mpi_ranges.store(n, std::memory_order_release);
  return 0;
}
}  // namespace

namespace bench {
std::uint64_t allocation_count() { return allocations.load(std::memory_order_relaxed); }
std::uint64_t mpi_allocation_count() { return mpi_allocations.load(std::memory_order_relaxed); }
void attribute_mpi_allocations() {
  if (mpi_ranges.load() == 0) dl_iterate_phdr(add_mpi_library, nullptr);
}
}  // namespace bench

extern "C" {

void* malloc(std::size_t n) {
  count(__builtin_return_address(0));
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) {
  count(__builtin_return_address(0));
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  count(__builtin_return_address(0));
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(std::size_t alignment, std::size_t n) {
  count(__builtin_return_address(0));
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  count(__builtin_return_address(0));
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  count(__builtin_return_address(0));
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

// Anonymous mappings are allocations too (file and shared-memory mappings are counted alike:
// they happen at start-up).
void* mmap(void* address, std::size_t length, int protection, int flags, int fd, off_t offset) {
  count(__builtin_return_address(0));
  const long result = syscall(SYS_mmap, address, length, protection, flags, fd, offset);
  return result == -1 ? MAP_FAILED : reinterpret_cast<void*>(result);  // errno set by syscall
}

}  // extern "C"
