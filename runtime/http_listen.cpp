#include "runtime/http_listen.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <system_error>

namespace offload {

namespace {

namespace asio = boost::asio;

http_transport_settings make_http_settings(const http_config& http) {
  http_transport_settings out;
  // A socket passed by systemd is served instead of binding http.listen.
  out.listen_fd = http.socket_fd;
  if (http.socket_fd < 0) {
    auto address = parse_listen_address(http.listen);
    out.listen = {asio::ip::make_address(address.ip), address.port};
  }
  out.allowed_origins = http.allowed_origins;
  out.allowed_hosts = http.allowed_hosts;
  out.session_idle_timeout = http.session_idle_timeout;
  out.max_sessions = http.max_sessions;
  out.max_body_bytes = http.max_body_bytes;
  out.max_inflight_per_session = http.max_inflight_per_session;
  out.sse_retry = http.sse_retry;
  out.event_buffer = http.event_buffer;
  out.event_buffer_bytes = defaults::http_event_buffer_bytes;
  out.read_timeout = defaults::http_read_timeout;
  out.write_timeout = defaults::http_write_timeout;
  auto tokens = std::make_shared<http_checks::token_table>();
  for (const auto& entry : http.tokens) {
    try {
      tokens->add(entry.token, entry.agent);
    } catch (const std::invalid_argument& e) {
      throw config_error(entry.origin + ": " + e.what());
    }
  }
  out.tokens = std::move(tokens);
  return out;
}

} // namespace

bool wants_http(const http_config& http) {
  return !http.listen.empty() || http.socket_fd >= 0;
}

void open_http_transport(std::optional<http_transport>& out, asio::io_context& io,
                         const http_config& http, http_session_factory spawn,
                         metrics::registry_ptr metrics) {
  bool activated = http.socket_fd >= 0;
  auto settings = make_http_settings(http);
  bool authenticated = !settings.tokens->empty();
  try {
    out.emplace(io, std::move(settings), std::move(spawn), std::move(metrics));
  } catch (const std::system_error& e) {
    throw config_error(fmt::format(
        "cannot listen on {}: {}",
        activated ? std::string{"the socket passed by systemd"} : http.listen, e.code().message()));
  }
  auto bound = out->local_endpoint();
  auto host = bound.address().is_v6() ? fmt::format("[{}]", bound.address().to_string())
                                      : bound.address().to_string();
  auto where = fmt::format("{}:{}", host, bound.port());
  if (activated) {
    // The socket's address is only known now: the rule finalize_config applies to http.listen.
    if (!bound.address().is_loopback() && !http.allow_remote)
      throw config_error(fmt::format(
          "the socket passed by systemd listens on {}, not a loopback address; serving MCP "
          "beyond this machine needs --allow-remote (http.allow_remote: true), and bearer "
          "tokens (http.tokens)",
          where));
    spdlog::info("http: socket activation: serving the socket systemd passed ({}){}", where,
                 http.listen.empty() ? std::string{}
                                     : fmt::format("; http.listen {} is not bound", http.listen));
  } else {
    spdlog::info("http: bound {} (no socket from systemd)", where);
  }
  // A fixed line on stderr, whatever the log level, so that scripts and tests find the port.
  std::fprintf(stderr, "listening on http://%s/mcp\n", where.c_str());
  std::fflush(stderr);
  if (!bound.address().is_loopback() && !authenticated)
    spdlog::warn("http: serving {} beyond this machine without authentication: anyone who can "
                 "reach it can use the backends; configure http.tokens",
                 where);
}

} // namespace offload
