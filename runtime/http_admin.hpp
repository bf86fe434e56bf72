#pragma once
// The management side of an LLM endpoint over HTTP (endpoint_admin): health probes, model lists,
// loaded models, preloads and pulls, each a request of runtime/http_fetch on the I/O thread.
//
//   probe         Ollama: GET /api/version. OpenAI-compatible: GET /health (llama.cpp, vLLM;
//                 503 = still loading), or GET /v1/models on servers without /health.
//   list_models   Ollama: GET /api/tags. OpenAI-compatible: GET /v1/models.
//   loaded_models Ollama: GET /api/ps. OpenAI-compatible: GET /v1/models (what it serves).
//   preload       Ollama: POST /api/chat without messages, with keep_alive (and num_ctx).
//   pull          Ollama: POST /api/pull, streamed NDJSON progress.

#include "actors/spawn.hpp"
#include "protocol/ollama.hpp"
#include "runtime/http_client.hpp"
#include "runtime/url.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>

namespace offload {

struct admin_options {
  // Probes, model lists and loaded models.
  std::chrono::milliseconds probe_timeout = defaults::probe_timeout;
  std::chrono::milliseconds preload_timeout = defaults::preload_timeout;
  std::chrono::milliseconds pull_timeout = defaults::pull_timeout;
  std::chrono::milliseconds pull_idle_timeout = defaults::pull_idle_timeout;
  // Per-model settings: a preload without its own keep_alive uses the model's, and loads it
  // with the model's num_ctx (so that the first task does not reload it).
  std::map<std::string, ollama::chat_options> model_options;
};

// The io_context must be run by exactly one thread and outlive the admin's requests.
std::shared_ptr<endpoint_admin> make_endpoint_admin(boost::asio::io_context& io, backend_kind kind,
                                                    http_target target, admin_options options = {});

} // namespace offload
