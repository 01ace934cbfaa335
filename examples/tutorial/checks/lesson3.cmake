# Lesson 3: every rank's unordered lines all arrive; the ordered helper's lines arrive once
# per rank and in rank order.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

run_lesson(run ARGS --rounds 3)
expect_status(run 0)
foreach(r RANGE ${LAST_RANK})
  foreach(piece 1 2 3)
    expect_lines("${run_OUT}" "^as ready: rank ${r} finished piece ${piece} " 1)
  endforeach()
endforeach()

lines_matching(ordered "${run_OUT}" "^in order: ")
list(LENGTH ordered n)
if(NOT n EQUAL RANKS)
  fail("expected ${RANKS} ordered lines, found ${n}")
endif()
foreach(r RANGE ${LAST_RANK})
  list(GET ordered ${r} line)
  if(NOT line MATCHES "^in order: rank ${r} finished 3 pieces in [0-9]+ ms$")
    fail("ordered line ${r} should come from rank ${r}: '${line}'")
  endif()
endforeach()
