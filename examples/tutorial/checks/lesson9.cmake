# Lesson 9: both ways end with the same particles; the allgather way receives the whole system
# on every other rank every step, domdec far less; the final state is the same with 1 rank.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

set(args --particles 20000 --steps 50)
run_lesson(run ARGS ${args})
expect_status(run 0)
expect_lines("${run_OUT}" "^both ways end with the same particle set: yes \\(20000 particles," 1)

# allgather: every rank receives the particles of all the others: (P - 1) * N * 24 bytes.
math(EXPR allgather_bytes "(${RANKS} - 1) * 20000 * 24")
expect_lines("${run_OUT}" "^  allgather everything: +${allgather_bytes} bytes received" 1)
lines_matching(line "${run_OUT}" "^  domdec Exchanger: +[0-9]+ bytes received")
string(REGEX MATCH "([0-9]+) bytes" _ "${line}")
if(NOT CMAKE_MATCH_1 GREATER 0 OR NOT CMAKE_MATCH_1 LESS allgather_bytes)
  fail("domdec should move some bytes, and fewer than the allgather: ${line}")
endif()

# Results do not depend on the number of ranks.
lines_matching(digest "${run_OUT}" "^final state digest: ")
run_lesson(one RANKS 1 ARGS ${args})
expect_status(one 0)
lines_matching(digest_one "${one_OUT}" "^final state digest: ")
if(digest STREQUAL "" OR NOT digest STREQUAL digest_one)
  fail("final state on ${RANKS} ranks '${digest}' differs from 1 rank '${digest_one}'")
endif()
