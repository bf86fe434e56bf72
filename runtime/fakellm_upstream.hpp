#pragma once
// The fake LLM's own small HTTP client, for `--record DIR --upstream URL`: one request on its own
// connection to the real server, reporting the response's head and each piece of its body as it
// arrives. Deliberately separate from the daemon's runtime/http_client: a test tool that shared
// the client under test would share its bugs.

#include "runtime/url.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace offload::fakellm_detail {

struct upstream_head {
  uint16_t status = 0;
  std::string content_type;
  std::optional<std::chrono::seconds> retry_after; // when the header is a number of seconds
  bool chunked = false;
  uint64_t content_length = 0; // not chunked: what the header promises
};

struct upstream_handlers {
  std::function<void(const upstream_head&)> on_head;
  std::function<void(std::string_view)> on_data; // one chunk, or a whole body with a length
  // Called once, last. `complete`: the whole body arrived; otherwise `error` says what broke (and
  // on_head was never called when it broke before the head).
  std::function<void(bool complete, const std::string& error)> on_end;
};

class upstream_call : public std::enable_shared_from_this<upstream_call> {
public:
  using request_type = boost::beast::http::request<boost::beast::http::string_body>;

  upstream_call(boost::asio::any_io_executor executor, http_target upstream, request_type request,
                upstream_handlers handlers);

  void start();

  // Abandons the exchange (the client left); on_end still runs, with an error.
  void cancel();

private:
  void on_resolve(boost::beast::error_code ec,
                  boost::asio::ip::tcp::resolver::results_type results);
  void on_connect(boost::beast::error_code ec, const boost::asio::ip::tcp::endpoint&);
  void on_write(boost::beast::error_code ec, size_t);
  void on_head(boost::beast::error_code ec, size_t);
  void do_read_body();
  void on_body(boost::beast::error_code ec, size_t);
  void deliver(std::string_view data);
  void finish(bool complete, const std::string& error);

  boost::asio::ip::tcp::resolver resolver_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  http_target upstream_;
  request_type request_;
  // A chunked body goes through on_chunk_body into chunk_, one upstream chunk at a time, so the
  // recording keeps the upstream's framing; a body with a length lands in the parser's string.
  boost::beast::http::response_parser<boost::beast::http::string_body> parser_;
  std::string chunk_;
  // The parser keeps a reference to its chunk callback, so the callback lives here.
  std::function<size_t(uint64_t, std::string_view, boost::beast::error_code&)> on_chunk_body_;
  upstream_handlers handlers_; // cleared once finished, which drops what they hold
  bool finished_ = false;
};

} // namespace offload::fakellm_detail
