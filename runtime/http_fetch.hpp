#pragma once
// One-off HTTP requests with a buffered answer, for model discovery (/api/tags, /v1/models),
// health probes (/health, /api/version) and model management (/api/ps, preloading). Runs on the
// same io_context as the LLM clients; each request uses its own connection.

#include "actors/spawn.hpp"
#include "protocol/batch.hpp"
#include "runtime/url.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace offload {

struct fetch_result {
  // Whether a response arrived, whatever its status; when false, `error` says why not
  // (backend_unreachable, timeout, connection_dropped, malformed_stream or cancelled).
  bool ok = false;
  unsigned status = 0;
  std::string body;
  int64_t retry_after_ms = 0; // from the Retry-After header; 0: none
  task_error error;
};

// Sends `method` (e.g. "GET", "POST"; anything else Beast does not know throws
// std::invalid_argument) to `path`, the full request target (the target's base_path included,
// e.g. target.base_path + "/api/tags" or openai::api_path(target.base_path, "models")), with
// `body` (sent as JSON when not empty), and calls `done` exactly once, on the io_context's thread,
// with the answer. `timeout` covers the whole exchange, name resolution included; bodies beyond
// `max_body` bytes are an error. Callable from any thread. The returned handle cancels the
// request (`done` then gets errc::cancelled).
std::shared_ptr<llm_exchange> fetch(boost::asio::io_context& io, const http_target& target,
                                    std::string_view method, std::string path, std::string body,
                                    std::chrono::milliseconds timeout,
                                    std::function<void(fetch_result)> done,
                                    size_t max_body = defaults::max_response_bytes);

// The same, for answers that stream for a long time (Ollama's /api/pull): a 2xx answer's body is
// handed to `on_body` piece by piece as it arrives (on the io_context's thread, before `done`),
// and `done`'s result then has an empty body; any other status is buffered (up to `max_body`)
// for the error message. `idle` bounds the silence between two pieces, `timeout` the whole.
std::shared_ptr<llm_exchange> fetch_stream(boost::asio::io_context& io, const http_target& target,
                                           std::string_view method, std::string path,
                                           std::string body, std::chrono::milliseconds timeout,
                                           std::chrono::milliseconds idle,
                                           std::function<void(std::string_view)> on_body,
                                           std::function<void(fetch_result)> done,
                                           size_t max_body = defaults::max_response_bytes);

} // namespace offload
