# Finds LLVM 19 and defines the imported target `dist_llvm` that carries its include paths,
# definitions and the shared libLLVM. Only targets that need LLVM link it, so LLVM headers stay
# out of everything else.
include_guard(GLOBAL)
list(APPEND CMAKE_PREFIX_PATH /usr/lib/llvm-19)
# `find_package(LLVM 19)` is rejected by LLVMConfigVersion; 19.1 is accepted.
find_package(LLVM 19.1 REQUIRED CONFIG)
message(STATUS "distnode: LLVM ${LLVM_PACKAGE_VERSION} from ${LLVM_DIR}")

add_library(dist_llvm INTERFACE)
target_include_directories(dist_llvm SYSTEM INTERFACE ${LLVM_INCLUDE_DIRS})
separate_arguments(_dist_llvm_defs NATIVE_COMMAND "${LLVM_DEFINITIONS}")
target_compile_definitions(dist_llvm INTERFACE ${_dist_llvm_defs})
# Debian's LLVM is built with RTTI and without exceptions; our code may use exceptions, but none
# may cross an LLVM or JIT'd frame.
target_link_libraries(dist_llvm INTERFACE LLVM)
