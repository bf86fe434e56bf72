#include "runtime/url.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/src.hpp> // Boost.URL is compiled into this translation unit, once.

namespace offload {

std::optional<http_target> parse_http_url(std::string_view url, std::string& error) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) {
    error = "\"" + std::string{url} + "\" is not a URL (" + parsed.error().message() +
            "); expected something like http://127.0.0.1:11434";
    return std::nullopt;
  }
  if (parsed->scheme() != "http") {
    error = "\"" + std::string{url} +
            "\": only http:// URLs are supported (local LLM servers "
            "speak plain HTTP; put a TLS proxy in front of remote ones)";
    return std::nullopt;
  }
  http_target out;
  out.host = parsed->host_address();
  if (out.host.empty()) {
    error = "\"" + std::string{url} + "\" has no host";
    return std::nullopt;
  }
  out.port = parsed->has_port() ? std::string{parsed->port()} : "80";
  out.base_path = std::string{parsed->encoded_path()};
  while (!out.base_path.empty() && out.base_path.back() == '/')
    out.base_path.pop_back();
  return out;
}

} // namespace offload
