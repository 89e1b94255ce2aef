// envelope_fuzz.cpp - libFuzzer target: a message as received from the network, through the
// FlatBuffers verifier (transport::verifyEnvelope) and every field the nodes then read.
#include "transport/messages.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  using namespace distnode;
  zmq::message_t message(data, size);
  const wire::Envelope *e = transport::verifyEnvelope(message);
  if (!e)
    return 0;
  volatile std::uint64_t sink = transport::callIdOf(*e);
  auto bytes = [&](const flatbuffers::Vector<std::uint8_t> *v) {
    if (v)
      for (std::uint8_t b : *v)
        sink = sink + b;
  };
  auto text = [&](const flatbuffers::String *s) {
    if (s)
      sink = sink + s->str().size();
  };
  if (auto *c = e->body_as_Call()) {
    sink = sink + c->function() + c->epoch() + c->chain();
    bytes(c->args());
  } else if (auto *r = e->body_as_Reply()) {
    bytes(r->result());
  } else if (auto *j = e->body_as_Join()) {
    text(j->node());
    bytes(j->bitcode_sha256());
    text(j->nodes());
  } else if (auto *w = e->body_as_Welcome()) {
    text(w->reason());
  } else if (auto *err = e->body_as_Error()) {
    text(err->message());
  } else if (auto *p = e->body_as_Placement()) {
    if (p->owners())
      for (std::uint16_t o : *p->owners())
        sink = sink + o;
  } else if (auto *s = e->body_as_Shutdown()) {
    text(s->reason());
  } else if (auto *x = e->body_as_Exit()) {
    sink = sink + static_cast<std::uint64_t>(x->exit_code()) + static_cast<std::uint64_t>(x->how());
  } else if (auto *m = e->body_as_Moved()) {
    sink = sink + m->owner() + m->epoch();
  }
  return 0;
}
