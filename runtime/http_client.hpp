#pragma once
// The HTTP side of LLM backends: streams chat completions over Boost.Beast HTTP/1.1 with a pool of
// keep-alive connections, in Ollama's native format or the OpenAI-compatible one. All socket work
// happens on one io_context thread; backend actors call start() from CAF threads, which only posts
// work there.

#include "actors/spawn.hpp"
#include "protocol/ollama.hpp"
#include "runtime/url.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

namespace offload {

// Which wire format a backend speaks.
enum class backend_kind {
  ollama, // POST /api/chat, NDJSON
  openai, // POST /v1/chat/completions, server-sent events (llama.cpp, vLLM, LM Studio, ...)
};

// "ollama" or "openai"; nullopt for anything else.
std::optional<backend_kind> parse_backend_kind(std::string_view name);
std::string_view to_string(backend_kind kind);

struct http_timeouts {
  std::chrono::milliseconds connect = defaults::connect_timeout;
  std::chrono::milliseconds first_token = defaults::first_token_timeout;
  std::chrono::milliseconds idle = defaults::idle_timeout;
  std::chrono::milliseconds total = defaults::task_timeout;

  friend bool operator==(const http_timeouts&, const http_timeouts&) = default;
};

// Creates the llm_client of one endpoint. `max_idle` bounds the kept-alive connections (the
// backend's concurrency is the natural value). A request's own first-token and idle timeouts,
// when set, replace `timeouts`' for that request. An error response's Retry-After header ends up
// in task_error::retry_after_ms. The io_context must be run by exactly one thread and outlive the
// client. Ollama requests carry the `model_options` configured for their model (keep_alive,
// num_ctx); the OpenAI-compatible API has no such fields.
std::shared_ptr<llm_client>
make_llm_client(boost::asio::io_context& io, backend_kind kind, http_target target,
                http_timeouts timeouts, size_t max_idle,
                std::map<std::string, ollama::chat_options> model_options = {});

// The same for an Ollama endpoint.
inline std::shared_ptr<llm_client> make_ollama_client(boost::asio::io_context& io,
                                                      http_target target, http_timeouts timeouts,
                                                      size_t max_idle) {
  return make_llm_client(io, backend_kind::ollama, std::move(target), timeouts, max_idle);
}

} // namespace offload
