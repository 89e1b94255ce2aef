/* phases.c - a workload whose hot call edges change between phases.
 *
 * Phase A is chatty: stage_a calls filter_a hundreds of thousands of times with 8-byte
 * arguments. Phase B is bulky: stage_b hands 64 KiB buffers to reduce_b a few hundred times.
 * The phases alternate, so a placement that is right for one is wrong for the other: this is
 * the program the adaptation demo runs. Both phases feed a histogram kept in mutable globals;
 * the functions that touch it form one group that moves as a unit.
 *
 * Usage: phases [rounds] [calls]   (defaults 4 and 200000; each round runs phase A, with
 *        `calls` calls of filter_a, then phase B, with calls/1000 chunks for reduce_b)
 */
#include <dist.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* rand_r only touches the seed it is given: safe to call on any node. */
DIST_PURE_EXTERN int rand_r(unsigned int *seed);

enum { kBins = 64, kChunk = 8192 };

static uint64_t histogram[kBins];
static uint64_t samples;

void hist_add(uint64_t value, uint64_t weight) {
  for (uint64_t w = 0; w < weight; ++w) {
    histogram[(value + w * 7) % kBins] += 1;
    samples++;
  }
}

uint64_t hist_digest(void) {
  uint64_t h = samples;
  for (int i = 0; i < kBins; ++i)
    h = h * 31 + histogram[i];
  return h;
}

/* Phase A's callee: small work per call. */
uint64_t filter_a(uint64_t x, uint32_t salt) {
  for (int i = 0; i < 8; ++i)
    x = (x ^ salt) * 0x9e3779b97f4a7c15ULL + (x >> 29);
  return x;
}

uint64_t stage_a(unsigned int seed, uint32_t calls) {
  uint64_t acc = 0;
  for (uint32_t i = 0; i < calls; ++i)
    acc += filter_a((uint64_t)rand_r(&seed), i);
  hist_add(acc, 16);
  return acc;
}

/* Phase B's callee: large arguments, moderate work. */
DIST_IN(data, n) double reduce_b(const double *data, size_t n) {
  double s = 0.0, c = 0.0; /* Kahan summation of squares */
  for (size_t i = 0; i < n; ++i) {
    double y = data[i] * data[i] - c;
    double t = s + y;
    c = (t - s) - y;
    s = t;
  }
  return s;
}

double stage_b(unsigned int seed, uint32_t chunks) {
  static double buffer[kChunk];
  double total = 0.0;
  for (uint32_t k = 0; k < chunks; ++k) {
    for (int i = 0; i < kChunk; ++i)
      buffer[i] = (double)(rand_r(&seed) % 2001 - 1000) / 1000.0;
    total += reduce_b(buffer, kChunk);
  }
  hist_add((uint64_t)total, 4);
  return total;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 4;
  uint32_t calls = argc > 2 ? (uint32_t)atoi(argv[2]) : 200000;
  for (int r = 0; r < rounds; ++r) {
    uint64_t a = stage_a(1000u + (unsigned)r, calls);
    printf("round %d phase A: %016llx\n", r, (unsigned long long)a);
    double b = stage_b(2000u + (unsigned)r, calls / 1000 + 1);
    printf("round %d phase B: %.6f\n", r, b);
  }
  printf("histogram digest %016llx\n", (unsigned long long)hist_digest());
  return 0;
}
