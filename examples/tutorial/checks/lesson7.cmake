# Lesson 7: every kind of value arrives intact on every rank; rank 0 shows what came from its
# left neighbour and how it travelled; domdec picks typed and serialized from the type.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

run_lesson(run)
expect_status(run 0)
set(l ${LAST_RANK})  # rank 0's left neighbour
math(EXPR int_value "100 + ${l}")
expect_lines("${run_OUT}" "^int +typed +${int_value}$" 1)
expect_lines("${run_OUT}" "^double +typed +${l}\\.5$" 1)
expect_lines("${run_OUT}" "^std::string +serialized +\"greetings from rank ${l}\"$" 1)
expect_lines("${run_OUT}" "^std::vector<double> +typed elements +{${l}, ${l}\\.5, [0-9]+}$" 1)
expect_lines("${run_OUT}" "^std::map<std::string, int> +serialized +{rank: ${l}, steps: 10}$" 1)
expect_lines("${run_OUT}" "^Measurement \\(serialize\\) +serialized +{label \"probe ${l}\", " 1)
expect_lines("${run_OUT}" "^Particle \\(MPI datatype\\) +typed +{id ${l}, " 1)
expect_lines("${run_OUT}"
             "^${RANKS} of ${RANKS} ranks received exactly what their left neighbour sent \\(7 kinds each\\)$" 1)
expect_lines("${run_OUT}" "^domdec::Exchanger<Particle, 1> moves particles typed$" 1)
expect_lines("${run_OUT}" "^domdec::Exchanger<LabelledParticle, 1> moves particles serialized$" 1)
