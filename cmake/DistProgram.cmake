# dist_add_program(NAME <name> SOURCES <c files...> [NATIVE] [OUTPUT_DIR <dir>])
#
# Builds <name>.bc from C sources with scripts/dist-cc (the flags distnode needs), and with
# NATIVE also <name>.native with `clang-19 -O2`, the baseline tests compare distnode's runs to.
# Defines target <name>_program that builds both.
include_guard(GLOBAL)

function(dist_add_program)
  cmake_parse_arguments(P "NATIVE" "NAME;OUTPUT_DIR" "SOURCES" ${ARGN})
  if(NOT P_OUTPUT_DIR)
    set(P_OUTPUT_DIR ${CMAKE_CURRENT_BINARY_DIR})
  endif()
  set(sources)
  foreach(s ${P_SOURCES})
    list(APPEND sources ${CMAKE_CURRENT_SOURCE_DIR}/${s})
  endforeach()
  set(bc ${P_OUTPUT_DIR}/${P_NAME}.bc)
  add_custom_command(
    OUTPUT ${bc}
    COMMAND ${CMAKE_COMMAND} -E env DIST_CLANG=${DIST_CLANG} DIST_LLVM_LINK=${DIST_LLVM_LINK}
            ${DIST_CC} ${sources} -o ${bc}
    DEPENDS ${sources} ${DIST_CC} ${CMAKE_SOURCE_DIR}/include/dist.h
    COMMENT "dist-cc ${P_NAME}.bc")
  set(outputs ${bc})
  if(P_NATIVE)
    set(native ${P_OUTPUT_DIR}/${P_NAME}.native)
    add_custom_command(
      OUTPUT ${native}
      COMMAND ${DIST_CLANG} -O2 -I${CMAKE_SOURCE_DIR}/include ${sources} -lm -lpthread -o ${native}
      DEPENDS ${sources} ${CMAKE_SOURCE_DIR}/include/dist.h
      COMMENT "clang-19 -O2 ${P_NAME}.native")
    list(APPEND outputs ${native})
  endif()
  add_custom_target(${P_NAME}_program ALL DEPENDS ${outputs})
endfunction()
