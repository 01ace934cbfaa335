# Lesson 4: the token visits every rank in ring order and returns to rank 0; every rank
# receives exactly the work items rank 0 sent it, then the stop message (tags told them apart).
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

run_lesson(run ARGS --items 4)
expect_status(run 0)

set(path "0")
foreach(r RANGE 1 ${LAST_RANK})
  string(APPEND path " -> ${r}")
endforeach()
expect_lines("${run_OUT}" "^the token went round the ring: ${path} -> 0$" 1)

math(EXPR others "${RANKS} - 1")
expect_lines("${run_OUT}" "^rank 0: sent 4 work items and a stop to each of ${others} ranks$" 1)
foreach(r RANGE 1 ${LAST_RANK})
  math(EXPR sum "4 * 100 * ${r} + 0 + 1 + 2 + 3")
  expect_lines("${run_OUT}"
               "^rank ${r}: received 4 work items \\(sum ${sum}\\), then the stop message$" 1)
endforeach()
