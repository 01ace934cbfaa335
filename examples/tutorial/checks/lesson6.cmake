# Lesson 6, by default: both deadlock-free versions finish and every rank receives its left
# neighbour's array intact.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

run_lesson(run)
expect_status(run 0)
foreach(r RANGE ${LAST_RANK})
  math(EXPR left "(${r} + ${RANKS} - 1) % ${RANKS}")
  foreach(method "sendrecv" "isend/irecv \\+ wait_all")
    expect_lines("${run_OUT}"
                 "^${method}: rank ${r} received 1000000 doubles from rank ${left} \\(correct\\)$" 1)
  endforeach()
endforeach()
expect_lines("${run_OUT}" "^both fixes finished, every rank received its left neighbour's array$" 1)
