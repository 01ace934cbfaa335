# domdec_add_mpi_test: register one program as several CTest tests, one per rank count,
# named <name>.np<N>, each under mpiexec with a timeout so a deadlock fails instead of hanging.
#
#   domdec_add_mpi_test(NAME migrate COMMAND $<TARGET_FILE:domdec_tests> "[migrate]"
#                       RANKS 1 2 3 4 TIMEOUT 120 [MPIEXEC_ARGS --mca btl tcp,self]
#                       [LABELS mpi] [PASS_REGULAR_EXPRESSION re] [WILL_FAIL])
#
# With Open MPI, --oversubscribe is added (these machines have fewer cores than the rank
# counts we test) and OMPI_ALLOW_RUN_AS_ROOT* are set in the test environment (CI runs as
# root; the variables change nothing for other users).

include_guard(GLOBAL)

if(NOT DEFINED DOMDEC_MPI_IS_OPENMPI)
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version
                  OUTPUT_VARIABLE _domdec_mpiexec_version ERROR_QUIET)
  if(_domdec_mpiexec_version MATCHES "Open MPI|OpenRTE")
    set(DOMDEC_MPI_IS_OPENMPI ON CACHE INTERNAL "mpiexec is Open MPI's")
  else()
    set(DOMDEC_MPI_IS_OPENMPI OFF CACHE INTERNAL "mpiexec is Open MPI's")
  endif()
endif()

function(domdec_add_mpi_test)
  cmake_parse_arguments(T "WILL_FAIL" "NAME;TIMEOUT;PASS_REGULAR_EXPRESSION;FAIL_REGULAR_EXPRESSION"
                        "COMMAND;RANKS;MPIEXEC_ARGS;LABELS;ENVIRONMENT" ${ARGN})
  if(NOT T_NAME OR NOT T_COMMAND)
    message(FATAL_ERROR "domdec_add_mpi_test needs NAME and COMMAND")
  endif()
  if(NOT T_RANKS)
    set(T_RANKS 1 2 3 4)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set(launcher_flags ${MPIEXEC_PREFLAGS})
  set(environment ${T_ENVIRONMENT})
  if(DOMDEC_MPI_IS_OPENMPI)
    list(APPEND launcher_flags --oversubscribe)
    list(APPEND environment OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
  endif()
  list(POP_FRONT T_COMMAND program)
  set(program_args ${T_COMMAND})
  foreach(n IN LISTS T_RANKS)
    set(test_name ${T_NAME}.np${n})
    add_test(NAME ${test_name}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${n} ${launcher_flags}
                     ${T_MPIEXEC_ARGS} ${program} ${MPIEXEC_POSTFLAGS} ${program_args})
    set_tests_properties(${test_name} PROPERTIES TIMEOUT ${T_TIMEOUT}
                         PROCESSORS 2 LABELS "mpi;${T_LABELS}")
    if(environment)
      set_tests_properties(${test_name} PROPERTIES ENVIRONMENT "${environment}")
    endif()
    if(T_PASS_REGULAR_EXPRESSION)
      set_tests_properties(${test_name} PROPERTIES
                           PASS_REGULAR_EXPRESSION "${T_PASS_REGULAR_EXPRESSION}")
    endif()
    if(T_FAIL_REGULAR_EXPRESSION)
      set_tests_properties(${test_name} PROPERTIES
                           FAIL_REGULAR_EXPRESSION "${T_FAIL_REGULAR_EXPRESSION}")
    endif()
    if(T_WILL_FAIL)
      set_tests_properties(${test_name} PROPERTIES WILL_FAIL TRUE)
    endif()
  endforeach()
endfunction()
