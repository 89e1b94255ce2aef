/* bench_calls.c - the functions the benchmarks call from outside, through the JIT. */
#include <dist.h>

#include <stdint.h>

/* The same body twice: once placeable (called through its stub), once a plain local function
 * that the optimizer may not inline (called directly). */
#define BODY                                                                                       \
  for (int i = 0; i < 2; ++i)                                                                      \
    x = x * 3 + 1;                                                                                 \
  return x;

long f_stub(long x){BODY} DIST_LOCAL __attribute__((noinline)) long f_direct(long x) { BODY }

long loop_stub(long n) {
  long acc = 0;
  for (long i = 0; i < n; ++i)
    acc += f_stub(i);
  return acc;
}

long loop_direct(long n) {
  long acc = 0;
  for (long i = 0; i < n; ++i)
    acc += f_direct(i);
  return acc;
}

/* n bytes in, n bytes out: the remote-call payload benchmark. */
DIST_IN(in, n) DIST_OUT(out, n) void echo_bytes(const uint8_t *in, uint8_t *out, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    out[i] = in[i];
}

/* n bytes in and back (DIST_INOUT): each 32-bit element gets one more, so every word comes
 * back with some bytes changed and some not, the slowest case of writing back changed bytes. */
DIST_INOUT(buf, n) void bump_words(uint32_t *buf, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    buf[i] += 1;
}

/* A small remote call for the throughput benchmark. */
uint64_t tiny_remote(uint64_t x) {
  for (int i = 0; i < 2; ++i)
    x = x * 6364136223846793005ULL + 1;
  return x;
}

/* The same small body twice more: once load-balanced (called through its dispatcher, which runs
 * it here while this node has room), once placeable and placed here (called through its stub). */
DIST_LOADBALANCED uint64_t tiny_balanced(uint64_t x) {
  for (int i = 0; i < 2; ++i)
    x = x * 6364136223846793005ULL + 1;
  return x;
}

uint64_t tiny_here(uint64_t x) {
  for (int i = 0; i < 2; ++i)
    x = x * 6364136223846793005ULL + 1;
  return x;
}

/* CPU work of `n` rounds, on its node: a short call (about 10 us) and a long one (about 1 s)
 * for the latency-under-load benchmark; busy_local is the same work run here, to calibrate. */
uint64_t busy(uint64_t n) {
  uint64_t x = n;
  for (uint64_t i = 0; i < n; ++i)
    x = x * 6364136223846793005ULL + i;
  return x;
}

uint64_t busy_long(uint64_t n) {
  uint64_t x = n;
  for (uint64_t i = 0; i < n; ++i)
    x = x * 6364136223846793005ULL + i;
  return x;
}

DIST_LOCAL uint64_t busy_local(uint64_t n) {
  uint64_t x = n;
  for (uint64_t i = 0; i < n; ++i)
    x = x * 6364136223846793005ULL + i;
  return x;
}

/* Every program needs one; the benchmarks call the functions above directly. */
int main(void) {
  return (int)(loop_stub(1) + loop_direct(1) + (long)tiny_remote(0) + (long)busy(1) +
               (long)busy_long(1) + (long)busy_local(1)) &
         1;
}
