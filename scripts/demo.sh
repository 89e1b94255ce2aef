#!/usr/bin/env bash
# The demo: installs, builds, then shows distnode on the example programs: the analysis of
# which functions may move and why, and the programs running under the JIT with the same
# output as their native builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build >/dev/null
distnode=build/bin/distnode
ex=build/examples

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "distnode --analyze $ex/phases.bc   (what may run elsewhere, and why)"
"$distnode" --analyze "$ex/phases.bc"

step "distnode $ex/phases.bc -- 2   vs   the native build"
"$distnode" "$ex/phases.bc" -- 2 | tee /tmp/distnode-demo.jit
"$ex/phases.native" 2 >/tmp/distnode-demo.native
cmp -s /tmp/distnode-demo.jit /tmp/distnode-demo.native && echo "(identical to the native run)"

step "distnode $ex/kvstore.bc   (exit code passes through)"
set +e
"$distnode" "$ex/kvstore.bc"
echo "exit code: $?"
set -e

echo
echo "Running one program on several nodes (distnode --local N) arrives with remote calls;"
echo "see README.md, \"Status\"."
