#include "runtime/http_transport.hpp"

#include "protocol/jsonrpc.hpp"
#include "protocol/mcp.hpp"
#include "runtime/http_server.hpp"
#include "runtime/http_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/field.hpp>
#include <caf/send.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <unordered_map>

namespace offload {

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using status = beast_http::status;
using json = nlohmann::json;
using namespace std::chrono_literals;

template <class View>
std::string_view sv(const View& view) {
  return {view.data(), view.size()};
}

const char* health_text(health_state state) {
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

} // namespace

struct http_transport::impl : std::enable_shared_from_this<impl> {
  net::io_context& io;
  http_transport_settings settings;
  http_session_factory spawn;
  metrics::registry_ptr metrics;
  std::optional<http_server> server;
  net::steady_timer sweep_timer;
  std::atomic<int> health{static_cast<int>(health_state::starting)};
  std::unordered_map<std::string, http_session_ptr> sessions;
  bool stopped = false;

  impl(net::io_context& io_context, http_transport_settings config, http_session_factory factory,
       metrics::registry_ptr registry)
      : io(io_context)
      , settings(std::move(config))
      , spawn(std::move(factory))
      , metrics(std::move(registry))
      , sweep_timer(io_context) {
    // A client that reaches us by the bound address (a LAN address with --allow-remote) names
    // it in Host; it is as legitimate as a loopback name.
    auto address = settings.listen.address();
    if (!address.is_loopback() && !address.is_unspecified())
      settings.allowed_hosts.push_back(address.is_v6() ? "[" + address.to_string() + "]"
                                                       : address.to_string());
  }

  void open() {
    http_server_settings limits{settings.max_body_bytes, settings.read_timeout,
                                settings.write_timeout};
    server.emplace(
        io, settings.listen, limits,
        [this](const http_connection_ptr& connection, http_request&& request) {
          handle(connection, std::move(request));
        },
        [this](status code, unsigned) {
          count(code);
          return make_json_response(
              code, 11,
              code == status::payload_too_large
                  ? http_checks::error_body(
                        http_checks::transport_error,
                        fmt::format("Payload Too Large: the body exceeds max_body_bytes ({} bytes)",
                                    settings.max_body_bytes))
                  : http_checks::error_body(jsonrpc::parse_error,
                                            "Bad Request: the request is not valid HTTP/1.1"));
        });
  }

  // -- answers -----------------------------------------------------------------------------------

  void count(status code) {
    if (metrics)
      metrics->http_requests(static_cast<unsigned>(code)).inc();
  }

  void send(const http_connection_ptr& connection, http_response response) {
    count(response.result());
    connection->reply(std::move(response));
  }

  void refuse(const http_connection_ptr& connection, status code, int rpc_code,
              const std::string& message) {
    send(connection, make_json_response(code, 11, http_checks::error_body(rpc_code, message)));
  }

  void refuse_with_id(const http_connection_ptr& connection, status code, const json& id,
                      int rpc_code, const std::string& message) {
    send(connection, make_json_response(code, 11, jsonrpc::make_error(id, rpc_code, message)));
  }

  void accepted(const http_connection_ptr& connection) {
    http_response response{status::accepted, 11};
    send(connection, std::move(response));
  }

  // -- routing -----------------------------------------------------------------------------------

  void handle(const http_connection_ptr& connection, http_request&& request) {
    auto target = sv(request.target());
    auto path = target.substr(0, target.find('?'));
    auto host = sv(request[beast_http::field::host]);
    if (!http_checks::host_allowed(host, settings.allowed_hosts)) {
      spdlog::info("http: refused a request for Host {:?} (DNS rebinding protection)",
                   std::string{host.substr(0, 100)});
      return refuse(connection, status::forbidden, http_checks::transport_error,
                    fmt::format("Forbidden: Host {:?} is not allowed; add it to http.allowed_hosts",
                                std::string{host.substr(0, 100)}));
    }
    if (auto origin = request.find(beast_http::field::origin);
        origin != request.end() &&
        !http_checks::origin_allowed(sv(origin->value()), settings.allowed_origins)) {
      auto text = std::string{sv(origin->value()).substr(0, 100)};
      spdlog::info("http: refused a request from Origin {:?}", text);
      return refuse(connection, status::forbidden, http_checks::transport_error,
                    fmt::format("Forbidden: Origin {:?} is not allowed; add it to "
                                "http.allowed_origins",
                                text));
    }
    if (path == "/healthz")
      return serve_health(connection, request);
    if (path == "/metrics")
      return serve_metrics(connection, request);
    if (path != "/mcp")
      return refuse(connection, status::not_found, http_checks::transport_error,
                    "Not Found: the MCP endpoint is /mcp");
    std::string agent;
    if (!authenticate(connection, request, agent))
      return;
    if (auto version = request.find("MCP-Protocol-Version");
        version != request.end() && !mcp::is_supported_version(sv(version->value())))
      return refuse(connection, status::bad_request, http_checks::transport_error,
                    fmt::format("Bad Request: unsupported MCP-Protocol-Version {:?} (supported: "
                                "2025-11-25, 2025-06-18, 2025-03-26)",
                                std::string{sv(version->value()).substr(0, 40)}));
    switch (request.method()) {
    case beast_http::verb::post:
      return handle_post(connection, request, agent);
    case beast_http::verb::get:
      return handle_get(connection, request, agent);
    case beast_http::verb::delete_:
      return handle_delete(connection, request, agent);
    default: {
      auto response = make_json_response(
          status::method_not_allowed, 11,
          http_checks::error_body(http_checks::transport_error,
                                  "Method Not Allowed: use POST, GET or DELETE on /mcp"));
      response.set(beast_http::field::allow, "GET, POST, DELETE");
      return send(connection, std::move(response));
    }
    }
  }

  // Sets `agent` when the request carries a known token (or none is needed); else answers 401.
  bool authenticate(const http_connection_ptr& connection, const http_request& request,
                    std::string& agent) {
    if (!settings.tokens || settings.tokens->empty())
      return true;
    auto token = http_checks::bearer_token(sv(request[beast_http::field::authorization]));
    if (token) {
      if (auto known = settings.tokens->agent_for(*token)) {
        agent = std::move(*known);
        return true;
      }
    }
    spdlog::info("http: refused a request with {} bearer token", token ? "an unknown" : "no");
    auto response = make_json_response(
        status::unauthorized, 11,
        http_checks::error_body(http_checks::transport_error,
                                token ? "Unauthorized: the bearer token is not valid"
                                      : "Unauthorized: send Authorization: Bearer <token>"));
    response.set(beast_http::field::www_authenticate,
                 token ? "Bearer realm=\"offload\", error=\"invalid_token\""
                       : "Bearer realm=\"offload\"");
    send(connection, std::move(response));
    return false;
  }

  void serve_health(const http_connection_ptr& connection, const http_request& request) {
    if (request.method() != beast_http::verb::get)
      return refuse(connection, status::method_not_allowed, http_checks::transport_error,
                    "Method Not Allowed: use GET /healthz");
    auto state = static_cast<health_state>(health.load());
    http_response response{state == health_state::ready ? status::ok : status::service_unavailable,
                           11};
    response.set(beast_http::field::content_type, "text/plain; charset=utf-8");
    response.set(beast_http::field::cache_control, "no-store");
    response.body() = std::string{health_text(state)} + "\n";
    send(connection, std::move(response));
  }

  void serve_metrics(const http_connection_ptr& connection, const http_request& request) {
    if (request.method() != beast_http::verb::get)
      return refuse(connection, status::method_not_allowed, http_checks::transport_error,
                    "Method Not Allowed: use GET /metrics");
    std::string agent;
    if (!authenticate(connection, request, agent))
      return;
    http_response response{status::ok, 11};
    response.set(beast_http::field::content_type, metrics::registry::content_type);
    response.set(beast_http::field::cache_control, "no-store");
    count(status::ok); // this response is part of what it reports
    response.body() = metrics ? metrics->render() : std::string{};
    connection->reply(std::move(response));
  }

  // The session named by the request's Mcp-Session-Id, or null after answering 400/404.
  http_session_ptr find_session(const http_connection_ptr& connection, const http_request& request,
                                const std::string& agent) {
    auto header = request.find("Mcp-Session-Id");
    if (header == request.end()) {
      refuse(connection, status::bad_request, http_checks::transport_error,
             "Bad Request: the Mcp-Session-Id header is missing; start a session with "
             "initialize");
      return nullptr;
    }
    auto id = sv(header->value());
    auto it =
        http_checks::plausible_session_id(id) ? sessions.find(std::string{id}) : sessions.end();
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

  void forward(const http_session_ptr& session, std::string text) {
    caf::anon_send(session->actor, mcp_in_atom_v, std::move(text));
  }

  // -- POST --------------------------------------------------------------------------------------

  void handle_post(const http_connection_ptr& connection, http_request& request,
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

  void handle_batch(const http_connection_ptr& connection, const http_session_ptr& session,
                    jsonrpc::batch& batch) {
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
    for (size_t i = 0; i < batch.items.size(); ++i) {
      auto parsed = jsonrpc::classify(batch.items[i]);
      std::string problem;
      if (auto* failure = std::get_if<jsonrpc::failure>(&parsed)) {
        problem = failure->message;
      } else if (auto& msg = std::get<jsonrpc::message>(parsed);
                 msg.type == jsonrpc::kind::request) {
        auto key = msg.id.dump();
        if (msg.method == "initialize")
          problem = "initialize must not be part of a batch";
        else if (!seen.insert(key).second || session->is_waiting(key))
          problem = fmt::format("request id {} is used twice", key);
        ids.push_back(std::move(key));
      }
      if (!problem.empty())
        return refuse(connection, status::bad_request, jsonrpc::invalid_request,
                      fmt::format("Invalid Request: batch element {}: {}", i, problem));
    }
    if (session->inflight() + ids.size() > settings.max_inflight_per_session)
      return refuse(connection, status::too_many_requests, http_checks::transport_error,
                    fmt::format("Too Many Requests: this batch would have {} requests of this "
                                "session running, over max_inflight_per_session ({})",
                                session->inflight() + ids.size(),
                                settings.max_inflight_per_session));
    bool has_requests = !ids.empty();
    if (has_requests)
      session->await_responses(connection, std::move(ids), true, false);
    for (auto& item : batch.items)
      forward(session, item.dump(-1, ' ', false, json::error_handler_t::replace));
    if (!has_requests)
      accepted(connection);
  }

  // -- sessions ----------------------------------------------------------------------------------

  void create_session(const http_connection_ptr& connection, std::string body,
                      const jsonrpc::message& initialize, const std::string& agent) {
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
        if (auto target = weak_session.lock())
          target->deliver(text, related);
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

  // Removes a session: its POSTs get `code`, its streams end, its actor is told to exit.
  void end_session(const std::string& id, status code, const std::string& reason,
                   bool log_info = true) {
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

  // -- GET and DELETE ----------------------------------------------------------------------------

  void handle_get(const http_connection_ptr& connection, const http_request& request,
                  const std::string& agent) {
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

  void handle_delete(const http_connection_ptr& connection, const http_request& request,
                     const std::string& agent) {
    auto session = find_session(connection, request, agent);
    if (!session)
      return;
    end_session(session->id(), status::not_found, "deleted by the client");
    send(connection, http_response{status::ok, 11});
  }

  // -- upkeep ------------------------------------------------------------------------------------

  void schedule_sweep() {
    auto interval =
        std::clamp<std::chrono::milliseconds>(settings.session_idle_timeout / 4, 10ms, 30s);
    sweep_timer.expires_after(interval);
    sweep_timer.async_wait([weak_self = weak_from_this()](boost::system::error_code ec) {
      auto self = weak_self.lock();
      if (ec || !self || self->stopped)
        return;
      self->sweep();
      self->schedule_sweep();
    });
  }

  void sweep() {
    auto now = http_session::clock::now();
    std::vector<std::string> expired;
    for (const auto& [id, session] : sessions)
      if (session->idle(now, settings.session_idle_timeout))
        expired.push_back(id);
    for (const auto& id : expired)
      end_session(id, status::not_found,
                  fmt::format("idle for {} s", settings.session_idle_timeout.count() / 1000));
  }

  std::vector<mcp_session_actor> stop() {
    stopped = true;
    health.store(static_cast<int>(health_state::draining));
    sweep_timer.cancel();
    std::vector<mcp_session_actor> actors;
    auto all = std::move(sessions);
    sessions.clear();
    for (auto& [id, session] : all) {
      if (metrics)
        metrics->sessions(metrics::transport_kind::http).sub();
      session->close(status::service_unavailable, "the server is shutting down");
      caf::anon_send_exit(session->actor, caf::exit_reason::user_shutdown);
      actors.push_back(session->actor);
    }
    if (server)
      server->stop();
    return actors;
  }
};

http_transport::http_transport(net::io_context& io, http_transport_settings settings,
                               http_session_factory spawn, metrics::registry_ptr metrics)
    : impl_(std::make_shared<impl>(io, std::move(settings), std::move(spawn), std::move(metrics))) {
  impl_->open();
}

http_transport::~http_transport() = default;

tcp::endpoint http_transport::local_endpoint() const {
  return impl_->server->local_endpoint();
}

void http_transport::start() {
  impl_->server->start();
  impl_->schedule_sweep();
}

void http_transport::set_health(health_state state) noexcept {
  impl_->health.store(static_cast<int>(state));
}

std::vector<mcp_session_actor> http_transport::stop() {
  return impl_->stop();
}

void http_transport::for_each_session(
    const std::function<void(const mcp_session_actor&)>& fn) const {
  for (const auto& [id, session] : impl_->sessions)
    fn(session->actor);
}

size_t http_transport::session_count() const {
  return impl_->sessions.size();
}

} // namespace offload
