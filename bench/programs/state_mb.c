/* state_mb.c - a unit with 1 MiB of state (a table of counters) called in a loop until a stop
 * file exists, for timing moves of a stateful unit. Every call is checked against a copy of
 * the table kept on the calling node; the program prints how many calls disagreed (0 on a
 * correct run, whatever the number of calls and moves).
 *
 * Usage: state_mb STOP_FILE */
#include <dist.h>

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

enum { kSlots = 131072 }; /* 131072 × 8 B = 1 MiB */
static uint64_t table[kSlots];

uint64_t touch(uint64_t i) {
  uint64_t s = 0;
  for (int k = 0; k < 64; ++k) {
    uint64_t slot = (i * 64 + (uint64_t)k) % kSlots;
    table[slot] += i + (uint64_t)k;
    s += table[slot];
  }
  return s;
}

/* The same on a copy that stays on the calling node. */
static uint64_t shadow[kSlots];
DIST_LOCAL uint64_t shadow_touch(uint64_t i) {
  uint64_t s = 0;
  for (int k = 0; k < 64; ++k) {
    uint64_t slot = (i * 64 + (uint64_t)k) % kSlots;
    shadow[slot] += i + (uint64_t)k;
    s += shadow[slot];
  }
  return s;
}

int main(int argc, char **argv) {
  if (argc < 2)
    return 2;
  uint64_t i = 0, wrong = 0;
  while (access(argv[1], F_OK) != 0)
    for (int k = 0; k < 1000; ++k, ++i)
      wrong += touch(i) != shadow_touch(i);
  printf("calls that disagreed: %llu\n", (unsigned long long)wrong);
  return wrong != 0;
}
