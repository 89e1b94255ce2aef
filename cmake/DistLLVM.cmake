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

# LLVM's headers and definitions without a library: for code that uses only LLVMSupport
# (llvm::Error, llvm::Expected) and is linked into both distnode (shared libLLVM) and small
# clients that must not load libLLVM.
add_library(dist_llvm_headers INTERFACE)
target_include_directories(dist_llvm_headers SYSTEM INTERFACE ${LLVM_INCLUDE_DIRS})
target_compile_definitions(dist_llvm_headers INTERFACE ${_dist_llvm_defs})

# LLVMSupport linked statically, for such clients (never together with `dist_llvm`, which
# would bring a second copy of it).
add_library(dist_llvm_support INTERFACE)
target_link_libraries(dist_llvm_support INTERFACE dist_llvm_headers
                      ${LLVM_LIBRARY_DIR}/libLLVMSupport.a ${LLVM_LIBRARY_DIR}/libLLVMDemangle.a
                      rt dl m z zstd pthread)
