# examples/tutorial/checks/common.cmake — included by every tutorial check. A check is a
# CMake script that CTest runs with `cmake -P`; it launches the lesson under mpiexec itself, so
# it sees the exit status and the whole output (a pass regex sees neither the status nor how
# often a line appears), and then states what the lesson promises.
#
# Set by CTest (see ../CMakeLists.txt): MPIEXEC, NUMPROC_FLAG, LAUNCHER_FLAGS ("|"-separated),
# RANKS, PROGRAM, RUN_TIMEOUT (seconds each run may take before it counts as hung).
cmake_minimum_required(VERSION 3.21)

string(REPLACE "|" ";" _launcher_flags "${LAUNCHER_FLAGS}")
get_filename_component(LESSON "${PROGRAM}" NAME)
math(EXPR LAST_RANK "${RANKS} - 1")

function(fail)
  string(JOIN "" text ${ARGN})
  message(FATAL_ERROR "CHECK FAILED (${LESSON} on ${RANKS} ranks): ${text}")
endfunction()

# Output as a CMake list of lines: ';', '[' and ']' would confuse CMake's lists, so they are
# replaced by <semicolon>, <lb> and <rb>. A trailing newline leaves no empty last line.
function(_to_lines text out)
  string(REPLACE ";" "<semicolon>" text "${text}")
  string(REPLACE "[" "<lb>" text "${text}")
  string(REPLACE "]" "<rb>" text "${text}")
  string(REGEX REPLACE "\n$" "" text "${text}")
  string(REPLACE "\n" ";" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# run_lesson(<name> [RANKS n] [DIRECT] [ARGS arg...]): runs the lesson (under mpiexec with
# RANKS ranks, or as a plain program with DIRECT) and sets in the caller
#   <name>_STATUS  the exit status (a number), or a text when it had to be killed
#   <name>_OUT, <name>_ERR  lists of the stdout and stderr lines (see _to_lines)
#   <name>_SECONDS  the wall time, in whole seconds
function(run_lesson name)
  cmake_parse_arguments(R "DIRECT" "RANKS" "ARGS" ${ARGN})
  if(NOT R_RANKS)
    set(R_RANKS ${RANKS})
  endif()
  if(R_DIRECT)
    set(command ${PROGRAM} ${R_ARGS})
  else()
    set(command ${MPIEXEC} ${NUMPROC_FLAG} ${R_RANKS} ${_launcher_flags} ${PROGRAM} ${R_ARGS})
  endif()
  string(TIMESTAMP start "%s")
  execute_process(COMMAND ${command} RESULT_VARIABLE status OUTPUT_VARIABLE out
                  ERROR_VARIABLE err TIMEOUT ${RUN_TIMEOUT})
  string(TIMESTAMP stop "%s")
  math(EXPR seconds "${stop} - ${start}")
  string(JOIN " " shown ${command})
  message("\$ ${shown}\n${out}${err}--> exit status ${status}, ${seconds} s\n")
  _to_lines("${out}" out_lines)
  _to_lines("${err}" err_lines)
  set(${name}_STATUS "${status}" PARENT_SCOPE)
  set(${name}_OUT "${out_lines}" PARENT_SCOPE)
  set(${name}_ERR "${err_lines}" PARENT_SCOPE)
  set(${name}_SECONDS "${seconds}" PARENT_SCOPE)
endfunction()

function(expect_status name expected)
  if(NOT "${${name}_STATUS}" STREQUAL "${expected}")
    fail("${name}: expected exit status ${expected}, got '${${name}_STATUS}'")
  endif()
endfunction()

# lines_matching(<out> <lines> <regex>): the lines that match.
function(lines_matching out lines regex)
  set(found "")
  foreach(line IN LISTS lines)
    if(line MATCHES "${regex}")
      list(APPEND found "${line}")
    endif()
  endforeach()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

# expect_lines(<lines> <regex> <count>): exactly <count> lines match <regex>.
function(expect_lines lines regex count)
  lines_matching(found "${lines}" "${regex}")
  list(LENGTH found n)
  if(NOT n EQUAL count)
    fail("expected ${count} line(s) matching '${regex}', found ${n}")
  endif()
endfunction()
