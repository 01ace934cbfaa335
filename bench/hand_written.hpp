// bench/hand_written.hpp — the yardstick: the 1-D box step (propagate, reflect at the walls,
// migrate to the owner) written directly against the MPI C API, as fast as we know how:
// a committed struct datatype; particles in one contiguous array on huge pages; one pass that
// propagates, reflects, and sorts leavers into two send arrays while compacting the stayers in
// place; sends posted at once; arrivals probed (MPI_Mprobe) and received straight into the
// tail of the particle array; no allocation once the arrays have grown. It assumes, as such
// codes do, that no particle goes further than a neighbouring slab in one step (it checks
// this and aborts rather than lose a particle). Nothing here uses domdec.
#pragma once

#include <mpi.h>
#include <sys/mman.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

#include "bench_common.hpp"

namespace bench {

/// The MPI struct datatype of a benchmark particle, built by hand and committed.
template <class P>
MPI_Datatype particle_datatype() {
  static_assert(offsetof(P, x) == 8 && offsetof(P, v) == 16, "id, x, v first");
  constexpr int doubles = static_cast<int>((sizeof(P) - offsetof(P, x)) / sizeof(double));
  const int lengths[2] = {1, doubles};
  const MPI_Aint displacements[2] = {static_cast<MPI_Aint>(offsetof(P, id)),
                                     static_cast<MPI_Aint>(offsetof(P, x))};
  MPI_Datatype types[2] = {MPI_INT64_T, MPI_DOUBLE};
  MPI_Datatype packed = MPI_DATATYPE_NULL, type = MPI_DATATYPE_NULL;
  MPI_Type_create_struct(2, lengths, displacements, types, &packed);
  MPI_Type_create_resized(packed, 0, static_cast<MPI_Aint>(sizeof(P)), &type);
  MPI_Type_free(&packed);
  MPI_Type_commit(&type);
  return type;
}

/// A growable array of trivially copyable T in 2 MiB-aligned memory advised MADV_HUGEPAGE.
/// Elements are never initialized by the array; capacity only grows (by doubling).
template <class T>
class HugeArray {
  static_assert(std::is_trivially_copyable_v<T>, "plain data only");

 public:
  HugeArray() = default;
  HugeArray(const HugeArray&) = delete;
  HugeArray& operator=(const HugeArray&) = delete;
  ~HugeArray() { std::free(data_); }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  void set_size(std::size_t n) noexcept { size_ = n; }  // n <= capacity()

  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    std::size_t grown = capacity_ * 2 > n ? capacity_ * 2 : n;
    constexpr std::size_t page = std::size_t{1} << 21;
    const std::size_t bytes = (grown * sizeof(T) + page - 1) / page * page;
    void* p = std::aligned_alloc(page, bytes);
    if (p == nullptr) throw std::bad_alloc();
    madvise(p, bytes, MADV_HUGEPAGE);
    if (size_ != 0) std::memcpy(p, data_, size_ * sizeof(T));
    std::free(data_);
    data_ = static_cast<T*>(p);
    capacity_ = bytes / sizeof(T);
  }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

/// The hand-written 1-D box on `comm`: [0, 1] with reflecting walls, equal slabs.
template <class P>
class HandWritten {
 public:
  /// No particles yet, room for `capacity` (add them with add()).
  HandWritten(MPI_Comm comm, std::size_t capacity) : comm_(comm), type_(particle_datatype<P>()) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    lower_ = rank_ > 0 ? rank_ - 1 : MPI_PROC_NULL;
    upper_ = rank_ < size_ - 1 ? rank_ + 1 : MPI_PROC_NULL;
    lo_ = cut(rank_, size_);
    // The last slab owns the upper wall: its test is x < nextafter(1).
    hi_ = rank_ == size_ - 1 ? std::nextafter(1.0, 2.0) : cut(rank_ + 1, size_);
    below_lower_ = rank_ > 0 ? cut(rank_ - 1, size_) : 0.0;
    above_upper_ = rank_ < size_ - 2 ? cut(rank_ + 2, size_) : 2.0;
    particles_.reserve(capacity);
  }
  HandWritten(const HandWritten&) = delete;
  HandWritten& operator=(const HandWritten&) = delete;
  ~HandWritten() { MPI_Type_free(&type_); }

  const HugeArray<P>& particles() const noexcept { return particles_; }
  HugeArray<P>& particles() noexcept { return particles_; }
  void add(const P& p) {
    particles_.reserve(particles_.size() + 1);
    particles_[particles_.size()] = p;
    particles_.set_size(particles_.size() + 1);
  }
  std::uint64_t sent() const noexcept { return sent_; }
  std::uint64_t received() const noexcept { return received_; }

  /// One step: x += v dt, reflect at the walls, every particle to its owner.
  void step(double dt) {
    prepare_send_arrays();
    const std::size_t n = particles_.size();
    P* a = particles_.data();
    P* down = to_lower_.data();
    P* up = to_upper_.data();
    std::size_t kept = 0, nd = 0, nu = 0;
    bool far = false;
    for (std::size_t i = 0; i < n; ++i) {
      P p = a[i];
      propagate_and_reflect(p, dt);
      const double x = p.x;
      if (x >= lo_ && x < hi_) {
        a[kept++] = p;  // compaction in place: the stayers close ranks
      } else if (x < lo_) {
        far |= x < below_lower_;
        down[nd++] = p;
      } else {
        far |= x >= above_upper_;
        up[nu++] = p;
      }
    }
    if (far) fail("hand-written: a particle went further than a neighbouring slab");
    particles_.set_size(kept);
    exchange(nd, nu);
  }

  /// Migration only (positions already updated): one pass that sorts leavers out and fills
  /// each hole with the last stayer, then the exchange.
  void migrate() {
    prepare_send_arrays();
    P* a = particles_.data();
    P* down = to_lower_.data();
    P* up = to_upper_.data();
    std::size_t nd = 0, nu = 0, i = 0, end = particles_.size();
    bool far = false;
    auto put = [&](const P& p) {
      if (p.x < lo_) {
        far |= p.x < below_lower_;
        down[nd++] = p;
      } else {
        far |= p.x >= above_upper_;
        up[nu++] = p;
      }
    };
    while (i < end) {
      if (stays(a[i].x)) {
        ++i;
        continue;
      }
      put(a[i]);
      while (--end > i) {  // the last stayer fills the hole
        if (stays(a[end].x)) {
          a[i] = a[end];
          ++i;
          break;
        }
        put(a[end]);
      }
    }
    if (far) fail("hand-written: a particle went further than a neighbouring slab");
    particles_.set_size(i);
    exchange(nd, nu);
  }

 private:
  bool stays(double x) const noexcept { return x >= lo_ && x < hi_; }

  void prepare_send_arrays() {
    // Every particle could leave: room for all, so the hot loop never checks.
    to_lower_.reserve(particles_.size());
    to_upper_.reserve(particles_.size());
  }

  void exchange(std::size_t nd, std::size_t nu) {
    constexpr int tag = 7;
    MPI_Request requests[2];
    int posted = 0;
    if (lower_ != MPI_PROC_NULL)
      MPI_Isend(to_lower_.data(), static_cast<int>(nd), type_, lower_, tag, comm_,
                &requests[posted++]);
    if (upper_ != MPI_PROC_NULL)
      MPI_Isend(to_upper_.data(), static_cast<int>(nu), type_, upper_, tag, comm_,
                &requests[posted++]);
    std::size_t size = particles_.size();
    for (int source : {lower_, upper_}) {
      if (source == MPI_PROC_NULL) continue;
      MPI_Message message;
      MPI_Status status;
      MPI_Mprobe(source, tag, comm_, &message, &status);
      int count = 0;
      MPI_Get_count(&status, type_, &count);
      particles_.reserve(size + static_cast<std::size_t>(count));  // grows only past capacity
      MPI_Mrecv(particles_.data() + size, count, type_, &message, MPI_STATUS_IGNORE);
      size += static_cast<std::size_t>(count);
      received_ += static_cast<std::uint64_t>(count);
    }
    MPI_Waitall(posted, requests, MPI_STATUSES_IGNORE);
    particles_.set_size(size);
    sent_ += nd + nu;
  }

  MPI_Comm comm_;
  MPI_Datatype type_;
  int rank_ = 0, size_ = 1, lower_ = MPI_PROC_NULL, upper_ = MPI_PROC_NULL;
  double lo_ = 0, hi_ = 1, below_lower_ = 0, above_upper_ = 1;
  HugeArray<P> particles_, to_lower_, to_upper_;
  std::uint64_t sent_ = 0, received_ = 0;
};

}  // namespace bench
