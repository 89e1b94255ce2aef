/* mandel.c - a CPU-bound stage spread over the cluster: the Mandelbrot set, row by row.
 *
 * render_row is DIST_LOADBALANCED: it runs on every node of its replica set, and each call goes
 * to a node with a free CPU (this node's first). The program's own threads make the calls at
 * once: thread t renders rows t, t + threads, t + 2 * threads, ... Each row's result is a
 * checksum of its iteration counts; the program prints the set as text (one character per
 * block of rows and columns) and the checksum of the whole picture.
 *
 * Usage: mandel [threads] [rows] [iterations]   (defaults 4, 480 and 4000)
 */
#include <dist.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { kWidth = 480, kMaxRows = 4096, kArtColumns = 60 };

/* One row of the picture: a checksum of each pixel's escape count, and in `art` (kArtColumns
 * characters, the 60 of DIST_OUT) whether each block of columns is mostly inside the set. */
DIST_LOADBALANCED DIST_OUT(art, 60) uint64_t render_row(int row, int rows, int iterations,
                                                        char *art) {
  double ci = -1.2 + 2.4 * row / rows;
  uint64_t sum = 0;
  int inside_block = 0;
  for (int x = 0; x < kWidth; ++x) {
    double cr = -2.1 + 3.0 * x / kWidth;
    double zr = 0, zi = 0;
    int n = 0;
    while (n < iterations && zr * zr + zi * zi < 4.0) {
      double t = zr * zr - zi * zi + cr;
      zi = 2 * zr * zi + ci;
      zr = t;
      ++n;
    }
    sum = sum * 1099511628211ULL + (uint64_t)n;
    inside_block += n == iterations;
    if ((x + 1) % (kWidth / kArtColumns) == 0) {
      art[x / (kWidth / kArtColumns)] = inside_block * 2 > kWidth / kArtColumns ? '#' : '.';
      inside_block = 0;
    }
  }
  return sum;
}

struct job {
  int first, step, rows, iterations;
  uint64_t *sums;
  char (*art)[kArtColumns];
};

static void *render_rows(void *arg) {
  struct job *j = arg;
  for (int row = j->first; row < j->rows; row += j->step)
    j->sums[row] = render_row(row, j->rows, j->iterations, j->art[row]);
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  int rows = argc > 2 ? atoi(argv[2]) : 480;
  int iterations = argc > 3 ? atoi(argv[3]) : 4000;
  if (threads < 1 || threads > 256 || rows < 1 || rows > kMaxRows || iterations < 1) {
    fprintf(stderr, "usage: mandel [threads 1-256] [rows 1-%d] [iterations]\n", kMaxRows);
    return 2;
  }
  uint64_t *sums = calloc((size_t)rows, sizeof *sums);
  char (*art)[kArtColumns] = calloc((size_t)rows, sizeof *art);
  pthread_t *tids = calloc((size_t)threads, sizeof *tids);
  struct job *jobs = calloc((size_t)threads, sizeof *jobs);
  for (int t = 0; t < threads; ++t) {
    jobs[t] = (struct job){t, threads, rows, iterations, sums, art};
    pthread_create(&tids[t], NULL, render_rows, &jobs[t]);
  }
  for (int t = 0; t < threads; ++t)
    pthread_join(tids[t], NULL);

  uint64_t total = 0;
  for (int row = 0; row < rows; ++row)
    total = total * 31 + sums[row];
  int step = rows / 24 > 0 ? rows / 24 : 1; /* about 24 lines of text */
  for (int row = step / 2; row < rows; row += step)
    printf("%.*s\n", kArtColumns, art[row]);
  printf("%d rows, %d iterations, %d threads: checksum %016llx\n", rows, iterations, threads,
         (unsigned long long)total);
  free(jobs);
  free(tids);
  free(art);
  free(sums);
  return 0;
}
