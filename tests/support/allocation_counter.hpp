// tests/support/allocation_counter.hpp — how many times operator new was called in this test
// program, for tests that prove a loop allocates nothing (allocation_counter.cpp replaces the
// global operator new with a counting one that forwards to malloc).
#pragma once

#include <cstddef>

namespace domdec_test {

/// Calls of operator new (any thread) since the program started.
std::size_t allocations() noexcept;

}  // namespace domdec_test
