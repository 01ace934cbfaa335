# Lesson 8 (small sizes, to stay fast): a row per size in both tables, with times and a ratio,
# and every transfer delivered exactly the particles sent.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

run_lesson(run ARGS --min 1000 --max 1e4)
expect_status(run 0)
set(number "[0-9]+\\.[0-9]+")
foreach(n 1000 10000)
  math(EXPR bytes "${n} * 24")
  expect_lines("${run_OUT}" "^ +${n} +${bytes} +${number} +${number} +${number}$" 2)
endforeach()
expect_lines("${run_OUT}" "^part 1: " 1)
expect_lines("${run_OUT}" "^part 2: " 1)
expect_lines("${run_OUT}" "^every transfer delivered exactly the particles sent$" 1)
