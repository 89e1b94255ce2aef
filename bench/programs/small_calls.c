/* small_calls.c - a loop of small calls: `drive` calls `step`, two placeable functions of
 * different units, hundreds of millions of times. Usage: small_calls [calls] (default 2e8).
 * Prints the result; the time of the loop alone goes to stderr as "compute_s S". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

uint64_t step(uint64_t x, uint64_t i) {
  for (int k = 0; k < 2; ++k)
    x = x * 6364136223846793005ULL + (i ^ (uint64_t)k);
  return x;
}

uint64_t drive(uint64_t calls, uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t i = 0; i < calls; ++i)
    x = step(x, i);
  return x;
}

int main(int argc, char **argv) {
  uint64_t calls = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000000ULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t x = drive(calls, 7);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("small_calls: %llu\n", (unsigned long long)x);
  fprintf(stderr, "compute_s %.6f\n",
          (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
  return 0;
}
