// admin_client.cpp - one admin request and its answer.
#include "node/admin_client.h"

#include <zmq.hpp>

namespace distnode::node {

nlohmann::json adminError(const std::string &message) {
  return {{"ok", false}, {"error", message}};
}

nlohmann::json adminRequest(zmq::context_t &context, const std::string &endpoint,
                            const nlohmann::json &request, std::chrono::milliseconds timeout) {
  try {
    zmq::socket_t socket(context, zmq::socket_type::dealer);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::maxmsgsize, std::int64_t(64) << 20);
    socket.set(zmq::sockopt::ipv6, 1);
    socket.connect(endpoint);
    std::string text = request.dump();
    socket.send(zmq::buffer(text), zmq::send_flags::none);
    zmq::pollitem_t item = {socket.handle(), 0, ZMQ_POLLIN, 0};
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return adminError("no answer from " + endpoint + " within " +
                          std::to_string(timeout.count()) + " ms; is the node running?");
      try {
        zmq::poll(&item, 1, left);
      } catch (const zmq::error_t &e) {
        if (e.num() == EINTR)
          continue;
        throw;
      }
      if (item.revents & ZMQ_POLLIN)
        break;
    }
    zmq::message_t reply;
    if (!socket.recv(reply, zmq::recv_flags::dontwait))
      return adminError("no answer from " + endpoint);
    nlohmann::json answer = nlohmann::json::parse(reply.to_string_view(), nullptr, false);
    if (!answer.is_object())
      return adminError("the answer from " + endpoint + " is not a JSON object");
    return answer;
  } catch (const zmq::error_t &e) {
    return adminError("cannot reach " + endpoint + ": " + e.what());
  }
}

} // namespace distnode::node
