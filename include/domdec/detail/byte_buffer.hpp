// domdec/detail/byte_buffer.hpp — a growable byte buffer that does not zero what it grows by
// (std::vector<char> would) and keeps its capacity, so serialized messages reuse memory.
// Large buffers live on huge pages (allocator.hpp), where MPI copies them about twice as fast.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#include "domdec/allocator.hpp"

namespace domdec::detail {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ByteBuffer(ByteBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  ByteBuffer& operator=(ByteBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
    return *this;
  }
  ~ByteBuffer() { deallocate_bytes(data_, capacity_); }

  char* data() noexcept { return data_; }
  const char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }

  /// Forgets the contents, keeps the memory.
  void clear() noexcept { size_ = 0; }

  /// Makes room for `n` bytes in total, keeping the contents; grows at least geometrically.
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    std::size_t grown = capacity_ < 64 ? 64 : capacity_ * 2;
    if (grown < n) grown = n;
    if (is_huge_block(grown)) grown = round_up_to_huge_page(grown);  // use the whole mapping
    char* p = static_cast<char*>(allocate_bytes(grown));
    if (size_ != 0) std::memcpy(p, data_, size_);
    deallocate_bytes(data_, capacity_);
    data_ = p;
    capacity_ = grown;
  }

  /// Sets the size to `n`; new bytes are uninitialized (to be overwritten by a receive).
  void resize_uninitialized(std::size_t n) {
    reserve(n);
    size_ = n;
  }

  /// Appends `n` uninitialized bytes and returns where they start.
  char* extend(std::size_t n) {
    reserve(size_ + n);
    char* at = data_ + size_;
    size_ += n;
    return at;
  }

  void append(const void* bytes, std::size_t n) {
    if (n != 0) std::memcpy(extend(n), bytes, n);
  }

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace domdec::detail
