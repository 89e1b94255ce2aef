/* fib.c - recursive Fibonacci: every call is a placeable function calling itself.
 * Usage: fib [n] [repeats]   (defaults 38 and 5). Prints the result; the time of the
 * computation alone (after start-up) goes to stderr as "compute_s S". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Stored before the second clock reading, so that the compiler cannot move the work after it. */
volatile uint64_t done_result;

long fib(long n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 38;
  int repeats = argc > 2 ? atoi(argv[2]) : 5;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long sum = 0;
  for (int r = 0; r < repeats; ++r)
    sum += fib(n - (r & 1));
  done_result = (uint64_t)sum;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("fib: %ld\n", sum);
  fprintf(stderr, "compute_s %.6f\n",
          (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
  return 0;
}
