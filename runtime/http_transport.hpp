#pragma once
// The Streamable HTTP transport of MCP (revision 2025-11-25; 2025-06-18 and 2025-03-26 clients
// are served too): POST/GET/DELETE /mcp, plus GET /healthz and GET /metrics. It runs on the
// daemon's io_context thread and talks to session actors only by message: requests go in with
// anon_send, answers come back through each session's output sink, posted onto the I/O thread.
//
// Before anything reaches a session, a request passes, in this order: Host and Origin (403),
// the route (404), the bearer token when tokens are configured (401), MCP-Protocol-Version
// (400), the method (405), Accept (406), Content-Type (415), the JSON-RPC parse (400), the
// session id (400 when missing, 404 when unknown), and the limits (413 body size, 429 requests
// in flight, 503 sessions). Every refusal has a JSON-RPC error body saying why.

#include "actors/spawn.hpp"
#include "runtime/http_checks.hpp"
#include "runtime/metrics.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace offload {

struct http_transport_settings {
  boost::asio::ip::tcp::endpoint listen;
  // A TCP socket that already listens (socket activation), served instead of binding `listen`;
  // the transport owns it from then on. -1: bind `listen`.
  int listen_fd = -1;
  std::vector<std::string> allowed_origins; // besides loopback origins
  std::vector<std::string> allowed_hosts;   // besides loopback names and the bound address
  std::chrono::milliseconds session_idle_timeout{0};
  size_t max_sessions = 0;
  size_t max_body_bytes = 0;
  size_t max_inflight_per_session = 0;
  std::chrono::milliseconds sse_retry{0};
  size_t event_buffer = 0;
  size_t event_buffer_bytes = 0;
  std::chrono::milliseconds read_timeout{0};
  std::chrono::milliseconds write_timeout{0};
  // Bearer tokens and their agents; null or empty: no authentication.
  std::shared_ptr<const http_checks::token_table> tokens;
};

enum class health_state : int { starting, ready, draining };

// Spawns the actor of a new session. `settings.agent` is the authenticated agent (or empty).
using http_session_factory = std::function<mcp_session_actor(session_settings, output_sink)>;

class http_transport {
public:
  // Binds at once, or adopts settings.listen_fd (throws std::system_error if the address is
  // taken or not local, or the socket cannot be adopted).
  http_transport(boost::asio::io_context& io, http_transport_settings settings,
                 http_session_factory spawn, metrics::registry_ptr metrics);
  ~http_transport();
  http_transport(const http_transport&) = delete;
  http_transport& operator=(const http_transport&) = delete;

  // The bound address, with the real port when 0 was asked for.
  boost::asio::ip::tcp::endpoint local_endpoint() const;

  // Accepting and the idle-session sweep start; call on the I/O thread (or before it runs).
  void start();

  // GET /healthz answers 200 only when ready; new sessions are refused unless ready. Any thread.
  void set_health(health_state state) noexcept;

  // On the I/O thread: stops accepting, ends every session (waiting requests get 503, streams
  // end) and returns their actors, which were sent an exit, for the caller to wait for.
  std::vector<mcp_session_actor> stop();

  // On the I/O thread: calls `fn` with every live session's actor (e.g. a policy reload).
  void for_each_session(const std::function<void(const mcp_session_actor&)>& fn) const;

  size_t session_count() const;

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace offload
