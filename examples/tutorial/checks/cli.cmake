# Every lesson: --help prints the usage once (from rank 0) and exits 0; an unknown argument is
# refused once, clearly, with a non-zero status on every rank.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

run_lesson(help ARGS --help)
expect_status(help 0)
expect_lines("${help_OUT}" "^usage: mpirun -np N ${LESSON} <lb>options<rb>$" 1)
expect_lines("${help_OUT}" "^  --help +print this help and exit$" 1)

run_lesson(bad ARGS --no-such-option)
if(bad_STATUS STREQUAL "0" OR NOT bad_STATUS MATCHES "^[0-9]+$")
  fail("an unknown argument should give a non-zero exit status, got '${bad_STATUS}'")
endif()
expect_lines("${bad_ERR}" "^${LESSON}: error: unknown argument '--no-such-option'$" 1)
