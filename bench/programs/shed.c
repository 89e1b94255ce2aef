/* shed.c - two program threads, each calling its own CPU-heavy function (`heavy_a`, `heavy_b`)
 * in slices of about 10 ms, for the load-shedding benchmark: on two one-core nodes, the best
 * placement runs one of them on each node. Prints a checksum that does not depend on where the
 * functions ran.
 *
 * Usage: shed [slices per thread]   (default 300) */
#include <dist.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs on its caller's node: the work belongs to heavy_a or heavy_b, wherever they run. */
DIST_LOCAL static uint64_t grind(uint64_t x, uint32_t rounds) {
  for (uint32_t i = 0; i < rounds; ++i)
    x = (x ^ (x >> 31)) * 0x9e3779b97f4a7c15ULL + i;
  return x;
}

uint64_t heavy_a(uint64_t x, uint32_t rounds) { return grind(x, rounds); }
uint64_t heavy_b(uint64_t x, uint32_t rounds) { return grind(x + 1, rounds); }

static long slices = 300;
static uint64_t results[2];
enum { kRounds = 6000000 }; /* about 10 ms of CPU per call on this machine */

static void *run_a(void *arg) {
  (void)arg;
  uint64_t x = 1;
  for (long i = 0; i < slices; ++i)
    x = heavy_a(x, kRounds);
  results[0] = x;
  return 0;
}

static void *run_b(void *arg) {
  (void)arg;
  uint64_t x = 2;
  for (long i = 0; i < slices; ++i)
    x = heavy_b(x, kRounds);
  results[1] = x;
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1)
    slices = atol(argv[1]);
  pthread_t a, b;
  pthread_create(&a, 0, run_a, 0);
  pthread_create(&b, 0, run_b, 0);
  pthread_join(a, 0);
  pthread_join(b, 0);
  printf("%016llx %016llx\n", (unsigned long long)results[0], (unsigned long long)results[1]);
  return 0;
}
