#include "protocol/fakellm_route.hpp"

#include <array>

namespace offload::fakellm {

namespace {

enum class api_of : uint8_t { ollama, openai, control };

struct known_path {
  std::string_view path;
  std::string_view method;
  endpoint target;
  api_of api;
};

constexpr std::array<known_path, endpoint_count - 1> known_paths = {{
    {"/", "GET", endpoint::root, api_of::ollama},
    {"/api/chat", "POST", endpoint::chat, api_of::ollama},
    {"/api/generate", "POST", endpoint::generate, api_of::ollama},
    {"/api/tags", "GET", endpoint::tags, api_of::ollama},
    {"/api/version", "GET", endpoint::version, api_of::ollama},
    {"/api/ps", "GET", endpoint::ps, api_of::ollama},
    {"/api/pull", "POST", endpoint::pull, api_of::ollama},
    {"/v1/chat/completions", "POST", endpoint::completions, api_of::openai},
    {"/v1/models", "GET", endpoint::models, api_of::openai},
    {"/health", "GET", endpoint::health, api_of::openai},
    {"/_fake/stats", "GET", endpoint::stats, api_of::control},
    {"/_fake/reset_stats", "POST", endpoint::reset_stats, api_of::control},
    {"/_fake/plan", "PUT", endpoint::plan, api_of::control},
}};

bool serves(api_mode mode, api_of api) {
  switch (api) {
  case api_of::control:
    return true;
  case api_of::ollama:
    return mode != api_mode::openai;
  case api_of::openai:
    return mode != api_mode::ollama;
  }
  return false;
}

api_family family_for_path(std::string_view path, api_mode mode) {
  if (mode == api_mode::ollama)
    return api_family::ollama;
  if (mode == api_mode::openai)
    return api_family::openai;
  return path.starts_with("/v1/") || path == "/health" ? api_family::openai : api_family::ollama;
}

} // namespace

std::string_view to_string(api_mode mode) {
  switch (mode) {
  case api_mode::ollama:
    return "ollama";
  case api_mode::openai:
    return "openai";
  case api_mode::both:
    return "both";
  }
  return "both";
}

std::optional<api_mode> api_mode_from_string(std::string_view text) {
  for (auto mode : {api_mode::ollama, api_mode::openai, api_mode::both})
    if (to_string(mode) == text)
      return mode;
  return std::nullopt;
}

std::string_view to_string(endpoint e) {
  for (const auto& k : known_paths)
    if (k.target == e)
      return k.path;
  return "not_found";
}

route route_request(std::string_view method, std::string_view target, api_mode mode) {
  auto path = target.substr(0, target.find('?'));
  route result;
  result.family = family_for_path(path, mode);
  for (const auto& k : known_paths) {
    if (k.path != path)
      continue;
    if (!serves(mode, k.api))
      break;
    result.target = k.target;
    result.method_allowed = k.method == method;
    result.allowed_method = k.method;
    if (k.api != api_of::control)
      result.family = k.api == api_of::openai ? api_family::openai : api_family::ollama;
    break;
  }
  return result;
}

bool is_control(endpoint e) {
  return e == endpoint::stats || e == endpoint::reset_stats || e == endpoint::plan;
}

} // namespace offload::fakellm
