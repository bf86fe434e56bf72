#pragma once
// A blocking HTTP/1.1 client for the transport tests: one socket, raw requests, responses read
// whole or (for SSE) event by event. Every read gives up after a few seconds, so that a server
// that never answers fails the test instead of hanging it.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <fmt/format.h>

#include <sys/socket.h>
#include <sys/time.h>

#include <map>
#include <string>
#include <vector>

namespace offload::test {

namespace client_http = boost::beast::http;

struct sse_event {
  std::string id;
  std::string data;
  std::string retry;
};

class http_test_client {
public:
  explicit http_test_client(unsigned short port)
      : socket_(io_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    timeval limit{10, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  }

  // Sends a request; `headers` are added as given (Host defaults to 127.0.0.1).
  void send(const std::string& method, const std::string& target,
            std::map<std::string, std::string> headers, const std::string& body = "") {
    if (headers.count("Host") == 0)
      headers["Host"] = "127.0.0.1";
    std::string text = fmt::format("{} {} HTTP/1.1\r\n", method, target);
    for (const auto& [name, value] : headers)
      text += name + ": " + value + "\r\n";
    if (!body.empty() || method == "POST")
      text += fmt::format("Content-Length: {}\r\n", body.size());
    text += "\r\n" + body;
    boost::asio::write(socket_, boost::asio::buffer(text));
  }

  // Reads one complete response.
  client_http::response<client_http::string_body> read() {
    client_http::response_parser<client_http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    client_http::read(socket_, buffer_, parser);
    return parser.release();
  }

  // Reads a response's header only: the body is an SSE stream, read with next_event().
  const client_http::response_parser<client_http::string_body>::value_type& read_header() {
    parser_.emplace();
    parser_->body_limit(64 * 1024 * 1024);
    client_http::read_header(socket_, buffer_, *parser_);
    consumed_ = 0;
    return parser_->get();
  }

  // The next event of the stream opened by read_header(); throws at the stream's end.
  sse_event next_event() {
    for (;;) {
      auto& body = parser_->get().body();
      auto end = body.find("\n\n", consumed_);
      if (end != std::string::npos) {
        auto block = body.substr(consumed_, end - consumed_);
        consumed_ = end + 2;
        return parse_event(block);
      }
      if (parser_->is_done())
        throw std::runtime_error("the SSE stream ended");
      client_http::read_some(socket_, buffer_, *parser_);
    }
  }

  // Reads events until the stream ends.
  std::vector<sse_event> rest_of_stream() {
    std::vector<sse_event> out;
    for (;;) {
      try {
        out.push_back(next_event());
      } catch (const std::runtime_error&) {
        return out;
      }
    }
  }

  bool stream_done() const { return parser_ && parser_->is_done(); }

  void close() {
    boost::system::error_code ec;
    socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

private:
  static sse_event parse_event(const std::string& block) {
    sse_event event;
    size_t start = 0;
    while (start <= block.size()) {
      auto newline = block.find('\n', start);
      auto line =
          block.substr(start, newline == std::string::npos ? std::string::npos : newline - start);
      auto colon = line.find(':');
      auto field = line.substr(0, colon);
      auto value = colon == std::string::npos ? std::string{} : line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ')
        value.erase(0, 1);
      if (field == "id")
        event.id = value;
      else if (field == "retry")
        event.retry = value;
      else if (field == "data")
        event.data += (event.data.empty() ? "" : "\n") + value;
      if (newline == std::string::npos)
        break;
      start = newline + 1;
    }
    return event;
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::optional<client_http::response_parser<client_http::string_body>> parser_;
  size_t consumed_ = 0;
};

} // namespace offload::test
