#pragma once
// Which endpoint of the fake LLM server a request line names, under the APIs it serves. Pure
// code, unit-tested without sockets.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace offload::fakellm {

// Which APIs the fake speaks (`--api`); the other one's paths answer 404, as on a real server.
enum class api_mode : uint8_t { ollama, openai, both };

std::string_view to_string(api_mode mode);
std::optional<api_mode> api_mode_from_string(std::string_view text);

// The two wire dialects; errors, too, take the shape of the API they answer for.
enum class api_family : uint8_t { ollama, openai };

enum class endpoint : uint8_t {
  root,        // GET /: Ollama's liveness answer, which some clients probe
  chat,        // POST /api/chat
  generate,    // POST /api/generate
  tags,        // GET /api/tags
  version,     // GET /api/version
  ps,          // GET /api/ps
  pull,        // POST /api/pull
  completions, // POST /v1/chat/completions
  models,      // GET /v1/models
  health,      // GET /health (llama.cpp)
  stats,       // GET /_fake/stats
  reset_stats, // POST /_fake/reset_stats
  plan,        // PUT /_fake/plan: swaps the fault plan
  not_found,
};

inline constexpr size_t endpoint_count = static_cast<size_t>(endpoint::not_found) + 1;

// The path of an endpoint, e.g. "/api/chat"; "not_found" for paths the fake does not serve.
std::string_view to_string(endpoint e);

struct route {
  endpoint target = endpoint::not_found;
  bool method_allowed = false;
  std::string_view allowed_method;        // for the Allow header of a 405
  api_family family = api_family::ollama; // the shape of this route's error bodies
};

// Maps a request line to an endpoint; the query string is ignored. Paths of an API that `mode`
// leaves out are not found. The error shape of an unknown path is the one of the API the path
// looks like (/v1/... and /health are OpenAI's), or of the only API served.
route route_request(std::string_view method, std::string_view target, api_mode mode);

// Whether the endpoint is one of the fake's own (/_fake/...), which answer in every state.
bool is_control(endpoint e);

} // namespace offload::fakellm
