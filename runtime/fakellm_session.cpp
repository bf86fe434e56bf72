// One HTTP/1.1 connection of `offload fakellm`: reading requests, generating answers and writing
// response plans out frame by frame (fakellm_session.hpp has the whole class).

#include "runtime/fakellm_session.hpp"

#include "protocol/fakellm_ollama.hpp"
#include "protocol/fakellm_openai.hpp"

#include <boost/asio/write.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace offload::fakellm_detail {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using fakellm::api_family;
using fakellm::error_kind;

// Limits of the fake itself; the daemon's own limits live in runtime/defaults.hpp.
// The daemon's largest request (10 tasks, each with 256 KiB of context) fits with room to spare.
constexpr size_t request_body_limit = 16 * 1024 * 1024;
// Idle keep-alive connections and stalled request uploads are closed after this.
constexpr auto request_timeout = 60s;
// A client that stops reading a response for this long is gone.
constexpr auto write_timeout = 30s;
// While a request waits (for a slot, a delay or forever), bytes the client pipelines are kept
// for the next request; past this much, stop reading and let TCP push back.
constexpr size_t pipelined_bytes_limit = 64 * 1024;
constexpr size_t watch_read_size = 4096;

void append_http_chunk(std::string& out, std::string_view data) {
  fmt::format_to(std::back_inserter(out), "{:x}\r\n", data.size());
  out.append(data);
  out.append("\r\n");
}

// Renders a response header with Beast into `out`, so that header and body leave in one write:
// two small writes would meet Nagle and delayed ACKs on the client side.
void append_header(std::string& out, http::response<http::empty_body>& header) {
  http::response_serializer<http::empty_body> serializer{header};
  serializer.split(true);
  beast::error_code ec;
  while (!ec && !serializer.is_header_done()) {
    serializer.next(ec, [&](beast::error_code&, const auto& buffers) {
      for (auto buffer : beast::buffers_range_ref(buffers))
        out.append(static_cast<const char*>(buffer.data()), buffer.size());
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
}

bool is_generation(fakellm::endpoint target) {
  return target == fakellm::endpoint::chat || target == fakellm::endpoint::generate ||
         target == fakellm::endpoint::completions;
}

fakellm::endpoint endpoint_of(fakellm::dialect d) {
  switch (d) {
  case fakellm::dialect::ollama_chat:
    return fakellm::endpoint::chat;
  case fakellm::dialect::ollama_generate:
    return fakellm::endpoint::generate;
  case fakellm::dialect::openai_chat:
    return fakellm::endpoint::completions;
  }
  return fakellm::endpoint::chat;
}

} // namespace

session::session(tcp::socket&& socket, server_state& server)
    : stream_(std::move(socket))
    , server_(server)
    , timer_(stream_.get_executor()) {}

session::~session() {
  release_slot();
  if (auto call = upstream_.lock())
    call->cancel();
}

void session::do_read() {
  phase_ = phase::reading;
  fixed_.reset();
  parser_.emplace();
  parser_->body_limit(request_body_limit);
  stream_.expires_after(request_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&session::on_read, shared_from_this()));
}

void session::on_read(beast::error_code ec, size_t) {
  if (ec == http::error::end_of_stream)
    return do_close();
  if (ec == http::error::body_limit) {
    keep_alive_ = false;
    auto family = fakellm::route_request("", parser_->get().target(), server_.options.api).family;
    return send_error(family, error_kind::too_large, "request body too large");
  }
  if (ec) {
    server_.log->debug("fakellm: read failed: {}", ec.message());
    return do_close();
  }
  const auto& request = parser_->get();
  keep_alive_ = request.keep_alive();
  auto route =
      fakellm::route_request(request.method_string(), request.target(), server_.options.api);
  ++server_.counters.endpoints[static_cast<size_t>(route.target)];
  if (route.target == fakellm::endpoint::not_found)
    return send_error(route.family, error_kind::path_not_found,
                      fmt::format("path {:?} not found", std::string{request.target()}));
  if (!route.method_allowed)
    return send_error(route.family, error_kind::method_not_allowed,
                      fmt::format("method {} not allowed, use {}",
                                  std::string{request.method_string()}, route.allowed_method),
                      route.allowed_method);
  if (fakellm::is_control(route.target)) {
    if (route.target == fakellm::endpoint::plan)
      return handle_put_plan(request);
    return dispatch(route.target, request.body());
  }
  ++server_.arrivals;
  if (server_.loading())
    return reject_while_loading(route);
  if (server_.proxying())
    return handle_proxied(route, request);
  if (!is_generation(route.target) && server_.plan)
    return handle_fixed(route, request.body());
  dispatch(route.target, request.body());
}

void session::reject_while_loading(const fakellm::route& route) {
  if (is_generation(route.target))
    ++server_.counters.requests;
  // A probe of /health is how clients wait for the end of loading, not a rejected request.
  if (route.target != fakellm::endpoint::health)
    ++server_.counters.rejected_loading;
  send_error(route.family, error_kind::loading, std::string{fakellm::loading_message});
}

void session::dispatch(fakellm::endpoint target, const std::string& body) {
  const auto& models = server_.options.models;
  auto json_ok = [&](std::string text) {
    send_plan(fakellm::plan_body(200, fakellm::json_content_type, std::move(text)));
  };
  switch (target) {
  case fakellm::endpoint::root:
    return send_plan(fakellm::plan_body(200, fakellm::text_content_type, "Ollama is running"));
  case fakellm::endpoint::chat:
    return handle_generation(fakellm::dialect::ollama_chat, body);
  case fakellm::endpoint::generate:
    return handle_generation(fakellm::dialect::ollama_generate, body);
  case fakellm::endpoint::completions:
    return handle_generation(fakellm::dialect::openai_chat, body);
  case fakellm::endpoint::tags:
    return json_ok(fakellm::make_tags_body(models));
  case fakellm::endpoint::version:
    return json_ok(fakellm::make_version_body());
  case fakellm::endpoint::ps:
    return json_ok(fakellm::make_ps_body(running_models()));
  case fakellm::endpoint::pull:
    return handle_pull(body);
  case fakellm::endpoint::models:
    return json_ok(fakellm::make_models_body(models));
  case fakellm::endpoint::health:
    return json_ok(std::string{fakellm::health_ok_body});
  case fakellm::endpoint::stats:
    return json_ok(fakellm::make_stats_body(server_.snapshot()));
  case fakellm::endpoint::reset_stats:
    server_.reset();
    return json_ok(fakellm::make_stats_body(server_.snapshot()));
  case fakellm::endpoint::plan: // needs the whole request: on_read hands it to handle_put_plan
  case fakellm::endpoint::not_found:
    break;
  }
}

std::vector<fakellm::running_model> session::running_models() const {
  std::vector<fakellm::running_model> result;
  for (auto& [name, until] : server_.residency.loaded(std::chrono::system_clock::now()))
    result.push_back({name, until});
  return result;
}

void session::handle_pull(const std::string& body) {
  auto parsed = fakellm::parse_pull_request(body);
  if (!parsed.ok())
    return send_error(api_family::ollama, error_kind::bad_request, parsed.error);
  server_.counters.count_model(fakellm::endpoint::pull, parsed.request.model);
  bool available = fakellm::serves_model(server_.options.models, parsed.request.model);
  send_plan(fakellm::plan_pull(parsed.request, available));
}

void session::handle_generation(fakellm::dialect dialect, const std::string& body) {
  ++server_.counters.requests;
  auto family = fakellm::family_of(dialect);
  auto parsed = dialect == fakellm::dialect::ollama_chat ? fakellm::parse_chat_request(body)
                : dialect == fakellm::dialect::ollama_generate
                    ? fakellm::parse_generate_request(body)
                    : fakellm::parse_openai_chat_request(body);
  if (!parsed.ok())
    return send_error(family, error_kind::bad_request, parsed.error);
  server_.counters.count_model(endpoint_of(dialect), parsed.request.model);
  auto served = fakellm::find_served_model(server_.options.models, parsed.request.model);
  if (!served)
    return send_error(family, error_kind::model_not_found,
                      fakellm::model_not_found_message(parsed.request.model));
  dialect_ = dialect;
  chat_ = std::move(parsed.request);
  served_model_ = std::move(*served);
  if (chat_.preload) {
    auto now = std::chrono::system_clock::now();
    server_.residency.touch(served_model_, now, chat_.keep_alive);
    return send_plan(fakellm::plan_preload(dialect_, chat_, now));
  }
  action_ = choose_action(dialect);
  if (server_.slots.try_acquire())
    return on_slot_granted();
  if (!server_.slots.can_wait()) {
    ++server_.counters.rejected_busy;
    return send_error(family, error_kind::busy, std::string{fakellm::server_busy_message});
  }
  phase_ = phase::queued;
  ticket_ = server_.slots.enqueue([self = shared_from_this()] { self->on_slot_granted(); });
  do_watch();
}

void session::on_slot_granted() {
  holding_slot_ = true;
  ticket_.reset();
  auto wait = fakellm::wait_before_response(action_, chat_);
  if (wait == 0ms)
    return stop_watching_then(after_watch::generate);
  phase_ = phase::delaying;
  if (!watching_)
    do_watch();
  timer_.expires_after(wait);
  timer_.async_wait(beast::bind_front_handler(&session::on_wait_elapsed, shared_from_this()));
}

void session::on_wait_elapsed(beast::error_code ec) {
  if (ec || phase_ != phase::delaying)
    return;
  stop_watching_then(after_watch::generate);
}

// While a request waits, a pending read is the only way to learn that the client hung up; the
// waiting request then gives up its place or slot. No timeout: waiting is deliberate here.
void session::do_watch() {
  watching_ = true;
  stream_.expires_never();
  stream_.async_read_some(buffer_.prepare(watch_read_size),
                          beast::bind_front_handler(&session::on_watch, shared_from_this()));
}

void session::on_watch(beast::error_code ec, size_t bytes) {
  watching_ = false;
  if (phase_ == phase::closed)
    return;
  if (!ec) {
    buffer_.commit(bytes); // a pipelined next request, parsed once this one is answered
    if (after_watch_ == after_watch::nothing) {
      if (buffer_.size() < pipelined_bytes_limit)
        do_watch();
      return;
    }
  } else if (ec != net::error::operation_aborted) {
    return client_gone(ec);
  }
  continue_with(std::exchange(after_watch_, after_watch::nothing));
}

// A read may not overlap the response's writes, nor the next request's read, so the watch is
// cancelled and the work continues from its completion handler.
void session::stop_watching_then(after_watch next) {
  if (!watching_)
    return continue_with(next);
  after_watch_ = next;
  stream_.cancel();
}

void session::continue_with(after_watch next) {
  switch (next) {
  case after_watch::nothing:
    return;
  case after_watch::generate:
    return generate();
  case after_watch::write_frames:
    return write_frames(true);
  }
}

void session::client_gone(beast::error_code ec) {
  server_.log->debug("fakellm: client left while its request waited: {}", ec.message());
  if (ticket_) {
    server_.slots.cancel(*ticket_);
    ticket_.reset();
  }
  timer_.cancel();
  release_slot();
  do_close();
}

void session::generate() {
  if (fixed_)
    return finish_fixed();
  for (auto f : action_.applied)
    ++server_.counters.faults[static_cast<size_t>(f)];
  if (action_.response == fakellm::response_kind::hang) {
    phase_ = phase::hanging;
    return do_watch();
  }
  auto now = std::chrono::system_clock::now();
  if (fakellm::carries_answer(action_.response))
    server_.residency.touch(served_model_, now, chat_.keep_alive);
  send_plan(fakellm::plan_generation(dialect_, chat_, action_, {now, ++server_.completions}));
}

void session::send_error(api_family family, error_kind kind, std::string message,
                         std::string_view allow) {
  auto plan = fakellm::plan_error(family, fakellm::make_error_reply(kind, std::move(message)));
  server_.log->debug("fakellm: {} {}", plan.status, plan.body);
  plan.allow = allow;
  send_plan(std::move(plan));
}

void session::send_plan(fakellm::response_plan plan) {
  plan_ = std::move(plan);
  next_frame_ = 0;
  http::response<http::empty_body> header{static_cast<http::status>(plan_.status), 11};
  header.set(http::field::server, "offload-fakellm");
  header.set(http::field::content_type, plan_.content_type);
  if (plan_.content_type == fakellm::sse_content_type)
    header.set(http::field::cache_control, "no-cache");
  if (plan_.retry_after)
    header.set(http::field::retry_after, std::to_string(plan_.retry_after->count()));
  if (!plan_.allow.empty())
    header.set(http::field::allow, plan_.allow);
  header.keep_alive(keep_alive_);
  if (plan_.streamed)
    header.chunked(true);
  else
    header.content_length(plan_.content_length);
  wire_.clear();
  append_header(wire_, header);
  write_frames(false);
}

// Writes the frames up to the next one that has to wait; `waited`: the first has waited.
void session::write_frames(bool waited) {
  for (bool first = true; next_frame_ < plan_.frames.size(); ++next_frame_, first = false) {
    if (plan_.frames[next_frame_].delay > 0ms && !(first && waited))
      break;
    auto bytes = plan_.frame_bytes(next_frame_);
    if (!plan_.streamed)
      wire_.append(bytes);
    else if (!bytes.empty()) // an empty chunk would end the body
      append_http_chunk(wire_, bytes);
  }
  if (next_frame_ == plan_.frames.size() && relay_open_ && wire_.empty()) {
    // Relaying: nothing to write until the upstream sends more.
    phase_ = phase::relaying;
    return;
  }
  if (next_frame_ == plan_.frames.size() && plan_.streamed && !plan_.cut && !relay_open_)
    wire_.append("0\r\n\r\n");
  phase_ = phase::writing;
  stream_.expires_after(write_timeout);
  net::async_write(stream_, net::buffer(wire_),
                   beast::bind_front_handler(&session::on_write, shared_from_this()));
}

void session::on_write(beast::error_code ec, size_t) {
  if (ec) {
    release_slot();
    server_.log->debug("fakellm: write failed: {}", ec.message());
    return do_close();
  }
  wire_.clear();
  if (next_frame_ < plan_.frames.size()) {
    // Between frames the client may leave; watching for that frees its slot at once.
    phase_ = phase::pausing;
    do_watch();
    timer_.expires_after(plan_.frames[next_frame_].delay);
    timer_.async_wait(beast::bind_front_handler(&session::on_pause_elapsed, shared_from_this()));
    return;
  }
  if (relay_open_) {
    phase_ = phase::relaying; // the upstream's next piece, or its end, writes again
    return;
  }
  release_slot();
  if (plan_.cut) {
    // The injected drop: no terminator, no graceful shutdown, just gone.
    phase_ = phase::closed;
    return stream_.close();
  }
  if (!keep_alive_)
    return do_close();
  do_read();
}

void session::on_pause_elapsed(beast::error_code ec) {
  if (ec || phase_ != phase::pausing)
    return;
  stop_watching_then(after_watch::write_frames);
}

void session::release_slot() {
  if (std::exchange(holding_slot_, false))
    server_.slots.release();
}

void session::do_close() {
  phase_ = phase::closed;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.socket().close(ec);
}

void start_session(tcp::socket socket, server_state& server) {
  std::make_shared<session>(std::move(socket), server)->run();
}

} // namespace offload::fakellm_detail
