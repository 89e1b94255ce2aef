/* nbody.c - a CPU-bound n-body simulation with a fixed initial state.
 *
 * Bodies move as an array of plain structs (DIST_INOUT); vectors pass by value. The energy,
 * checked every few steps, is pinned to node n1 (DIST_PIN), e.g. the machine with the fastest
 * floating point. Output is deterministic: the same operations in the same order on any node.
 *
 * Usage: nbody [steps]   (default 2000)
 */
#include <dist.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct vec3 {
  double x, y, z;
} vec3;

struct body {
  vec3 pos, vel;
  double mass;
};

enum { kBodies = 5, kReportEvery = 500 };

static vec3 vadd(vec3 a, vec3 b) { return (vec3){a.x + b.x, a.y + b.y, a.z + b.z}; }
static vec3 vscale(vec3 a, double s) { return (vec3){a.x * s, a.y * s, a.z * s}; }

/* The centre of mass of the system: a struct by value in and out. */
DIST_IN(bodies, n) vec3 centre_of_mass(const struct body *bodies, int n) {
  vec3 c = {0, 0, 0};
  double m = 0;
  for (int i = 0; i < n; ++i) {
    c = vadd(c, vscale(bodies[i].pos, bodies[i].mass));
    m += bodies[i].mass;
  }
  return vscale(c, 1.0 / m);
}

/* Moves every body by dt under mutual gravity (n^2 pairs), `substeps` times. */
DIST_INOUT(bodies, n) void advance(struct body *bodies, int n, double dt, int substeps) {
  for (int s = 0; s < substeps; ++s) {
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j) {
        vec3 d = {bodies[i].pos.x - bodies[j].pos.x, bodies[i].pos.y - bodies[j].pos.y,
                  bodies[i].pos.z - bodies[j].pos.z};
        double d2 = d.x * d.x + d.y * d.y + d.z * d.z;
        double mag = dt / (d2 * sqrt(d2));
        bodies[i].vel = vadd(bodies[i].vel, vscale(d, -bodies[j].mass * mag));
        bodies[j].vel = vadd(bodies[j].vel, vscale(d, bodies[i].mass * mag));
      }
    for (int i = 0; i < n; ++i)
      bodies[i].pos = vadd(bodies[i].pos, vscale(bodies[i].vel, dt));
  }
}

/* Total energy: kinetic plus pairwise potential. */
DIST_PIN("n1") DIST_IN(bodies, n) double energy(const struct body *bodies, int n) {
  double e = 0;
  for (int i = 0; i < n; ++i) {
    const struct body *b = &bodies[i];
    e += 0.5 * b->mass * (b->vel.x * b->vel.x + b->vel.y * b->vel.y + b->vel.z * b->vel.z);
    for (int j = i + 1; j < n; ++j) {
      double dx = b->pos.x - bodies[j].pos.x, dy = b->pos.y - bodies[j].pos.y,
             dz = b->pos.z - bodies[j].pos.z;
      e -= b->mass * bodies[j].mass / sqrt(dx * dx + dy * dy + dz * dz);
    }
  }
  return e;
}

/* Shifts velocities so that total momentum is zero. */
DIST_INOUT(b, n) void offset_momentum(struct body *b, int n) {
  vec3 p = {0, 0, 0};
  for (int i = 0; i < n; ++i)
    p = vadd(p, vscale(b[i].vel, b[i].mass));
  b[0].vel = vscale(p, -1.0 / b[0].mass);
}

int main(int argc, char **argv) {
  int steps = argc > 1 ? atoi(argv[1]) : 2000;
  const double pi = 3.141592653589793, days = 365.24, solar = 4 * pi * pi;
  struct body bodies[kBodies] = {
      {{0, 0, 0}, {0, 0, 0}, solar},
      {{4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01},
       {1.66007664274403694e-03 * days, 7.69901118419740425e-03 * days,
        -6.90460016972063023e-05 * days},
       9.54791938424326609e-04 * solar},
      {{8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01},
       {-2.76742510726862411e-03 * days, 4.99852801234917238e-03 * days,
        2.30417297573763929e-05 * days},
       2.85885980666130812e-04 * solar},
      {{1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01},
       {2.96460137564761618e-03 * days, 2.37847173959480950e-03 * days,
        -2.96589568540237556e-05 * days},
       4.36624404335156298e-05 * solar},
      {{1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01},
       {2.68067772490389322e-03 * days, 1.62824170038242295e-03 * days,
        -9.51592254519715870e-05 * days},
       5.15138902046611451e-05 * solar}};
  offset_momentum(bodies, kBodies);
  printf("energy before: %.9f\n", energy(bodies, kBodies));
  for (int s = 0; s < steps; s += kReportEvery) {
    int n = steps - s < kReportEvery ? steps - s : kReportEvery;
    advance(bodies, kBodies, 0.01, n);
    vec3 c = centre_of_mass(bodies, kBodies);
    printf("step %5d: energy %.9f  centre (%.6e, %.6e, %.6e)\n", s + n, energy(bodies, kBodies),
           c.x, c.y, c.z);
  }
  return 0;
}
