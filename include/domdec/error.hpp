// domdec/error.hpp — the exceptions domdec throws, so callers can tell set-up mistakes from
// bad particles from MPI failures.
#pragma once

#include <stdexcept>
#include <string>

namespace domdec {

/// Base of every exception domdec throws. The message always starts with "domdec:" and names
/// what was wrong (which rank, which particle, which value).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bad or inconsistent configuration: a box with lower >= upper, cuts that are not monotone, a
/// particle type whose MPI datatype does not match its memory layout, ranks that disagree on
/// the set-up. When thrown by a collective constructor it is thrown on every rank.
class SetupError : public Error {
 public:
  using Error::Error;
};

/// A particle that cannot be placed: a non-finite position or one outside the box where the
/// boundary rule does not bring it back. When thrown by a collective call (`migrate`) it is
/// thrown on every rank with the same message, so no rank is left waiting.
class ParticleError : public Error {
 public:
  using Error::Error;
};

/// An MPI call failed; the message carries MPI's own error string.
class CommunicationError : public Error {
 public:
  using Error::Error;
};

}  // namespace domdec
