#include "runtime/http_session.hpp"

#include "runtime/http_checks.hpp"

#include <boost/beast/http/field.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace offload {

namespace {

using json = nlohmann::json;

// Whether an outgoing message is a response (it has "result" or "error" and no "method"). The
// I/O thread serves every socket, so this reads only the top-level keys and stops at the first
// that decides, instead of parsing what may be a large batch result.
class response_detector : public nlohmann::json_sax<json> {
public:
  bool is_response() const { return decided_ && response_; }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return ++depth_ <= max_depth; }
  bool end_object() override { return --depth_ >= 0; }
  bool start_array(std::size_t) override { return ++depth_ <= max_depth; }
  bool end_array() override { return --depth_ >= 0; }
  bool key(string_t& name) override {
    if (depth_ != 1)
      return true;
    if (name == "method") {
      decided_ = true;
      response_ = false;
      return false; // a request or notification: done
    }
    if (name == "result" || name == "error") {
      decided_ = true;
      response_ = true;
      return false;
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

private:
  static constexpr int max_depth = 512;
  int depth_ = 0;
  bool decided_ = false;
  bool response_ = false;
};

bool is_response(const std::string& text) {
  response_detector detector;
  json::sax_parse(text, &detector);
  return detector.is_response();
}

// The protocol revision an initialize result names, or "" (not a result, or no version).
std::string negotiated_version(const std::string& text) {
  auto value = json::parse(text, nullptr, false);
  if (!value.is_object())
    return {};
  auto result = value.find("result");
  if (result == value.end() || !result->is_object())
    return {};
  auto version = result->find("protocolVersion");
  return version != result->end() && version->is_string() ? version->get<std::string>() : "";
}

std::string join_array(const std::vector<std::string>& texts) {
  std::string out = "[";
  for (const auto& text : texts) {
    if (out.size() > 1)
      out += ',';
    out += text;
  }
  out += ']';
  return out;
}

} // namespace

http_response make_json_response(beast_http::status status, unsigned version, std::string body) {
  http_response response{status, version};
  response.set(beast_http::field::content_type, "application/json");
  response.set(beast_http::field::cache_control, "no-store");
  response.body() = std::move(body);
  return response;
}

http_session::http_session(std::string id, std::string agent, http_session_limits limits,
                           metrics::registry* metrics, std::function<void()> on_failed_init)
    : id_(std::move(id))
    , log_name_(http_checks::session_name(id_))
    , agent_(std::move(agent))
    , limits_(limits)
    , metrics_(metrics)
    , on_failed_init_(std::move(on_failed_init))
    , log_(limits.event_buffer, limits.event_buffer_bytes) {}

bool http_session::idle(clock::time_point now, std::chrono::milliseconds timeout) const {
  return waiting_.empty() && attached_.empty() && now - last_active >= timeout;
}

void http_session::await_responses(const http_connection_ptr& connection,
                                   std::vector<std::string> ids, bool batch, bool initialize,
                                   std::vector<std::string> errors) {
  auto ex = std::make_shared<exchange>();
  ex->connection = connection;
  ex->awaiting = std::move(ids);
  ex->gathered = std::move(errors);
  ex->batch = batch;
  ex->initialize = initialize;
  for (const auto& id : ex->awaiting)
    waiting_[id] = ex;
  connection->on_gone([weak_self = weak_from_this(), weak_ex = std::weak_ptr<exchange>{ex}] {
    auto self = weak_self.lock();
    auto gone = weak_ex.lock();
    if (!self || !gone || gone->stream)
      return; // an SSE stream has its own gone callback (attach)
    gone->connection = nullptr;
    spdlog::debug("{}: a client left before its answer was ready", self->log_name_);
  });
}

void http_session::deliver(const std::string& text, const std::string& related) {
  if (closed_)
    return;
  bool response = is_response(text);
  if (related.empty()) {
    if (response) {
      // The standalone stream must never carry a response (it answers no request).
      spdlog::warn("{}: dropping a response that names no request: {:.200}", log_name_, text);
      return;
    }
    return emit(sse::standalone_stream, text);
  }
  auto it = waiting_.find(related);
  if (it == waiting_.end()) {
    if (response) {
      spdlog::debug("{}: dropping a response to {}, which no POST waits for", log_name_, related);
      return;
    }
    return emit(sse::standalone_stream, text);
  }
  auto ex = it->second;
  if (response) {
    waiting_.erase(it);
    if (auto pos = std::find(ex->awaiting.begin(), ex->awaiting.end(), related);
        pos != ex->awaiting.end())
      ex->awaiting.erase(pos);
    if (ex->initialize)
      protocol_version_ = negotiated_version(text);
  }
  bool complete = response && ex->awaiting.empty();
  bool failed_init = complete && ex->initialize && protocol_version_.empty();
  if (ex->stream) {
    emit(*ex->stream, text);
    if (complete)
      end_stream(*ex->stream);
  } else if (!ex->connection) {
    // JSON mode and the client left: it has no event id to resume from, so notifications go to
    // the standalone stream; the response is lost with the POST.
    if (!response)
      return emit(sse::standalone_stream, text);
    spdlog::info("{}: the client left before the response to {} was ready; dropped it", log_name_,
                 related);
    failed_init = ex->initialize;
  } else if (!response) {
    switch_to_stream(*ex);
    emit(*ex->stream, text);
  } else if (ex->batch) {
    ex->gathered.push_back(text);
    if (complete)
      reply_json(*ex, join_array(ex->gathered));
  } else {
    reply_json(*ex, text);
  }
  if (failed_init && on_failed_init_)
    on_failed_init_(); // last: it removes this session
}

void http_session::cancel(const std::string& request_id) {
  auto it = waiting_.find(request_id);
  if (it == waiting_.end())
    return;
  auto ex = it->second;
  waiting_.erase(it);
  if (auto pos = std::find(ex->awaiting.begin(), ex->awaiting.end(), request_id);
      pos != ex->awaiting.end())
    ex->awaiting.erase(pos);
  spdlog::debug("{}: request {} cancelled by the client", log_name_, request_id);
  if (!ex->awaiting.empty())
    return;
  if (ex->stream) {
    // The stream stays open without its response: a stream that ends without one makes clients
    // resume it, over and over. It ends when the client drops it or the session ends.
    log_.finish(*ex->stream);
  } else if (ex->connection) {
    if (ex->batch && !ex->gathered.empty())
      reply_json(*ex, join_array(ex->gathered));
    else // no response follows a cancelled request; the POST is answered without one
      reply(std::exchange(ex->connection, nullptr),
            http_response{beast_http::status::accepted, 11});
  }
}

void http_session::reply(const http_connection_ptr& connection, http_response response) {
  if (metrics_)
    metrics_->http_requests(static_cast<unsigned>(response.result_int())).inc();
  connection->reply(std::move(response));
}

void http_session::reply_json(exchange& ex, std::string body) {
  auto response = make_json_response(beast_http::status::ok, 11, std::move(body));
  if (ex.initialize && !protocol_version_.empty())
    response.set("Mcp-Session-Id", id_);
  auto connection = std::exchange(ex.connection, nullptr);
  reply(connection, std::move(response));
}

void http_session::switch_to_stream(exchange& ex) {
  auto stream = log_.open_stream();
  ex.stream = stream;
  start_stream(std::exchange(ex.connection, nullptr), stream, ex.initialize);
  // Batch responses that came before the first notification are events like the rest.
  for (const auto& text : ex.gathered)
    emit(stream, text);
  ex.gathered.clear();
}

void http_session::start_stream(const http_connection_ptr& connection, uint64_t stream,
                                bool initialize) {
  http_stream_header header{beast_http::status::ok, 11};
  header.set(beast_http::field::content_type, "text/event-stream");
  header.set(beast_http::field::cache_control, "no-cache");
  if (initialize)
    header.set("Mcp-Session-Id", id_);
  if (metrics_)
    metrics_->http_requests(200).inc();
  connection->open_stream(std::move(header));
  // Older clients try to parse the empty data of a priming event as JSON; only 2025-11-25
  // clients get one (as the official SDKs do).
  if (wants_priming())
    connection->stream(sse::priming_frame(log_.next_id(stream), limits_.sse_retry));
  attach(stream, connection);
}

void http_session::attach(uint64_t stream, const http_connection_ptr& connection) {
  attached_[stream] = connection;
  connection->on_gone([weak_self = weak_from_this(), stream, raw = connection.get()] {
    if (auto self = weak_self.lock())
      self->detach(stream, raw);
  });
}

void http_session::detach(uint64_t stream, const http_connection* connection) {
  auto it = attached_.find(stream);
  if (it != attached_.end() && it->second.get() == connection) {
    attached_.erase(it);
    spdlog::debug("{}: stream {} lost its client; its events stay for a resume", log_name_, stream);
  }
}

void http_session::emit(uint64_t stream, const std::string& text) {
  auto id = log_.append(stream, text);
  if (auto it = attached_.find(stream); it != attached_.end())
    it->second->stream(sse::frame(id, text));
}

void http_session::end_stream(uint64_t stream) {
  log_.finish(stream);
  if (auto it = attached_.find(stream); it != attached_.end()) {
    auto connection = it->second;
    attached_.erase(it);
    connection->close_stream();
  }
}

http_session::get_outcome http_session::open_get(const http_connection_ptr& connection,
                                                 std::optional<sse::event_id> last) {
  if (!last) {
    if (attached_.count(sse::standalone_stream) > 0)
      return get_outcome::conflict;
    start_stream(connection, sse::standalone_stream, false);
    return get_outcome::streaming;
  }
  auto replay = log_.events_after(*last);
  if (replay.status == sse::event_log::replay_status::unknown)
    return get_outcome::unknown_event;
  if (replay.status == sse::event_log::replay_status::lost)
    return get_outcome::lost_events;
  // The client resumes this stream here; whatever still carries it is a connection the client
  // has given up on. Every event goes out on exactly one of them.
  if (auto it = attached_.find(last->stream); it != attached_.end()) {
    auto old = it->second;
    attached_.erase(it);
    old->close();
  }
  http_stream_header header{beast_http::status::ok, 11};
  header.set(beast_http::field::content_type, "text/event-stream");
  header.set(beast_http::field::cache_control, "no-cache");
  if (metrics_)
    metrics_->http_requests(200).inc();
  connection->open_stream(std::move(header));
  for (const auto& [id, data] : replay.events)
    connection->stream(sse::frame(id, data));
  // A finished stream ends after its replay. With nothing to replay it stays open instead: the
  // client has the response already, or the request was cancelled and no response will come;
  // ending it would only make the client resume it again.
  if (replay.finished && !replay.events.empty())
    connection->close_stream();
  else
    attach(last->stream, connection);
  spdlog::debug("{}: resumed stream {} after event {} ({} replayed)", log_name_, last->stream,
                last->seq, replay.events.size());
  return get_outcome::streaming;
}

void http_session::close(beast_http::status status, const std::string& reason) {
  if (closed_)
    return;
  closed_ = true;
  auto body = http_checks::error_body(http_checks::transport_error, reason);
  for (auto& [id, ex] : waiting_) {
    if (auto connection = std::exchange(ex->connection, nullptr))
      reply(connection, make_json_response(status, 11, body));
  }
  waiting_.clear();
  auto streams = std::move(attached_);
  attached_.clear();
  for (auto& [stream, connection] : streams)
    connection->close_stream();
}

} // namespace offload
