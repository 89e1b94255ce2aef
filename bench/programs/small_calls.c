/* small_calls.c - a loop of small calls: a driver calls a small placeable function of another
 * unit hundreds of millions of times.
 *   mix:    step_mix, a xorshift-multiply round (each call depends on the last, as in a hash);
 *   linear: step_linear, x * C + i: a linear recurrence, which a compiler that sees the body
 *           inside the loop can unroll and reassociate so that several calls cost one multiply.
 * Usage: small_calls [mix|linear] [calls]   (defaults mix and 2e8). Prints the result; the time
 * of the loop alone goes to stderr as "compute_s S". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Stored before the second clock reading, so that the compiler cannot move the work after it. */
volatile uint64_t done_result;

uint64_t step_mix(uint64_t x, uint64_t i) {
  for (int k = 0; k < 2; ++k) {
    x ^= x >> 29;
    x = x * 0xbf58476d1ce4e5b9ULL + (i ^ (uint64_t)k);
  }
  return x;
}

uint64_t step_linear(uint64_t x, uint64_t i) {
  for (int k = 0; k < 2; ++k)
    x = x * 6364136223846793005ULL + (i ^ (uint64_t)k);
  return x;
}

uint64_t drive_mix(uint64_t calls, uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t i = 0; i < calls; ++i)
    x = step_mix(x, i);
  return x;
}

uint64_t drive_linear(uint64_t calls, uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t i = 0; i < calls; ++i)
    x = step_linear(x, i);
  return x;
}

int main(int argc, char **argv) {
  int linear = argc > 1 && strcmp(argv[1], "linear") == 0;
  uint64_t calls = argc > 2 ? strtoull(argv[2], NULL, 10) : 200000000ULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t x = linear ? drive_linear(calls, 7) : drive_mix(calls, 7);
  done_result = x;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("small_calls %s: %llu\n", linear ? "linear" : "mix", (unsigned long long)x);
  fprintf(stderr, "compute_s %.6f\n",
          (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
  return 0;
}
