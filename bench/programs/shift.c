/* shift.c - phases that want different placements, for the phase-change benchmark:
 *   phase X: two threads each call their own CPU-heavy function (`heavy_a`, `heavy_b`) in
 *            slices of ~13 ms: on two one-core nodes, one of them belongs on each node;
 *   phase Y: `chatty` calls `heavy_a` and `heavy_b` in turn with tiny work, 30,000,000 times:
 *            both belong with `chatty` (wherever that is), whichever of them phase X moved.
 * Prints a checksum that does not depend on where the functions ran.
 *
 * Usage: shift PHASES [X|Y|XY] [LENGTH]   (XY alternates, starting with X; default XY; each
 * phase does LENGTH times the default work, default 1: about 2.5 s for X, 1 s for Y) */
#include <dist.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

DIST_LOCAL static uint64_t grind(uint64_t x, uint32_t rounds) {
  for (uint32_t i = 0; i < rounds; ++i)
    x = (x ^ (x >> 31)) * 0x9e3779b97f4a7c15ULL + i;
  return x;
}

uint64_t heavy_a(uint64_t x, uint32_t rounds) { return grind(x, rounds); }
uint64_t heavy_b(uint64_t x, uint32_t rounds) { return grind(x + 1, rounds); }

uint64_t chatty(uint64_t x, uint32_t calls) {
  for (uint32_t i = 0; i < calls; ++i)
    x = (i & 1) ? heavy_b(x + i, 20) : heavy_a(x + i, 20);
  return x;
}

enum { kRounds = 6000000, kSlices = 200 }; /* phase X: ~2.6 s per thread on this machine */

static int length = 1;

static void *run_a(void *arg) {
  uint64_t *x = arg;
  for (int i = 0; i < kSlices * length; ++i)
    *x = heavy_a(*x, kRounds);
  return 0;
}

static void *run_b(void *arg) {
  uint64_t *x = arg;
  for (int i = 0; i < kSlices * length; ++i)
    *x = heavy_b(*x, kRounds);
  return 0;
}

int main(int argc, char **argv) {
  int phases = argc > 1 ? atoi(argv[1]) : 4;
  const char *which = argc > 2 ? argv[2] : "XY";
  length = argc > 3 ? atoi(argv[3]) : 1;
  if (length < 1)
    length = 1;
  uint64_t a = 1, b = 2, c = 3;
  for (int p = 0; p < phases; ++p) {
    char kind = strcmp(which, "XY") == 0 ? (p % 2 == 0 ? 'X' : 'Y') : which[0];
    if (kind == 'X') {
      pthread_t ta, tb;
      pthread_create(&ta, 0, run_a, &a);
      pthread_create(&tb, 0, run_b, &b);
      pthread_join(ta, 0);
      pthread_join(tb, 0);
    } else {
      for (int k = 0; k < 20 * length; ++k)
        c = chatty(c, 1500000);
    }
  }
  printf("%016llx %016llx %016llx\n", (unsigned long long)a, (unsigned long long)b,
         (unsigned long long)c);
  return 0;
}
