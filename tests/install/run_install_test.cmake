# Installs domdec from BUILD_DIR into a fresh prefix, then configures, builds and runs the
# downstream project against that prefix. Run by CTest as `cmake -P`.
foreach(var BUILD_DIR SOURCE_DIR WORK_DIR MPIEXEC NUMPROC_FLAG)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_install_test.cmake needs -D${var}=...")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " shown "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${shown}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
if(NOT EXISTS ${prefix}/include/domdec/domdec.hpp)
  message(FATAL_ERROR "the headers were not installed into ${prefix}/include")
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build -DCMAKE_PREFIX_PATH=${prefix}
    -DEXPECTED_PREFIX=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${MPIEXEC} ${NUMPROC_FLAG} 2 ${MPIEXEC_FLAGS} ${WORK_DIR}/build/downstream)
message(STATUS "install test: the downstream project built and ran against ${prefix}")
