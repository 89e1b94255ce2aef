#!/usr/bin/env bash
# The test command: installs what the build needs (Debian packages), builds everything with
# CMake + Ninja, and runs every test suite through CTest. Safe to run again at any time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 300
