// domdec/detail/format.hpp — building error messages: numbers printed so that two different
// doubles never look the same (17 significant digits).
#pragma once

#include <array>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

namespace domdec::detail {

template <class T>
void append_to(std::ostringstream& out, const T& value) {
  out << value;
}
template <class T, std::size_t N>
void append_to(std::ostringstream& out, const std::array<T, N>& values) {
  out << '(';
  for (std::size_t i = 0; i < N; ++i) {
    if (i != 0) out << ", ";
    append_to(out, values[i]);
  }
  out << ')';
}
template <class T>
void append_to(std::ostringstream& out, const std::vector<T>& values) {
  out << '[';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out << ", ";
    append_to(out, values[i]);
  }
  out << ']';
}

/// Concatenates the arguments into one string, doubles at full precision.
template <class... Parts>
std::string message(const Parts&... parts) {
  std::ostringstream out;
  out.precision(17);
  (append_to(out, parts), ...);
  return out.str();
}

}  // namespace domdec::detail
