#pragma once
// The insides of http_transport, shared by its two source files: http_transport.cpp (routing,
// checks, /healthz, /metrics, upkeep) and http_transport_mcp.cpp (the MCP requests and the
// session table). Everything here runs on the I/O thread. Not for other code to include.

#include "protocol/jsonrpc.hpp"
#include "runtime/http_server.hpp"
#include "runtime/http_session.hpp"
#include "runtime/http_transport.hpp"

#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace offload {

namespace http_detail {

// A header value or target as a std::string_view.
template <class View>
std::string_view sv(const View& view) {
  return {view.data(), view.size()};
}

inline const char* health_text(health_state state) {
  switch (state) {
  case health_state::starting:
    return "starting";
  case health_state::ready:
    return "ready";
  case health_state::draining:
    return "draining";
  }
  return "unknown";
}

} // namespace http_detail

struct http_transport::impl : std::enable_shared_from_this<impl> {
  boost::asio::io_context& io;
  http_transport_settings settings;
  http_session_factory spawn;
  metrics::registry_ptr metrics;
  std::optional<http_server> server;
  boost::asio::steady_timer sweep_timer;
  std::atomic<int> health{static_cast<int>(health_state::starting)};
  std::unordered_map<std::string, http_session_ptr> sessions; // by session id
  bool stopped = false;

  impl(boost::asio::io_context& io_context, http_transport_settings config,
       http_session_factory factory, metrics::registry_ptr registry);
  // Binds; throws std::system_error.
  void open();

  // -- answers (each counted in offload_http_requests_total) --------------------------------------

  void count(beast_http::status code);
  void send(const http_connection_ptr& connection, http_response response);
  // A JSON-RPC error without an id.
  void refuse(const http_connection_ptr& connection, beast_http::status code, int rpc_code,
              const std::string& message);
  // A JSON-RPC error answering request `id`.
  void refuse_with_id(const http_connection_ptr& connection, beast_http::status code,
                      const nlohmann::json& id, int rpc_code, const std::string& message);
  // 202 without a body.
  void accepted(const http_connection_ptr& connection);

  // -- routing and checks
  // --------------------------------------------------------------------------

  void handle(const http_connection_ptr& connection, http_request&& request);
  // Sets `agent` when the request carries a known token (or none is needed); else answers 401.
  bool authenticate(const http_connection_ptr& connection, const http_request& request,
                    std::string& agent);
  void serve_health(const http_connection_ptr& connection, const http_request& request);
  void serve_metrics(const http_connection_ptr& connection, const http_request& request);

  // -- MCP requests (http_transport_mcp.cpp) ------------------------------------------------------

  // The session named by the request's Mcp-Session-Id, or null after answering 400/404.
  http_session_ptr find_session(const http_connection_ptr& connection, const http_request& request,
                                const std::string& agent);
  void forward(const http_session_ptr& session, std::string text);
  // After forwarding a client notification: a cancellation frees the request's POST.
  static void notice(const http_session_ptr& session, const jsonrpc::message& msg);
  void handle_post(const http_connection_ptr& connection, http_request& request,
                   const std::string& agent);
  // A JSON-RPC batch: only for sessions on protocol 2025-03-26.
  void handle_batch(const http_connection_ptr& connection, const http_session_ptr& session,
                    jsonrpc::batch& batch);
  void handle_get(const http_connection_ptr& connection, const http_request& request,
                  const std::string& agent);
  void handle_delete(const http_connection_ptr& connection, const http_request& request,
                     const std::string& agent);
  // initialize without a session id: a new session and its actor.
  void create_session(const http_connection_ptr& connection, std::string body,
                      const jsonrpc::message& initialize, const std::string& agent);
  // Removes a session: its POSTs get `code`, its streams end, its actor is told to exit.
  void end_session(const std::string& id, beast_http::status code, const std::string& reason,
                   bool log_info = true);

  // -- upkeep
  // --------------------------------------------------------------------------------------

  void schedule_sweep();
  // Ends the sessions idle for longer than session_idle_timeout.
  void sweep();
  std::vector<mcp_session_actor> stop();
};

} // namespace offload
