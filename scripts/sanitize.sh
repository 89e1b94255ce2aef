#!/usr/bin/env bash
# Builds everything with AddressSanitizer and UndefinedBehaviorSanitizer (g++) into
# build-asan/ and runs the whole test suite there. Not part of CI (about 25 minutes on 2 cores).
#   bash scripts/sanitize.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDISTNODE_BUILD_BENCH=OFF \
  -DDISTNODE_BUILD_FUZZ=OFF -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-asan
# Leaks are not checked: the ZeroMQ context and the placement tables live as long as the
# process on purpose. SEGV is left to the kernel: a test program that crashes on purpose must
# die by the signal, as it does natively.
ASAN_OPTIONS=detect_leaks=0:handle_segv=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$(nproc)" --timeout 600
