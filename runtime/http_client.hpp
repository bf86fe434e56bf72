#pragma once
// The Ollama backend's HTTP side: streams POST /api/chat over Boost.Beast HTTP/1.1 with a pool of
// keep-alive connections. All socket work happens on one io_context thread; backend actors call
// start() from CAF threads, which only posts work there.

#include "actors/spawn.hpp"
#include "runtime/url.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>

namespace offload {

struct http_timeouts {
  std::chrono::milliseconds connect = defaults::connect_timeout;
  std::chrono::milliseconds first_token = defaults::first_token_timeout;
  std::chrono::milliseconds idle = defaults::idle_timeout;
  std::chrono::milliseconds total = defaults::task_timeout;
};

// Creates the llm_client of one Ollama endpoint. `max_idle` bounds the kept-alive connections
// (the backend's concurrency is the natural value). The io_context must be run by exactly one
// thread and outlive the client.
std::shared_ptr<llm_client> make_ollama_client(boost::asio::io_context& io, http_target target,
                                               http_timeouts timeouts, size_t max_idle);

} // namespace offload
