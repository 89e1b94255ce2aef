#!/usr/bin/env bash
# deep_recursion.sh BUILD_DIR - how deep recursion through remote calls goes.
#
# tests/fixtures/deep.c: ping and pong call each other; under `--local 2 --placement scatter`
# they live on different nodes, so every level is a remote call nested in the wait for the
# level above, on both nodes. Finds (by bisection, to within 1,000 levels, up to CAP) the
# deepest run whose output matches the native program, for the native build, two nodes,
# --loopback, and two nodes with DISTNODE_STACK_BUDGET_MB=0 (each thread's own 8 MiB stack
# only), and times 60,000 levels on two nodes.
set -euo pipefail
build=${1:-build}
distnode=$build/bin/distnode
deep=$build/tests/fixtures/fixture_deep
cap=${CAP:-300000}

matches() { # levels command...
  local levels=$1; shift
  local want got
  want=$("$deep.native" "$levels")
  got=$(timeout 600 "$@" "$deep.bc" -- "$levels" 2>/dev/null) || return 1
  [ "$got" = "$want" ]
}

deepest() { # command...
  local lo=0 hi=$cap mid
  if matches "$cap" "$@"; then echo "≥ $cap"; return; fi
  while [ $((hi - lo)) -gt 1000 ]; do
    mid=$(((lo + hi) / 2))
    if matches "$mid" "$@"; then lo=$mid; else hi=$mid; fi
  done
  echo "$lo"
}

native_max() {
  local lo=0 hi=$cap mid
  if "$deep.native" "$cap" >/dev/null 2>&1; then echo "≥ $cap"; return; fi
  while [ $((hi - lo)) -gt 1000 ]; do
    mid=$(((lo + hi) / 2))
    if "$deep.native" "$mid" >/dev/null 2>&1; then lo=$mid; else hi=$mid; fi
  done
  echo "$lo"
}

echo "native:                         $(native_max)"
echo "two nodes (scatter):            $(deepest "$distnode" --local 2 --placement scatter)"
echo "two nodes, own stacks only:     $(deepest env DISTNODE_STACK_BUDGET_MB=0 "$distnode" --local 2 --placement scatter)"
echo "--loopback:                     $(deepest "$distnode" --loopback)"
start=$(date +%s.%N)
matches 60000 "$distnode" --local 2 --placement scatter
end=$(date +%s.%N)
echo "60,000 levels on two nodes:     $(echo "$end - $start" | bc) s"
