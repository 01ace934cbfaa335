# Lesson 6 with --deadlock: the naive send-then-receive ring locks up, the program notices
# within its own timeout, says so clearly and exits with status 3 (it never hangs).
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

run_lesson(run ARGS --deadlock --timeout 2)
expect_status(run 3)
expect_lines("${run_ERR}" "^DEADLOCK: every rank sent before receiving" 1)
foreach(r RANGE ${LAST_RANK})
  math(EXPR right "(${r} + 1) % ${RANKS}")
  expect_lines("${run_OUT}"
               "^rank ${r}: still blocked after 2 s in its send of 8000000 bytes to rank ${right}," 1)
endforeach()
if(run_SECONDS GREATER 20)
  fail("the watchdog should end the run soon after 2 s, it took ${run_SECONDS} s")
endif()
