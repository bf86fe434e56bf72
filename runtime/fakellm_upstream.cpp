#include "runtime/fakellm_upstream.hpp"

#include <charconv>

namespace offload::fakellm_detail {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using namespace std::chrono_literals;

// A real model may think for minutes before its first token, and between tokens on a loaded GPU.
constexpr auto connect_timeout = 10s;
constexpr auto read_timeout = 600s;
// Recorded answers are text; anything this large is not an LLM answer.
constexpr uint64_t response_body_limit = 256 * 1024 * 1024;

std::optional<std::chrono::seconds> seconds_header(std::string_view value) {
  int64_t seconds = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec != std::errc{} || end != value.data() + value.size() || seconds < 0)
    return std::nullopt;
  return std::chrono::seconds{seconds};
}

} // namespace

upstream_call::upstream_call(net::any_io_executor executor, http_target upstream,
                             request_type request, upstream_handlers handlers)
    : resolver_(executor)
    , stream_(executor)
    , upstream_(std::move(upstream))
    , request_(std::move(request))
    , handlers_(std::move(handlers)) {
  parser_.body_limit(response_body_limit);
  on_chunk_body_ = [this](uint64_t remain, std::string_view data, beast::error_code& ec) {
    chunk_.append(data);
    // The chunk is whole: stop the read here so that it goes out as one frame.
    if (remain == data.size())
      ec = http::error::end_of_chunk;
    return data.size();
  };
  parser_.on_chunk_body(on_chunk_body_);
}

void upstream_call::start() {
  resolver_.async_resolve(
      upstream_.host, upstream_.port,
      beast::bind_front_handler(&upstream_call::on_resolve, shared_from_this()));
}

void upstream_call::cancel() {
  resolver_.cancel();
  beast::error_code ec;
  stream_.socket().close(ec);
}

void upstream_call::on_resolve(beast::error_code ec, net::ip::tcp::resolver::results_type results) {
  if (ec)
    return finish(false, "cannot resolve " + upstream_.host + ": " + ec.message());
  stream_.expires_after(connect_timeout);
  stream_.async_connect(results,
                        beast::bind_front_handler(&upstream_call::on_connect, shared_from_this()));
}

void upstream_call::on_connect(beast::error_code ec, const net::ip::tcp::endpoint&) {
  if (ec)
    return finish(false, "cannot connect to " + upstream_.display() + ": " + ec.message());
  stream_.expires_after(read_timeout);
  http::async_write(stream_, request_,
                    beast::bind_front_handler(&upstream_call::on_write, shared_from_this()));
}

void upstream_call::on_write(beast::error_code ec, size_t) {
  if (ec)
    return finish(false, "sending the request failed: " + ec.message());
  stream_.expires_after(read_timeout);
  http::async_read_header(stream_, buffer_, parser_,
                          beast::bind_front_handler(&upstream_call::on_head, shared_from_this()));
}

void upstream_call::on_head(beast::error_code ec, size_t) {
  if (ec)
    return finish(false, "reading the response header failed: " + ec.message());
  const auto& response = parser_.get();
  upstream_head head;
  head.status = static_cast<uint16_t>(response.result_int());
  head.content_type = std::string{response[http::field::content_type]};
  head.retry_after = seconds_header(response[http::field::retry_after]);
  head.chunked = parser_.chunked();
  head.content_length = parser_.content_length().value_or(0);
  if (handlers_.on_head)
    handlers_.on_head(head);
  if (parser_.is_done())
    return finish(true, {});
  do_read_body();
}

void upstream_call::do_read_body() {
  stream_.expires_after(read_timeout);
  http::async_read(stream_, buffer_, parser_,
                   beast::bind_front_handler(&upstream_call::on_body, shared_from_this()));
}

void upstream_call::deliver(std::string_view data) {
  if (!data.empty() && handlers_.on_data)
    handlers_.on_data(data);
}

void upstream_call::on_body(beast::error_code ec, size_t) {
  if (ec == http::error::end_of_chunk) {
    deliver(chunk_);
    chunk_.clear();
    if (parser_.is_done())
      return finish(true, {});
    return do_read_body();
  }
  // What arrived before the end or the break: the rest of a chunk, or a body with a length.
  deliver(chunk_);
  chunk_.clear();
  deliver(parser_.get().body());
  parser_.get().body().clear();
  if (ec)
    return finish(false, "the body broke off: " + ec.message());
  finish(true, {});
}

void upstream_call::finish(bool complete, const std::string& error) {
  if (std::exchange(finished_, true))
    return;
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
  auto handlers = std::move(handlers_);
  handlers_ = {};
  if (handlers.on_end)
    handlers.on_end(complete, error);
}

} // namespace offload::fakellm_detail
