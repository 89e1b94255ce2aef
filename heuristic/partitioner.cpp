// partitioner.cpp - greedy initial placement and Fiduccia–Mattheyses refinement.
#include "heuristic/partitioner.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <queue>
#include <tuple>

namespace distnode::heuristic {

namespace {

constexpr double kEpsilon = 1e-12;

// The state of one refinement: a placement, node loads, and for every unit and node the call
// and byte rates it exchanges with units on that node (so that the cost of a unit on any node
// is O(nodes) to evaluate and a move is O(degree) to apply).
class Refiner {
public:
  Refiner(const CostModel &model, const PartitionOptions &options, Placement start)
      : m_(model), p_(model.problem()), k_(static_cast<int>(p_.nodes.size())),
        n_(static_cast<int>(p_.units.size())), place_(std::move(start)), load_(k_, 0),
        agg_(static_cast<std::size_t>(n_) * k_ * kFields, 0), adj_(n_) {
    movable_.assign(n_, true);
    for (int u = 0; u < n_; ++u) {
      const Unit &unit = p_.units[u];
      if (unit.pinned_node >= 0 || unit.load_balanced ||
          (u < static_cast<int>(options.frozen.size()) && options.frozen[u]))
        movable_[u] = false;
    }
    for (std::size_t e = 0; e < p_.edges.size(); ++e) {
      const Edge &edge = p_.edges[e];
      if (edge.caller == edge.callee || p_.units[edge.caller].load_balanced ||
          p_.units[edge.callee].load_balanced)
        continue;
      adj_[edge.caller].push_back({static_cast<int>(e), true});
      adj_[edge.callee].push_back({static_cast<int>(e), false});
    }
    for (int u = 0; u < n_; ++u)
      if (!p_.units[u].load_balanced)
        load_[place_[u]] += p_.units[u].cpu_load;
    for (int u = 0; u < n_; ++u)
      for (const Incident &i : adj_[u])
        account(u, i, place_[other(u, i)], +1);
  }

  const Placement &placement() const { return place_; }

  // Each unit to its best node while that gains; returns whether anything moved.
  bool sweeps(int max_sweeps) {
    bool any = false;
    for (int s = 0; s < max_sweeps; ++s) {
      bool moved = false;
      for (int u = 0; u < n_; ++u) {
        if (!movable_[u])
          continue;
        auto [gain, to] = bestMove(u);
        if (gain > kEpsilon) {
          move(u, to);
          moved = any = true;
        }
      }
      if (!moved)
        break;
    }
    return any;
  }

  // One FM pass: repeatedly the best move of an unlocked unit (even a losing one), each unit
  // at most once; then undo the moves after the best prefix. Returns the gain kept.
  double fmPass() {
    std::vector<bool> locked(n_, false);
    using Entry = std::tuple<double, int, int>; // gain, -unit (ties: lower unit first), to
    std::priority_queue<Entry> heap;
    for (int u = 0; u < n_; ++u)
      if (movable_[u]) {
        auto [gain, to] = bestMove(u);
        if (to >= 0)
          heap.push({gain, -u, to});
      }
    std::vector<std::pair<int, int>> moves; // unit, from
    double total = 0, best = 0;
    std::size_t best_len = 0;
    while (!heap.empty()) {
      auto [gain, neg_u, to] = heap.top();
      heap.pop();
      int u = -neg_u;
      if (locked[u])
        continue;
      auto [now_gain, now_to] = bestMove(u);
      if (now_to < 0)
        continue;
      if (std::abs(now_gain - gain) > kEpsilon || now_to != to) { // stale: requeue
        heap.push({now_gain, -u, now_to});
        continue;
      }
      int from = place_[u];
      move(u, to);
      locked[u] = true;
      moves.push_back({u, from});
      total += gain;
      if (total > best + kEpsilon) {
        best = total;
        best_len = moves.size();
      }
      for (const Incident &i : adj_[u]) { // neighbours' gains changed
        int v = other(u, i);
        if (movable_[v] && !locked[v]) {
          auto [g, t] = bestMove(v);
          if (t >= 0)
            heap.push({g, -v, t});
        }
      }
    }
    for (std::size_t i = moves.size(); i > best_len; --i)
      move(moves[i - 1].first, moves[i - 1].second);
    return best;
  }

  // Exchanges of two units on different nodes, where that gains: what single moves cannot do
  // when capacity is tight. Candidates: every unit for small problems, else the neighbours.
  bool swaps(int max_rounds) {
    bool any = false;
    const bool all_pairs = n_ <= 300;
    for (int round = 0; round < max_rounds; ++round) {
      bool moved = false;
      for (int u = 0; u < n_; ++u) {
        if (!movable_[u])
          continue;
        auto tryWith = [&](int v) {
          if (v == u || !movable_[v] || place_[v] == place_[u])
            return;
          int a = place_[u], b = place_[v];
          double first = gainTo(u, b);
          move(u, b);
          double second = gainTo(v, a);
          if (first + second > kEpsilon) {
            move(v, a);
            moved = any = true;
          } else {
            move(u, a);
          }
        };
        if (all_pairs)
          for (int v = u + 1; v < n_; ++v)
            tryWith(v);
        else
          for (std::size_t i = 0; i < adj_[u].size(); ++i)
            tryWith(other(u, adj_[u][i]));
      }
      if (!moved)
        break;
    }
    return any;
  }

private:
  static constexpr int kFields = 6; // out calls, out call bytes, out reply bytes, in (same)
  struct Incident {
    int edge;
    bool as_caller;
  };

  int other(int, const Incident &i) const {
    const Edge &e = p_.edges[i.edge];
    return i.as_caller ? e.callee : e.caller;
  }

  double *agg(int u, int node) {
    return &agg_[(static_cast<std::size_t>(u) * k_ + node) * kFields];
  }

  // Adds (sign +1) or removes (−1) edge i of unit u, whose other end is on `node`.
  void account(int u, const Incident &i, int node, int sign) {
    const Edge &e = p_.edges[i.edge];
    double *a = agg(u, node) + (i.as_caller ? 0 : 3);
    a[0] += sign * e.calls_per_s;
    a[1] += sign * e.call_bytes_per_s;
    a[2] += sign * e.reply_bytes_per_s;
  }

  // Communication cost of unit u's edges if u were on node x.
  double comm(int u, int x) {
    double c = 0;
    for (int n = 0; n < k_; ++n) {
      if (n == x)
        continue;
      const double *a = agg(u, n);
      // u calls units on n (u → n) and is called by units on n (n → u).
      c += a[0] * m_.perCall(x, n) + a[1] * m_.perByte(x, n) + a[2] * m_.perByte(n, x);
      c += a[3] * m_.perCall(n, x) + a[4] * m_.perByte(n, x) + a[5] * m_.perByte(x, n);
    }
    return c;
  }

  int current(int u) const { return u < static_cast<int>(p_.current.size()) ? p_.current[u] : -1; }

  // Gain (cost saved) of moving u to q.
  double gainTo(int u, int q) {
    int from = place_[u];
    double l = p_.units[u].cpu_load;
    double overload = m_.overloadCost(from, load_[from]) + m_.overloadCost(q, load_[q]) -
                      m_.overloadCost(from, load_[from] - l) - m_.overloadCost(q, load_[q] + l);
    return comm(u, from) + m_.migrationCost(u, current(u), from) - comm(u, q) -
           m_.migrationCost(u, current(u), q) + overload;
  }

  // The best node to move u to and its gain (-1 if u cannot move anywhere).
  std::pair<double, int> bestMove(int u) {
    int from = place_[u];
    double best_gain = -std::numeric_limits<double>::infinity();
    int best_to = -1;
    for (int q = 0; q < k_; ++q) {
      if (q == from)
        continue;
      double gain = gainTo(u, q);
      if (gain > best_gain + kEpsilon) {
        best_gain = gain;
        best_to = q;
      }
    }
    return {best_gain, best_to};
  }

  void move(int u, int to) {
    int from = place_[u];
    if (from == to)
      return;
    for (const Incident &i : adj_[u]) {
      int v = other(u, i);
      Incident back{i.edge, !i.as_caller};
      account(v, back, from, -1);
      account(v, back, to, +1);
    }
    load_[from] -= p_.units[u].cpu_load;
    load_[to] += p_.units[u].cpu_load;
    place_[u] = to;
  }

  const CostModel &m_;
  const Problem &p_;
  int k_, n_;
  Placement place_;
  std::vector<double> load_;
  std::vector<double> agg_;
  std::vector<std::vector<Incident>> adj_;
  std::vector<bool> movable_;
};

// The node a unit must be on, or -1.
int fixedNode(const Problem &p, const PartitionOptions &o, int u) {
  const Unit &unit = p.units[u];
  if (unit.pinned_node >= 0)
    return unit.pinned_node;
  int cur = u < static_cast<int>(p.current.size()) ? p.current[u] : -1;
  bool frozen = u < static_cast<int>(o.frozen.size()) && o.frozen[u];
  if ((unit.load_balanced || frozen) && cur >= 0)
    return cur;
  if (unit.load_balanced)
    return 0;
  return -1;
}

Placement refine(const CostModel &model, const PartitionOptions &options, Placement start) {
  Refiner r(model, options, std::move(start));
  r.sweeps(options.max_sweeps);
  if (static_cast<int>(model.problem().units.size()) > options.thorough_max_units)
    return r.placement();
  for (int pass = 0; pass < options.max_fm_passes; ++pass) {
    bool improved = r.fmPass() > kEpsilon;
    r.sweeps(options.max_sweeps);
    improved |= r.swaps(options.max_sweeps);
    if (!improved)
      break;
  }
  return r.placement();
}

} // namespace

Placement greedyPlacement(const CostModel &model, const PartitionOptions &options) {
  const Problem &p = model.problem();
  const int n = static_cast<int>(p.units.size()), k = static_cast<int>(p.nodes.size());
  Placement place(n, -1);
  std::vector<double> load(k, 0), weight(n, 0);
  std::vector<std::vector<int>> adj(n);
  for (std::size_t e = 0; e < p.edges.size(); ++e) {
    const Edge &edge = p.edges[e];
    double w = model.edgeCost(edge, 0, k > 1 ? 1 : 0); // a cut's typical cost
    weight[edge.caller] += w;
    weight[edge.callee] += w;
    adj[edge.caller].push_back(static_cast<int>(e));
    adj[edge.callee].push_back(static_cast<int>(e));
  }
  for (int u = 0; u < n; ++u)
    if (int f = fixedNode(p, options, u); f >= 0) {
      place[u] = f;
      if (!p.units[u].load_balanced)
        load[f] += p.units[u].cpu_load;
    }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    double wa = weight[a] + p.units[a].cpu_load, wb = weight[b] + p.units[b].cpu_load;
    return wa > wb;
  });
  for (int u : order) {
    if (place[u] >= 0)
      continue;
    int cur = u < static_cast<int>(p.current.size()) ? p.current[u] : -1;
    double best = std::numeric_limits<double>::infinity();
    int best_node = 0;
    for (int q = 0; q < k; ++q) {
      double c = model.overloadCost(q, load[q] + p.units[u].cpu_load) -
                 model.overloadCost(q, load[q]) + model.migrationCost(u, cur, q);
      for (int e : adj[u]) {
        const Edge &edge = p.edges[e];
        int v = edge.caller == u ? edge.callee : edge.caller;
        if (place[v] < 0 || v == u || p.units[v].load_balanced)
          continue;
        c += edge.caller == u ? model.edgeCost(edge, q, place[v])
                              : model.edgeCost(edge, place[v], q);
      }
      if (c < best - kEpsilon) {
        best = c;
        best_node = q;
      }
    }
    place[u] = best_node;
    load[best_node] += p.units[u].cpu_load;
  }
  return place;
}

Placement partition(const CostModel &model, const PartitionOptions &options) {
  const Problem &p = model.problem();
  Placement greedy = greedyPlacement(model, options);
  Placement from_current = greedy;
  bool have_current = p.current.size() == p.units.size();
  for (std::size_t u = 0; u < p.units.size() && have_current; ++u)
    if (p.current[u] >= 0 && fixedNode(p, options, static_cast<int>(u)) < 0)
      from_current[u] = p.current[u];
  auto cost = [&](const Placement &x) { return model.evaluate(x).total(); };
  const bool thorough = static_cast<int>(p.units.size()) <= options.thorough_max_units;
  if (!thorough) // one start only: the cheaper one (the current placement when it is good)
    return refine(model, options,
                  cost(greedy) < cost(from_current) * (1 - 1e-9) ? greedy : from_current);
  Placement best = refine(model, options, from_current);
  double best_cost = cost(best);
  auto consider = [&](Placement start) {
    Placement x = refine(model, options, std::move(start));
    double c = cost(x);
    if (c < best_cost * (1 - 1e-9) - 1e-15) { // strictly better: ties keep the earlier
      best = std::move(x);
      best_cost = c;
    }
  };
  if (have_current)
    consider(greedy);
  // Small problems: refinement from a few more starts, drawn from a fixed seed.
  const int n = static_cast<int>(p.units.size()), k = static_cast<int>(p.nodes.size());
  if (n <= options.multi_start_max_units) {
    std::uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (int start = 0; start < options.multi_starts; ++start) {
      Placement x = greedy;
      for (int u = 0; u < n; ++u) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        if (fixedNode(p, options, u) < 0)
          x[u] = static_cast<int>((state >> 33) % static_cast<std::uint64_t>(k));
      }
      consider(std::move(x));
    }
  }
  return best;
}

Placement pairwiseExchangePlacement(const CostModel &model) {
  const Problem &p = model.problem();
  const int n = static_cast<int>(p.units.size()), k = static_cast<int>(p.nodes.size());
  Placement place = greedyPlacement(model);
  if (p.current.size() == p.units.size())
    for (int u = 0; u < n; ++u)
      if (p.current[u] >= 0)
        place[u] = p.current[u];
  std::vector<std::vector<std::pair<int, double>>> calls(n); // neighbour, calls/s
  for (const Edge &e : p.edges) {
    if (e.caller == e.callee)
      continue;
    calls[e.caller].push_back({e.callee, e.calls_per_s});
    calls[e.callee].push_back({e.caller, e.calls_per_s});
  }
  auto gainTo = [&](int u, int q) { // remote calls saved by moving u to q
    double g = 0;
    for (auto [v, c] : calls[u])
      g += (place[v] == q ? c : 0) - (place[v] == place[u] ? c : 0);
    return g;
  };
  auto movable = [&](int u) { return p.units[u].pinned_node < 0 && !p.units[u].load_balanced; };
  for (int round = 0; round < 8; ++round) {
    bool changed = false;
    for (int a = 0; a < k; ++a)
      for (int b = a + 1; b < k; ++b) {
        // Candidates each way, best first; exchanged in pairs while the pair gains.
        std::vector<std::pair<double, int>> ab, ba;
        for (int u = 0; u < n; ++u) {
          if (!movable(u))
            continue;
          if (place[u] == a)
            ab.push_back({gainTo(u, b), u});
          else if (place[u] == b)
            ba.push_back({gainTo(u, a), u});
        }
        std::sort(ab.begin(), ab.end(), [](auto &x, auto &y) { return x > y; });
        std::sort(ba.begin(), ba.end(), [](auto &x, auto &y) { return x > y; });
        for (std::size_t i = 0; i < ab.size() && i < ba.size(); ++i) {
          int u = ab[i].second, v = ba[i].second;
          double before = gainTo(u, b) + gainTo(v, a);
          // Exchanging both also changes the u–v edge's state: count it once.
          double both = 0;
          for (auto [w, c] : calls[u])
            if (w == v)
              both += c;
          if (before - 2 * both <= 0)
            break;
          place[u] = b;
          place[v] = a;
          changed = true;
        }
      }
    if (!changed)
      break;
  }
  return place;
}

} // namespace distnode::heuristic
