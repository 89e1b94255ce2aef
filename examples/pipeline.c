/* pipeline.c - a three-stage block pipeline with a heavy, load-balanced hashing stage.
 *
 * generate_block fills a block from a seed, scramble_block permutes it in place, and
 * hash_block (the expensive stage, DIST_LOADBALANCED) digests it. main folds the digests into
 * running checksums and prints one line per group of blocks; an atexit handler prints the total.
 *
 * Usage: pipeline [blocks]   (default 64; output is deterministic for a given count)
 */
#include <dist.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { kBlockBytes = 4096, kGroup = 8, kHashRounds = 24 };

/* A tiny mixer used inside every stage: cloned onto whichever node calls it. */
DIST_LOCAL static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

/* Stage 1: a deterministic block from a seed (xorshift32). */
DIST_OUT(out, n) void generate_block(uint32_t seed, uint8_t *out, size_t n) {
  uint32_t s = seed * 2654435761u + 1u;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    out[i] = (uint8_t)(s >> 24);
  }
}

/* Stage 2: a keyed byte permutation, applied `rounds` times in place. */
DIST_INOUT(buf, n) void scramble_block(uint8_t *buf, size_t n, uint32_t rounds) {
  for (uint32_t r = 0; r < rounds; ++r) {
    uint8_t carry = (uint8_t)(r * 31u + 7u);
    for (size_t i = 0; i < n; ++i) {
      uint8_t v = (uint8_t)(buf[i] ^ carry);
      buf[i] = (uint8_t)((v << 3) | (v >> 5));
      carry = (uint8_t)(carry + buf[i]);
    }
  }
}

/* Stage 3: the expensive one. Pure: the same result on any replica. */
DIST_LOADBALANCED DIST_IN(buf, n)
uint64_t hash_block(const uint8_t *buf, size_t n, uint32_t rounds) {
  uint64_t h = 1469598103934665603ULL;
  for (uint32_t r = 0; r < rounds; ++r) {
    for (size_t i = 0; i < n; ++i) {
      h ^= buf[i];
      h *= 1099511628211ULL;
    }
    h = mix64(h + r);
  }
  return h;
}

static uint64_t total;

static void print_total(void) { printf("total %016llx\n", (unsigned long long)total); }

int main(int argc, char **argv) {
  long blocks = argc > 1 ? strtol(argv[1], NULL, 10) : 64;
  if (blocks <= 0) {
    fprintf(stderr, "pipeline: blocks must be positive\n");
    return 1;
  }
  atexit(print_total);
  static uint8_t block[kBlockBytes];
  uint64_t group = 0;
  for (long b = 0; b < blocks; ++b) {
    generate_block((uint32_t)b, block, sizeof block);
    scramble_block(block, sizeof block, 3);
    uint64_t h = hash_block(block, sizeof block, kHashRounds);
    group = mix64(group ^ h);
    total ^= h;
    if ((b + 1) % kGroup == 0 || b + 1 == blocks) {
      printf("blocks %3ld..%3ld  checksum %016llx\n", b - (b % kGroup), b,
             (unsigned long long)group);
      group = 0;
    }
  }
  exit(0);
}
