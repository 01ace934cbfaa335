// domdec/snapshot.hpp — particle snapshots that standard viewers open: LAMMPS-style text dumps
// (OVITO, VMD) and VTK PolyData (.vtp pieces, one per rank, joined by .pvtp and a .pvd time
// series for ParaView), each with id, position, velocity and owning rank. Written in parallel:
// no rank gathers the particles of the others.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "domdec/conservation.hpp"
#include "domdec/coordinates.hpp"
#include "domdec/decomposition.hpp"
#include "domdec/detail/byte_buffer.hpp"
#include "domdec/detail/collective_error.hpp"
#include "domdec/detail/format.hpp"
#include "domdec/detail/mpi_check.hpp"
#include "domdec/error.hpp"

namespace domdec {

/// A file could not be created or written. Thrown by the collective writers on every rank with
/// the lowest failing rank's message (naming the rank, the file and the system's reason).
class OutputError : public Error {
 public:
  using Error::Error;
};

/// What a SnapshotWriter writes.
struct SnapshotOptions {
  std::string name = "particles";  ///< base name of the files
  bool lammps = true;              ///< <directory>/<name>.lammpstrj, one frame appended per write()
  bool vtk = true;  ///< <directory>/<name>.pvd, vtk/<name>_<step>.pvtp and one .vtp per rank
  /// A `radius` column so viewers draw the particles at a sensible size; 0 means 1/1000 of
  /// the longest side of the box.
  double radius = 0.0;
};

namespace detail {

/// Appends the shortest text that reads back as exactly `value`.
template <class T>
void append_number(ByteBuffer& out, T value) {
  std::array<char, 32> text{};
  const auto result = std::to_chars(text.data(), text.data() + text.size(), value);
  out.append(text.data(), static_cast<std::size_t>(result.ptr - text.data()));
}
inline void append_text(ByteBuffer& out, const std::string& text) {
  out.append(text.data(), text.size());
}
inline void append_char(ByteBuffer& out, char c) { out.append(&c, 1); }

/// Writes `bytes` at `offset` of an open MPI file, in pieces that fit MPI's int counts.
/// Local; returns an error text, empty on success.
inline std::string write_at(MPI_File file, MPI_Offset offset, const char* bytes, std::size_t n,
                            const std::string& path) {
  constexpr std::size_t chunk = std::size_t{1} << 30;
  while (n > 0) {
    const std::size_t m = n < chunk ? n : chunk;
    const int rc =
        MPI_File_write_at(file, offset, bytes, static_cast<int>(m), MPI_BYTE, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      std::array<char, MPI_MAX_ERROR_STRING> text{};
      int length = 0;
      MPI_Error_string(rc, text.data(), &length);
      return "cannot write " + path + ": " +
             std::string(text.data(), static_cast<std::size_t>(length));
    }
    offset += static_cast<MPI_Offset>(m);
    bytes += m;
    n -= m;
  }
  return {};
}

inline std::string mpi_error_text(int rc) {
  std::array<char, MPI_MAX_ERROR_STRING> text{};
  int length = 0;
  MPI_Error_string(rc, text.data(), &length);
  return std::string(text.data(), static_cast<std::size_t>(length));
}

inline std::string padded(std::int64_t value, int width) {
  std::string digits = std::to_string(value);
  if (static_cast<int>(digits.size()) < width)
    digits.insert(0, static_cast<std::size_t>(width) - digits.size(), '0');
  return digits;
}

}  // namespace detail

/// Writes snapshots of a distributed particle set, each rank writing its own particles.
///
/// Files, in `directory`:
/// - `<name>.lammpstrj`: LAMMPS "dump custom" text, one frame per write() with the columns
///   `id x y z vx vy vz proc radius` (proc = owning rank; y, z are 0 in 1-D). Each rank writes
///   its lines at its own offset of the shared file (MPI-IO), in rank order. Open it in OVITO
///   or VMD (`vmd -lammpstrj particles.lammpstrj`).
/// - `<name>.pvd`: the time series for ParaView, listing `vtk/<name>_<step>.pvtp` files, each
///   of which joins one `.vtp` piece per rank (points with `id`, `velocity`, `rank`).
///
/// Each write() is collective over the decomposition's communicator and costs one pass over
/// the selected particles to format them, two allgathers of a few words, and the file I/O.
/// Failures (a directory that cannot be created, a full disk) make every rank throw
/// OutputError. Formatting reuses buffers, but files are opened per frame.
template <class P, int Dim>
class SnapshotWriter {
 public:
  /// Collective: rank 0 creates `directory` (and `directory/vtk`); every rank throws
  /// OutputError if it cannot. `decomposition` must outlive the writer.
  SnapshotWriter(const Decomposition<Dim>& decomposition, std::string directory,
                 Coordinates<P, Dim> position,
                 std::optional<Coordinates<P, Dim>> velocity = std::nullopt,
                 SnapshotOptions options = {})
      : decomposition_(&decomposition),
        directory_(std::move(directory)),
        position_(position),
        velocity_(velocity),
        options_(std::move(options)) {
    if (options_.radius <= 0.0) {
      double longest = 0.0;
      for (int a = 0; a < Dim; ++a) longest = std::max(longest, decomposition.domain().length(a));
      options_.radius = longest / 1000.0;
    }
    std::string problem;
    if (decomposition.rank() == 0) {
      std::error_code ec;
      std::filesystem::create_directories(vtk_directory(), ec);
      if (ec) problem = "domdec: cannot create " + vtk_directory() + ": " + ec.message();
    }
    const std::string agreed = detail::agree_on_error(comm(), problem);
    if (!agreed.empty()) throw OutputError(agreed);
  }

  /// How ids are read (default: the particle's integral member `id`).
  void identify_with(std::function<std::uint64_t(const P&)> id_of) { id_of_ = std::move(id_of); }

  /// Writes only the particles for which `keep(p)` is true (e.g. a fixed subset of ids, so
  /// that frames of a million-particle run stay small). Every rank must select alike.
  void select(std::function<bool(const P&)> keep) { keep_ = std::move(keep); }

  /// Writes one frame: this rank's `particles` at `step` (and simulation `time`, for
  /// ParaView's time axis). Collective: every rank calls it with the same step and time.
  void write(const std::vector<P>& particles, std::int64_t step, double time) {
    if (options_.lammps) write_lammps(particles, step);
    if (options_.vtk) write_vtk(particles, step, time);
    ++frames_;
  }

  std::string lammps_path() const { return directory_ + "/" + options_.name + ".lammpstrj"; }
  std::string pvd_path() const { return directory_ + "/" + options_.name + ".pvd"; }
  std::string vtk_directory() const { return directory_ + "/vtk"; }
  std::string pvtp_name(std::int64_t step) const {
    return options_.name + "_" + detail::padded(step, 9) + ".pvtp";
  }
  std::string piece_name(std::int64_t step, int rank) const {
    return options_.name + "_" + detail::padded(step, 9) + "_r" + detail::padded(rank, 5) + ".vtp";
  }
  /// Frames written so far.
  std::int64_t frames() const noexcept { return frames_; }

 private:
  MPI_Comm comm() const { return MPI_Comm(decomposition_->communicator()); }

  bool kept(const P& p) const { return !keep_ || keep_(p); }
  std::uint64_t id_of(const P& p) const {
    if (id_of_) return id_of_(p);
    if constexpr (has_integral_id_v<P>) {
      return static_cast<std::uint64_t>(p.id);
    } else {
      return 0;
    }
  }
  std::array<double, 3> point(const P& p, const std::optional<Coordinates<P, Dim>>& c) const {
    std::array<double, 3> xyz{0.0, 0.0, 0.0};
    if (c)
      for (int a = 0; a < Dim; ++a) xyz[static_cast<std::size_t>(a)] = c->get(p, a);
    return xyz;
  }

  // The header of a LAMMPS frame: every rank can compute it (it depends only on the step,
  // the total count and the box), so every rank knows where the particle lines start.
  std::string lammps_header(std::int64_t step, std::uint64_t total) const {
    const Domain<Dim>& box = decomposition_->domain();
    double longest = 0.0;
    for (int a = 0; a < Dim; ++a) longest = std::max(longest, box.length(a));
    std::string flags, bounds;
    for (int a = 0; a < 3; ++a) {
      if (a < Dim) {
        flags += box.boundary(a) == Boundary::periodic ? " pp" : " ff";
        bounds += detail::message(box.lower(a), " ", box.upper(a), "\n");
      } else {
        flags += " pp";
        bounds += detail::message(-0.02 * longest, " ", 0.02 * longest, "\n");
      }
    }
    return detail::message("ITEM: TIMESTEP\n", step, "\nITEM: NUMBER OF ATOMS\n", total,
                           "\nITEM: BOX BOUNDS", flags, "\n", bounds, "ITEM: ATOMS id x y z",
                           velocity_ ? " vx vy vz" : "", " proc radius\n");
  }

  void write_lammps(const std::vector<P>& particles, std::int64_t step) {
    const int rank = decomposition_->rank(), size = decomposition_->size();
    text_.clear();
    std::uint64_t count = 0;
    for (const P& p : particles) {
      if (!kept(p)) continue;
      ++count;
      detail::append_number(text_, id_of(p));
      for (double x : point(p, position_)) {
        detail::append_char(text_, ' ');
        detail::append_number(text_, x);
      }
      if (velocity_) {
        for (double v : point(p, velocity_)) {
          detail::append_char(text_, ' ');
          detail::append_number(text_, v);
        }
      }
      detail::append_char(text_, ' ');
      detail::append_number(text_, rank);
      detail::append_char(text_, ' ');
      detail::append_number(text_, options_.radius);
      detail::append_char(text_, '\n');
    }
    const std::array<std::uint64_t, 2> mine{count, text_.size()};
    sizes_.resize(2 * static_cast<std::size_t>(size));
    detail::mpi_check(
        MPI_Allgather(mine.data(), 2, MPI_UINT64_T, sizes_.data(), 2, MPI_UINT64_T, comm()),
        "MPI_Allgather");
    std::uint64_t total = 0, before_me = 0, all_bytes = 0;
    for (int r = 0; r < size; ++r) {
      total += sizes_[2 * static_cast<std::size_t>(r)];
      if (r < rank) before_me += sizes_[2 * static_cast<std::size_t>(r) + 1];
      all_bytes += sizes_[2 * static_cast<std::size_t>(r) + 1];
    }
    const std::string header = lammps_header(step, total);
    const std::string path = lammps_path();

    MPI_File file;
    const int mode = MPI_MODE_CREATE | MPI_MODE_WRONLY;
    const int rc = MPI_File_open(comm(), path.c_str(), mode, MPI_INFO_NULL, &file);
    std::string problem = rc == MPI_SUCCESS
                              ? std::string()
                              : detail::message("domdec: rank ", rank, " cannot open ", path, ": ",
                                                detail::mpi_error_text(rc));
    std::string agreed = detail::agree_on_error(comm(), problem);
    if (!agreed.empty()) throw OutputError(agreed);  // (a handle opened elsewhere is leaked)
    if (frames_ == 0) MPI_File_set_size(file, 0);    // a new series: forget an older file
    const auto base = static_cast<MPI_Offset>(lammps_end_);
    if (rank == 0) problem = detail::write_at(file, base, header.data(), header.size(), path);
    if (problem.empty()) {
      problem = detail::write_at(file, base + static_cast<MPI_Offset>(header.size() + before_me),
                                 text_.data(), text_.size(), path);
    }
    if (!problem.empty()) problem = detail::message("domdec: rank ", rank, ": ", problem);
    MPI_File_close(&file);
    agreed = detail::agree_on_error(comm(), problem);
    if (!agreed.empty()) throw OutputError(agreed);
    lammps_end_ += header.size() + all_bytes;
  }

  void write_vtk(const std::vector<P>& particles, std::int64_t step, double time) {
    const int rank = decomposition_->rank(), size = decomposition_->size();
    std::string problem = write_piece(particles, step, rank);
    if (rank == 0 && problem.empty()) {
      frame_list_.push_back({step, time});
      problem = write_pvtp(step, size);
      if (problem.empty()) problem = write_pvd();
    }
    const std::string agreed = detail::agree_on_error(comm(), problem);
    if (!agreed.empty()) throw OutputError(agreed);
  }

  std::string write_piece(const std::vector<P>& particles, std::int64_t step, int rank) {
    std::size_t n = 0;
    for (const P& p : particles) n += kept(p) ? 1 : 0;
    text_.clear();
    detail::append_text(
        text_,
        detail::message("<?xml version=\"1.0\"?>\n<VTKFile type=\"PolyData\" version=\"0.1\" "
                        "byte_order=\"LittleEndian\" header_type=\"UInt64\">\n<PolyData>\n<Piece "
                        "NumberOfPoints=\"",
                        n, "\" NumberOfVerts=\"", n,
                        "\" NumberOfLines=\"0\" NumberOfStrips=\"0\" "
                        "NumberOfPolys=\"0\">\n<PointData Scalars=\"rank\">\n"
                        "<DataArray type=\"Int64\" Name=\"id\" format=\"ascii\">\n"));
    for (const P& p : particles) {
      if (!kept(p)) continue;
      detail::append_number(text_, id_of(p));
      detail::append_char(text_, '\n');
    }
    detail::append_text(text_, "</DataArray>\n");
    if (velocity_) {
      detail::append_text(text_,
                          "<DataArray type=\"Float64\" Name=\"velocity\" "
                          "NumberOfComponents=\"3\" format=\"ascii\">\n");
      append_vectors(particles, *velocity_);
      detail::append_text(text_, "</DataArray>\n");
    }
    detail::append_text(text_, "<DataArray type=\"Int32\" Name=\"rank\" format=\"ascii\">\n");
    for (std::size_t i = 0; i < n; ++i) {
      detail::append_number(text_, rank);
      detail::append_char(text_, '\n');
    }
    detail::append_text(text_,
                        "</DataArray>\n</PointData>\n<Points>\n<DataArray "
                        "type=\"Float64\" NumberOfComponents=\"3\" format=\"ascii\">\n");
    append_vectors(particles, position_);
    detail::append_text(text_,
                        "</DataArray>\n</Points>\n<Verts>\n<DataArray type=\"Int64\" "
                        "Name=\"connectivity\" format=\"ascii\">\n");
    for (std::size_t i = 0; i < n; ++i) {
      detail::append_number(text_, i);
      detail::append_char(text_, '\n');
    }
    detail::append_text(text_,
                        "</DataArray>\n<DataArray type=\"Int64\" Name=\"offsets\" "
                        "format=\"ascii\">\n");
    for (std::size_t i = 1; i <= n; ++i) {
      detail::append_number(text_, i);
      detail::append_char(text_, '\n');
    }
    detail::append_text(text_, "</DataArray>\n</Verts>\n</Piece>\n</PolyData>\n</VTKFile>\n");
    return write_file(vtk_directory() + "/" + piece_name(step, rank), rank);
  }

  void append_vectors(const std::vector<P>& particles, const Coordinates<P, Dim>& c) {
    for (const P& p : particles) {
      if (!kept(p)) continue;
      const std::array<double, 3> xyz = point(p, c);
      for (std::size_t a = 0; a < 3; ++a) {
        if (a != 0) detail::append_char(text_, ' ');
        detail::append_number(text_, xyz[a]);
      }
      detail::append_char(text_, '\n');
    }
  }

  std::string write_pvtp(std::int64_t step, int size) {
    text_.clear();
    detail::append_text(
        text_, std::string("<?xml version=\"1.0\"?>\n<VTKFile type=\"PPolyData\" version=\"0.1\" "
                           "byte_order=\"LittleEndian\" header_type=\"UInt64\">\n<PPolyData "
                           "GhostLevel=\"0\">\n<PPointData Scalars=\"rank\">\n<PDataArray "
                           "type=\"Int64\" Name=\"id\"/>\n") +
                   (velocity_ ? "<PDataArray type=\"Float64\" Name=\"velocity\" "
                                "NumberOfComponents=\"3\"/>\n"
                              : "") +
                   "<PDataArray type=\"Int32\" Name=\"rank\"/>\n</PPointData>\n<PPoints>\n"
                   "<PDataArray type=\"Float64\" NumberOfComponents=\"3\"/>\n</PPoints>\n");
    for (int r = 0; r < size; ++r)
      detail::append_text(text_, "<Piece Source=\"" + piece_name(step, r) + "\"/>\n");
    detail::append_text(text_, "</PPolyData>\n</VTKFile>\n");
    return write_file(vtk_directory() + "/" + pvtp_name(step), 0);
  }

  std::string write_pvd() {
    text_.clear();
    detail::append_text(text_,
                        "<?xml version=\"1.0\"?>\n<VTKFile type=\"Collection\" "
                        "version=\"0.1\">\n<Collection>\n");
    for (const auto& [step, time] : frame_list_) {
      detail::append_text(text_,
                          detail::message("<DataSet timestep=\"", time, "\" part=\"0\" file=\"vtk/",
                                          pvtp_name(step), "\"/>\n"));
    }
    detail::append_text(text_, "</Collection>\n</VTKFile>\n");
    return write_file(pvd_path(), 0);
  }

  std::string write_file(const std::string& path, int rank) const {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (out) out.write(text_.data(), static_cast<std::streamsize>(text_.size()));
    out.close();
    if (!out) return detail::message("domdec: rank ", rank, " cannot write ", path);
    return {};
  }

  const Decomposition<Dim>* decomposition_;
  std::string directory_;
  Coordinates<P, Dim> position_;
  std::optional<Coordinates<P, Dim>> velocity_;
  SnapshotOptions options_;
  std::function<std::uint64_t(const P&)> id_of_;
  std::function<bool(const P&)> keep_;
  detail::ByteBuffer text_;
  std::vector<std::uint64_t> sizes_;
  std::vector<std::pair<std::int64_t, double>> frame_list_;  // rank 0: the .pvd's frames
  std::uint64_t lammps_end_ = 0;
  std::int64_t frames_ = 0;
};

/// Writes `particles` (this rank's) into one binary file in which particle `id` occupies
/// bytes [id * sizeof(Record), (id + 1) * sizeof(Record)), its record being `to_record(p)`.
/// The file is therefore sorted by id and its bytes do not depend on the number of ranks or
/// on which rank held which particle: two runs can be compared with `cmp`. Precondition: ids
/// are 0 .. total - 1, each on exactly one rank (the Driver's conservation check guarantees
/// uniqueness). `Record` must be trivially copyable without padding bytes (their contents
/// would be arbitrary). Collective over the decomposition's communicator (MPI-IO: each rank
/// writes its own records; a local sort by id, O(n log n)). Throws OutputError on every rank
/// when the file cannot be written or an id is out of range.
template <class Record, class P, int Dim, class ToRecord, class IdOf>
void write_records_by_id(const Decomposition<Dim>& decomposition, const std::string& path,
                         const std::vector<P>& particles, std::uint64_t total, ToRecord&& to_record,
                         IdOf&& id_of) {
  static_assert(std::is_trivially_copyable_v<Record>, "domdec: a Record must be plain data");
  const MPI_Comm comm = MPI_Comm(decomposition.communicator());
  const int rank = decomposition.rank();
  std::vector<std::pair<std::uint64_t, Record>> mine;
  mine.reserve(particles.size());
  std::string problem;
  for (const P& p : particles) {
    const auto id = static_cast<std::uint64_t>(id_of(p));
    if (id >= total && problem.empty()) {
      problem = detail::message("domdec: rank ", rank, ": particle id ", id, " is outside [0, ",
                                total, ") in write_records_by_id of ", path);
    }
    mine.emplace_back(id, to_record(p));
  }
  std::string agreed = detail::agree_on_error(comm, problem);
  if (!agreed.empty()) throw OutputError(agreed);
  std::sort(mine.begin(), mine.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Record> records;
  std::vector<MPI_Aint> displacements;
  records.reserve(mine.size());
  displacements.reserve(mine.size());
  for (const auto& [id, record] : mine) {
    records.push_back(record);
    displacements.push_back(static_cast<MPI_Aint>(id * sizeof(Record)));
  }

  MPI_File file;
  int rc =
      MPI_File_open(comm, path.c_str(), MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &file);
  problem = rc == MPI_SUCCESS ? std::string()
                              : detail::message("domdec: rank ", rank, " cannot open ", path, ": ",
                                                detail::mpi_error_text(rc));
  agreed = detail::agree_on_error(comm, problem);
  if (!agreed.empty()) throw OutputError(agreed);
  MPI_Datatype record_type, file_type;
  detail::mpi_check(MPI_Type_contiguous(static_cast<int>(sizeof(Record)), MPI_BYTE, &record_type),
                    "MPI_Type_contiguous");
  detail::mpi_check(MPI_Type_commit(&record_type), "MPI_Type_commit");
  detail::mpi_check(MPI_Type_create_hindexed_block(static_cast<int>(records.size()), 1,
                                                   displacements.data(), record_type, &file_type),
                    "MPI_Type_create_hindexed_block");
  detail::mpi_check(MPI_Type_commit(&file_type), "MPI_Type_commit");
  rc = MPI_File_set_size(file, static_cast<MPI_Offset>(total * sizeof(Record)));
  if (rc == MPI_SUCCESS) {
    rc = MPI_File_set_view(file, 0, record_type, file_type, "native", MPI_INFO_NULL);
  }
  if (rc == MPI_SUCCESS) {
    rc = MPI_File_write_all(file, records.data(), static_cast<int>(records.size()), record_type,
                            MPI_STATUS_IGNORE);
  }
  problem = rc == MPI_SUCCESS ? std::string()
                              : detail::message("domdec: rank ", rank, " cannot write ", path, ": ",
                                                detail::mpi_error_text(rc));
  MPI_File_close(&file);
  MPI_Type_free(&file_type);
  MPI_Type_free(&record_type);
  agreed = detail::agree_on_error(comm, problem);
  if (!agreed.empty()) throw OutputError(agreed);
}

}  // namespace domdec
