# Lesson 2: each rank draws from N(rank, 1) and reports once; its mean is near its rank; the
# streams differ between ranks; the same seed gives the same output, another seed another.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

run_lesson(first ARGS --seed 7 --draws 20000)
run_lesson(again ARGS --seed 7 --draws 20000)
run_lesson(other ARGS --seed 8 --draws 20000)
expect_status(first 0)
expect_status(again 0)
expect_status(other 0)

set(deviations "")
foreach(r RANGE ${LAST_RANK})
  set(pattern "^rank ${r}: seed \\(7, ${r}\\), mean of 20000 draws from N\\(${r}, 1\\) = ")
  expect_lines("${first_OUT}" "${pattern}" 1)
  lines_matching(line "${first_OUT}" "${pattern}")
  # 20000 draws: the standard error of the mean is 0.007; 0.05 is seven of them.
  string(REGEX MATCH "= (-?[0-9.]+), first draw - rank = ([-+][0-9.]+)$" _ "${line}")
  set(mean "${CMAKE_MATCH_1}")
  list(APPEND deviations "${CMAKE_MATCH_2}")
  math(EXPR low "${r} * 1000 - 50")
  math(EXPR high "${r} * 1000 + 50")
  if(mean STREQUAL "" OR NOT (mean GREATER_EQUAL "${low}e-3" AND mean LESS_EQUAL "${high}e-3"))
    fail("rank ${r}'s mean '${mean}' is not within 0.05 of ${r}: ${line}")
  endif()
  lines_matching(line_other "${other_OUT}" "^rank ${r}: seed \\(8, ${r}\\)")
  string(REGEX MATCH "= (-?[0-9.]+)," _ "${line_other}")
  if(CMAKE_MATCH_1 STREQUAL mean)
    fail("rank ${r} got the same mean with seed 8 as with seed 7")
  endif()
endforeach()

# Reproducible: the same lines (in whatever order they arrived).
foreach(run first again)
  lines_matching(${run}_reports "${${run}_OUT}" "^rank ")
  list(SORT ${run}_reports)
endforeach()
if(NOT first_reports STREQUAL again_reports)
  fail("the same seed gave different numbers:\n${first_reports}\n${again_reports}")
endif()

# Different streams per rank: no two ranks got the same first deviation.
list(REMOVE_DUPLICATES deviations)
list(LENGTH deviations distinct)
if(NOT distinct EQUAL RANKS)
  fail("two ranks drew the same first number (relative to their mean): ${deviations}")
endif()
