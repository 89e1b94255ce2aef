/* kvstore.c - a key-value store whose table lives on one node and whose log stays local.
 *
 * The table is a DIST_GPIN type: every function handling it runs on the node that owns it, and
 * callers elsewhere hold it only as an opaque handle. The log wraps a FILE* and is DIST_NPIN: it
 * never crosses a node. main runs a fixed workload and exits with the number of keys it could
 * not find (3 with the default workload), so that exit codes are exercised too; a static
 * constructor and destructor announce start and end.
 *
 * Usage: kvstore [operations]   (default 20000)
 */
#include <dist.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kCapacity = 1 << 14 };

struct DIST_GPIN table {
  uint64_t keys[kCapacity];
  int64_t values[kCapacity];
  uint8_t used[kCapacity];
  uint32_t count;
};

typedef struct logfile {
  FILE *file;
  unsigned lines;
} logfile_t DIST_NPIN;

static unsigned start_banner_printed;

__attribute__((constructor)) static void announce(void) {
  start_banner_printed = 1;
  printf("kvstore: ready\n");
}

__attribute__((destructor)) static void farewell(void) { printf("kvstore: closed\n"); }

static uint32_t slot_of(uint64_t key) {
  key ^= key >> 29;
  key *= 0xbf58476d1ce4e5b9ULL;
  key ^= key >> 32;
  return (uint32_t)(key & (kCapacity - 1));
}

struct table *table_new(void) {
  return calloc(1, sizeof(struct table));
}

void table_free(struct table *t) { free(t); }

/* Inserts or replaces; returns 1 if the key was new, 0 if replaced, -1 if the table is full. */
int table_put(struct table *t, uint64_t key, int64_t value) {
  uint32_t s = slot_of(key);
  for (uint32_t probe = 0; probe < kCapacity; ++probe, s = (s + 1) & (kCapacity - 1)) {
    if (!t->used[s]) {
      t->used[s] = 1;
      t->keys[s] = key;
      t->values[s] = value;
      t->count++;
      return 1;
    }
    if (t->keys[s] == key) {
      t->values[s] = value;
      return 0;
    }
  }
  return -1;
}

/* Looks a key up; writes its value to *out and returns 1, or returns 0. */
DIST_OUT(out, 1) int table_get(struct table *t, uint64_t key, int64_t *out) {
  uint32_t s = slot_of(key);
  for (uint32_t probe = 0; probe < kCapacity; ++probe, s = (s + 1) & (kCapacity - 1)) {
    if (!t->used[s])
      return 0;
    if (t->keys[s] == key) {
      *out = t->values[s];
      return 1;
    }
  }
  return 0;
}

/* Copies up to max values whose keys lie in [lo, hi) into out; returns how many. */
DIST_OUT(out, max)
size_t table_range(struct table *t, uint64_t lo, uint64_t hi, int64_t *out, size_t max) {
  size_t n = 0;
  for (uint32_t s = 0; s < kCapacity && n < max; ++s)
    if (t->used[s] && t->keys[s] >= lo && t->keys[s] < hi)
      out[n++] = t->values[s];
  return n;
}

uint32_t table_count(struct table *t) { return t->count; }

void log_open(logfile_t *log) {
  log->file = tmpfile();
  log->lines = 0;
}

void log_record(logfile_t *log, const char *op, uint64_t key, int64_t value) {
  if (log->file) {
    fprintf(log->file, "%s %llu %lld\n", op, (unsigned long long)key, (long long)value);
    log->lines++;
  }
}

/* A checksum of everything the log holds, read back from its file. */
uint64_t log_digest(logfile_t *log) {
  uint64_t h = 1469598103934665603ULL;
  if (!log->file)
    return 0;
  fflush(log->file);
  rewind(log->file);
  int c;
  while ((c = fgetc(log->file)) != EOF)
    h = (h ^ (uint64_t)c) * 1099511628211ULL;
  fclose(log->file);
  log->file = NULL;
  return h;
}

int main(int argc, char **argv) {
  long ops = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
  struct table *t = table_new();
  logfile_t log;
  log_open(&log);
  uint64_t seed = 42;
  for (long i = 0; i < ops; ++i) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t key = (seed >> 33) % 5000;
    int64_t value = (int64_t)(seed >> 17) - (int64_t)(1LL << 45);
    if (table_put(t, key, value) == 1)
      log_record(&log, "put", key, value);
  }
  int missing = 0;
  int64_t sum = 0;
  uint64_t probes[] = {1, 17, 4999, 5000, 123456, 77777777};
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; ++i) {
    int64_t v = 0;
    if (table_get(t, probes[i], &v))
      sum += v;
    else
      missing++;
  }
  int64_t window[64];
  size_t got = table_range(t, 100, 200, window, 64);
  int64_t window_sum = 0;
  for (size_t i = 0; i < got; ++i)
    window_sum += window[i];
  printf("keys %u  probe-sum %lld  missing %d\n", table_count(t), (long long)sum, missing);
  printf("range [100,200): %zu values, sum %lld\n", got, (long long)window_sum);
  unsigned lines = log.lines;
  printf("log: %u lines, digest %016llx\n", lines, (unsigned long long)log_digest(&log));
  table_free(t);
  return start_banner_printed ? missing : 100;
}
