#pragma once
// Parsing of backend base URLs such as "http://127.0.0.1:11434" (Boost.URL).

#include <optional>
#include <string>
#include <string_view>

namespace offload {

struct http_target {
  std::string host;      // "127.0.0.1", "localhost" or "gpu-box"
  std::string port;      // "11434"
  std::string base_path; // "" or "/prefix" (no trailing slash); API paths are appended
  // The URL without a trailing slash, for messages and default backend names.
  std::string display() const { return "http://" + host + ":" + port + base_path; }

  friend bool operator==(const http_target&, const http_target&) = default;
};

// Parses an http:// base URL. On failure returns nullopt and sets `error` to say why.
std::optional<http_target> parse_http_url(std::string_view url, std::string& error);

} // namespace offload
