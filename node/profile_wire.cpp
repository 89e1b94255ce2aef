// profile_wire.cpp - a node's profile delta on the wire.
#include "node/profile_wire.h"

#include "transport/messages.h"

namespace distnode::node {

zmq::message_t encodeProfileDelta(std::uint64_t call_id, const NodeReport &r, std::uint16_t node) {
  flatbuffers::FlatBufferBuilder b(1024);
  std::vector<wire::FunctionDelta> functions;
  for (std::size_t id = 0; id < r.delta.cpu_ns.size(); ++id) {
    std::uint64_t samples = id < r.delta.samples.size() ? r.delta.samples[id] : 0;
    if (r.delta.cpu_ns[id] || samples)
      functions.emplace_back(static_cast<std::uint32_t>(id), r.delta.cpu_ns[id], samples);
  }
  std::vector<wire::EdgeDelta> edges;
  for (const auto &e : r.delta.edges)
    edges.emplace_back(e.caller, e.callee, e.calls, e.call_bytes, e.reply_bytes);
  std::vector<wire::RemoteDelta> remote;
  for (const auto &m : r.delta.remote)
    remote.emplace_back(m.function, m.calls, m.bytes, m.round_trip_ns, m.marshal_ns);
  std::vector<wire::LinkMeasure> links;
  for (const auto &l : r.links)
    links.emplace_back(
        static_cast<std::uint16_t>(l.node), static_cast<std::uint64_t>(l.latency_s * 1e9),
        l.bandwidth_bytes_s,
        static_cast<std::uint8_t>((l.latency_by_calls ? 1 : 0) | (l.bandwidth_by_calls ? 2 : 0)));
  auto body = wire::CreateProfileDelta(
      b, call_id, static_cast<std::uint64_t>(r.delta.elapsed_s * 1e9), r.cpu_capacity,
      b.CreateVectorOfStructs(functions), b.CreateVectorOfStructs(edges),
      b.CreateVectorOfStructs(remote), b.CreateVectorOfStructs(links),
      static_cast<std::uint64_t>(r.run_s * 1e9),
      static_cast<std::uint64_t>(r.runnable_wait_s * 1e9), node);
  return transport::finishEnvelope(b, wire::Body::ProfileDelta, body.Union());
}

std::optional<std::string> decodeProfileDelta(const wire::ProfileDelta &d, std::size_t functions,
                                              NodeReport &r) {
  r = {};
  r.delta.elapsed_s = static_cast<double>(d.interval_ns()) / 1e9;
  r.cpu_capacity = d.cpu_capacity();
  r.run_s = static_cast<double>(d.run_ns()) / 1e9;
  r.runnable_wait_s = static_cast<double>(d.runnable_wait_ns()) / 1e9;
  r.delta.cpu_ns.assign(functions, 0);
  r.delta.samples.assign(functions, 0);
  if (const auto *fs = d.functions())
    for (const wire::FunctionDelta *f : *fs) {
      if (f->id() >= functions)
        return "a profile delta names profile id " + std::to_string(f->id()) +
               ", the program has " + std::to_string(functions);
      r.delta.cpu_ns[f->id()] += f->cpu_ns();
      r.delta.samples[f->id()] += f->samples();
    }
  if (const auto *es = d.edges())
    for (const wire::EdgeDelta *e : *es)
      r.delta.edges.push_back(
          {e->caller(), e->callee(), e->calls(), e->call_bytes(), e->reply_bytes()});
  if (const auto *ms = d.remote())
    for (const wire::RemoteDelta *m : *ms)
      r.delta.remote.push_back(
          {m->function(), m->calls(), m->bytes(), m->round_trip_ns(), m->marshal_ns()});
  if (const auto *ls = d.links())
    for (const wire::LinkMeasure *l : *ls)
      r.links.push_back({l->node(), static_cast<double>(l->latency_ns()) / 1e9,
                         l->bandwidth_bytes_s(), (l->by_calls() & 1) != 0,
                         (l->by_calls() & 2) != 0});
  return std::nullopt;
}

} // namespace distnode::node
