// The MCP requests of the Streamable HTTP transport: POST (single messages and 2025-03-26
// batches), GET (the standalone stream and resumption), DELETE, and the session table.

#include "protocol/jsonrpc.hpp"
#include "runtime/http_transport_impl.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/http/field.hpp>
#include <caf/send.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <set>

namespace offload {

namespace {

namespace net = boost::asio;
using status = beast_http::status;
using json = nlohmann::json;
using http_detail::health_text;
using http_detail::sv;

} // namespace

http_session_ptr http_transport::impl::find_session(const http_connection_ptr& connection,
                                                    const http_request& request,
                                                    const std::string& agent) {
  auto header = request.find("Mcp-Session-Id");
  if (header == request.end()) {
    refuse(connection, status::bad_request, http_checks::transport_error,
           "Bad Request: the Mcp-Session-Id header is missing; start a session with "
           "initialize");
    return nullptr;
  }
  auto id = sv(header->value());
  auto it = http_checks::plausible_session_id(id) ? sessions.find(std::string{id}) : sessions.end();
  // Another agent's session is answered as if it did not exist: ids must not be guessable
  // into use, and this says nothing about which ids exist.
  if (it == sessions.end() || it->second->agent() != agent) {
    refuse(connection, status::not_found, http_checks::session_not_found,
           "Not Found: no such session (it ended, expired or was deleted); start a new one "
           "with initialize");
    return nullptr;
  }
  it->second->last_active = http_session::clock::now();
  return it->second;
}

void http_transport::impl::forward(const http_session_ptr& session, std::string text) {
  caf::anon_send(session->actor, mcp_in_atom_v, std::move(text));
}

void http_transport::impl::notice(const http_session_ptr& session, const jsonrpc::message& msg) {
  if (msg.type == jsonrpc::kind::notification && msg.method == "notifications/cancelled" &&
      msg.params.is_object() && msg.params.contains("requestId"))
    session->cancel(msg.params["requestId"].dump());
}

void http_transport::impl::handle_post(const http_connection_ptr& connection, http_request& request,
                                       const std::string& agent) {
  auto accept = sv(request[beast_http::field::accept]);
  if (!http_checks::accepts(accept, "application/json") ||
      !http_checks::accepts(accept, "text/event-stream"))
    return refuse(connection, status::not_acceptable, http_checks::transport_error,
                  "Not Acceptable: the Accept header must list both application/json and "
                  "text/event-stream");
  if (!http_checks::is_json(sv(request[beast_http::field::content_type])))
    return refuse(connection, status::unsupported_media_type, http_checks::transport_error,
                  "Unsupported Media Type: Content-Type must be application/json");
  auto parsed = jsonrpc::parse(request.body());
  if (auto* failure = std::get_if<jsonrpc::failure>(&parsed))
    return refuse_with_id(connection, status::bad_request, failure->id, failure->code,
                          failure->message);
  if (request.find("Mcp-Session-Id") == request.end()) {
    auto* msg = std::get_if<jsonrpc::message>(&parsed);
    if (msg && msg->type == jsonrpc::kind::request && msg->method == "initialize")
      return create_session(connection, std::move(request.body()), *msg, agent);
  }
  auto session = find_session(connection, request, agent);
  if (!session)
    return;
  if (auto* batch = std::get_if<jsonrpc::batch>(&parsed))
    return handle_batch(connection, session, *batch);
  auto& msg = std::get<jsonrpc::message>(parsed);
  if (msg.type != jsonrpc::kind::request) {
    forward(session, std::move(request.body()));
    notice(session, msg);
    return accepted(connection);
  }
  auto key = msg.id.dump();
  if (session->is_waiting(key))
    return refuse_with_id(connection, status::bad_request, msg.id, jsonrpc::invalid_request,
                          fmt::format("Invalid Request: request id {} is already used by a "
                                      "request that is still running",
                                      key));
  if (session->inflight() >= settings.max_inflight_per_session)
    return refuse_with_id(
        connection, status::too_many_requests, msg.id, http_checks::transport_error,
        fmt::format("Too Many Requests: {} requests of this session are still running "
                    "(max_inflight_per_session); wait for one to finish",
                    session->inflight()));
  session->await_responses(connection, {key}, false, false);
  forward(session, std::move(request.body()));
}

void http_transport::impl::handle_batch(const http_connection_ptr& connection,
                                        const http_session_ptr& session, jsonrpc::batch& batch) {
  if (session->protocol_version() != "2025-03-26")
    return refuse(connection, status::bad_request, jsonrpc::invalid_request,
                  fmt::format("Invalid Request: JSON-RPC batches (arrays) are only allowed with "
                              "protocol version 2025-03-26; this session uses {}",
                              session->protocol_version().empty() ? "none yet"
                                                                  : session->protocol_version()));
  if (batch.items.empty())
    return refuse(connection, status::bad_request, jsonrpc::invalid_request,
                  "Invalid Request: the batch is empty");
  std::vector<std::string> ids;
  std::set<std::string> seen;
  std::vector<jsonrpc::message> notifications;
  for (size_t i = 0; i < batch.items.size(); ++i) {
    auto parsed = jsonrpc::classify(batch.items[i]);
    std::string problem;
    if (auto* failure = std::get_if<jsonrpc::failure>(&parsed)) {
      problem = failure->message;
    } else if (auto& msg = std::get<jsonrpc::message>(parsed); msg.type == jsonrpc::kind::request) {
      auto key = msg.id.dump();
      if (msg.method == "initialize")
        problem = "initialize must not be part of a batch";
      else if (!seen.insert(key).second || session->is_waiting(key))
        problem = fmt::format("request id {} is used twice", key);
      ids.push_back(std::move(key));
    } else if (msg.type == jsonrpc::kind::notification) {
      notifications.push_back(std::move(msg));
    }
    if (!problem.empty())
      return refuse(connection, status::bad_request, jsonrpc::invalid_request,
                    fmt::format("Invalid Request: batch element {}: {}", i, problem));
  }
  if (session->inflight() + ids.size() > settings.max_inflight_per_session)
    return refuse(connection, status::too_many_requests, http_checks::transport_error,
                  fmt::format("Too Many Requests: this batch would have {} requests of this "
                              "session running, over max_inflight_per_session ({})",
                              session->inflight() + ids.size(), settings.max_inflight_per_session));
  bool has_requests = !ids.empty();
  if (has_requests)
    session->await_responses(connection, std::move(ids), true, false);
  for (auto& item : batch.items)
    forward(session, item.dump(-1, ' ', false, json::error_handler_t::replace));
  for (const auto& msg : notifications)
    notice(session, msg);
  if (!has_requests)
    accepted(connection);
}

void http_transport::impl::create_session(const http_connection_ptr& connection, std::string body,
                                          const jsonrpc::message& initialize,
                                          const std::string& agent) {
  auto state = static_cast<health_state>(health.load());
  if (state != health_state::ready || stopped)
    return refuse(connection, status::service_unavailable, http_checks::transport_error,
                  fmt::format("Service Unavailable: the server is {}", health_text(state)));
  if (sessions.size() >= settings.max_sessions)
    return refuse_with_id(
        connection, status::service_unavailable, initialize.id, http_checks::transport_error,
        fmt::format("Service Unavailable: {} sessions are open (max_sessions); end one with "
                    "DELETE /mcp or try again later",
                    sessions.size()));
  auto id = http_checks::new_session_id();
  auto weak_self = weak_from_this();
  auto session = std::make_shared<http_session>(
      id, agent,
      http_session_limits{settings.sse_retry, settings.event_buffer, settings.event_buffer_bytes},
      metrics.get(), [weak_self, id] {
        if (auto self = weak_self.lock())
          self->end_session(id, status::not_found, "initialize failed", false);
      });
  auto executor = io.get_executor();
  output_sink sink = [weak_session = std::weak_ptr<http_session>{session},
                      executor](std::string text, const std::string& related) {
    net::post(executor, [weak_session, text = std::move(text), related] {
      auto target = weak_session.lock();
      if (!target)
        return; // the session ended; its late messages have nowhere to go
      try {
        target->deliver(text, related);
      } catch (const std::exception& e) {
        // It must not escape into the I/O thread, which serves every other session too.
        spdlog::error("{}: internal error while routing a message: {}", target->log_name(),
                      e.what());
      }
    });
  };
  session->actor = spawn(session_settings{session->log_name(), "", agent}, std::move(sink));
  // A session actor that ends by itself (a bug) must not leave a session that never answers.
  caf::actor_cast<caf::strong_actor_ptr>(session->actor)
      ->get()
      ->attach_functor([weak_self, executor, id, weak_session = std::weak_ptr{session}] {
        net::post(executor, [weak_self, id, weak_session] {
          auto self = weak_self.lock();
          auto ended = weak_session.lock();
          if (!self || !ended)
            return; // already removed: the actor ended because we asked it to
          auto it = self->sessions.find(id);
          if (it != self->sessions.end() && it->second == ended)
            self->end_session(id, status::internal_server_error, "the session ended unexpectedly",
                              false);
        });
      });
  sessions.emplace(id, session);
  if (metrics)
    metrics->sessions(metrics::transport_kind::http).add();
  spdlog::info("{}: new HTTP session{}{}", session->log_name(), agent.empty() ? "" : " of agent ",
               agent);
  session->await_responses(connection, {initialize.id.dump()}, false, true);
  forward(session, std::move(body));
}

void http_transport::impl::end_session(const std::string& id, status code,
                                       const std::string& reason, bool log_info) {
  auto it = sessions.find(id);
  if (it == sessions.end())
    return;
  auto session = it->second;
  sessions.erase(it);
  if (metrics)
    metrics->sessions(metrics::transport_kind::http).sub();
  if (log_info)
    spdlog::info("{}: session ended: {}", session->log_name(), reason);
  else
    spdlog::warn("{}: session ended: {}", session->log_name(), reason);
  session->close(code, "the session ended: " + reason);
  caf::anon_send_exit(session->actor, caf::exit_reason::user_shutdown);
}

void http_transport::impl::handle_get(const http_connection_ptr& connection,
                                      const http_request& request, const std::string& agent) {
  if (!http_checks::accepts(sv(request[beast_http::field::accept]), "text/event-stream"))
    return refuse(connection, status::not_acceptable, http_checks::transport_error,
                  "Not Acceptable: GET /mcp opens an SSE stream; Accept must list "
                  "text/event-stream");
  auto session = find_session(connection, request, agent);
  if (!session)
    return;
  std::optional<sse::event_id> last;
  if (auto header = request.find("Last-Event-ID"); header != request.end()) {
    last = sse::parse_id(sv(header->value()));
    if (!last)
      return refuse(connection, status::bad_request, http_checks::transport_error,
                    "Bad Request: Last-Event-ID is not an event id of this server");
  }
  switch (session->open_get(connection, last)) {
  case http_session::get_outcome::streaming:
    return;
  case http_session::get_outcome::conflict:
    return refuse(connection, status::conflict, http_checks::transport_error,
                  "Conflict: this session's standalone SSE stream is already open; only one "
                  "GET stream per session");
  case http_session::get_outcome::unknown_event:
    return refuse(connection, status::bad_request, http_checks::transport_error,
                  fmt::format("Bad Request: Last-Event-ID {} names no event of this session",
                              sse::format_id(*last)));
  case http_session::get_outcome::lost_events:
    return refuse(connection, status::bad_request, http_checks::transport_error,
                  fmt::format("Bad Request: the events after {} are no longer kept (the "
                              "session keeps its last {} events); they cannot be replayed",
                              sse::format_id(*last), settings.event_buffer));
  }
}

void http_transport::impl::handle_delete(const http_connection_ptr& connection,
                                         const http_request& request, const std::string& agent) {
  auto session = find_session(connection, request, agent);
  if (!session)
    return;
  end_session(session->id(), status::not_found, "deleted by the client");
  send(connection, http_response{status::ok, 11});
}

} // namespace offload
