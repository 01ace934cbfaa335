# Lesson 1: under mpirun every rank reports itself exactly once, with the right number of
# ranks; run directly, the program is one process, rank 0 of 1.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

run_lesson(mpirun)
expect_status(mpirun 0)
expect_lines("${mpirun_OUT}" "^Hello from rank " ${RANKS})
foreach(r RANGE ${LAST_RANK})
  expect_lines("${mpirun_OUT}" "^Hello from rank ${r} of ${RANKS} \\(process [0-9]+ on .+\\)$" 1)
endforeach()

run_lesson(direct DIRECT)
expect_status(direct 0)
expect_lines("${direct_OUT}" "^Hello from rank " 1)
expect_lines("${direct_OUT}" "^Hello from rank 0 of 1 " 1)
