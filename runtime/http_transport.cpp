#include "runtime/http_transport.hpp"

#include "protocol/mcp.hpp"
#include "runtime/http_transport_impl.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/field.hpp>
#include <caf/send.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <unordered_map>

namespace offload {

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using status = beast_http::status;
using json = nlohmann::json;
using namespace std::chrono_literals;

using http_detail::health_text;
using http_detail::sv;

} // namespace

http_transport::impl::impl(net::io_context& io_context, http_transport_settings config,
                           http_session_factory factory, metrics::registry_ptr registry)
    : io(io_context)
    , settings(std::move(config))
    , spawn(std::move(factory))
    , metrics(std::move(registry))
    , sweep_timer(io_context) {}

void http_transport::impl::open() {
  http_server_settings limits{settings.max_body_bytes, settings.read_timeout,
                              settings.write_timeout, settings.listen_fd};
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
            : code == status::bad_request
                ? http_checks::error_body(jsonrpc::parse_error,
                                          "Bad Request: the request is not valid HTTP/1.1")
                : http_checks::error_body(jsonrpc::internal_error,
                                          "Internal Server Error: see the daemon's log"));
      });
  // A client that reaches us by the bound address (a LAN address with --allow-remote) names
  // it in Host; it is as legitimate as a loopback name. (An adopted socket's address is only
  // known now.)
  auto address = server->local_endpoint().address();
  if (!address.is_loopback() && !address.is_unspecified())
    settings.allowed_hosts.push_back(address.is_v6() ? fmt::format("[{}]", address.to_string())
                                                     : address.to_string());
}

void http_transport::impl::count(status code) {
  if (metrics)
    metrics->http_requests(static_cast<unsigned>(code)).inc();
}

void http_transport::impl::send(const http_connection_ptr& connection, http_response response) {
  count(response.result());
  connection->reply(std::move(response));
}

void http_transport::impl::refuse(const http_connection_ptr& connection, status code, int rpc_code,
                                  const std::string& message) {
  send(connection, make_json_response(code, 11, http_checks::error_body(rpc_code, message)));
}

void http_transport::impl::refuse_with_id(const http_connection_ptr& connection, status code,
                                          const json& id, int rpc_code,
                                          const std::string& message) {
  send(connection, make_json_response(code, 11, jsonrpc::make_error(id, rpc_code, message)));
}

void http_transport::impl::accepted(const http_connection_ptr& connection) {
  http_response response{status::accepted, 11};
  send(connection, std::move(response));
}

void http_transport::impl::handle(const http_connection_ptr& connection, http_request&& request) {
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

bool http_transport::impl::authenticate(const http_connection_ptr& connection,
                                        const http_request& request, std::string& agent) {
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

void http_transport::impl::serve_health(const http_connection_ptr& connection,
                                        const http_request& request) {
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

void http_transport::impl::serve_metrics(const http_connection_ptr& connection,
                                         const http_request& request) {
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

void http_transport::impl::schedule_sweep() {
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

void http_transport::impl::sweep() {
  auto now = http_session::clock::now();
  std::vector<std::string> expired;
  for (const auto& [id, session] : sessions)
    if (session->idle(now, settings.session_idle_timeout))
      expired.push_back(id);
  for (const auto& id : expired)
    end_session(id, status::not_found,
                fmt::format("idle for {} s", settings.session_idle_timeout.count() / 1000));
}

std::vector<mcp_session_actor> http_transport::impl::stop() {
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
