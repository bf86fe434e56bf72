#pragma once
// A canned HTTP/1.1 server for the runtime tests: it answers requests, in order, with prepared
// bytes on an ephemeral loopback port and records what it was asked.

#include "runtime/url.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace offload::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// What the canned server does with one request.
struct canned_reply {
  std::string bytes;      // written verbatim; empty: nothing
  bool hold_open = false; // then keep the connection open without answering further
};

inline std::string chunked(std::string_view head, std::string_view body) {
  // Two chunks, so that the client sees the body arrive in pieces.
  auto half = body.size() / 2;
  return fmt::format("{}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                     head, half, body.substr(0, half), body.size() - half, body.substr(half));
}

inline std::string with_length(std::string_view head, std::string_view body) {
  return fmt::format("{}Content-Length: {}\r\n\r\n{}", head, body.size(), body);
}

// An HTTP/1.1 server on an ephemeral loopback port that answers requests, in order, with canned
// bytes and records what it was asked.
class canned_server {
public:
  explicit canned_server(asio::io_context& io)
      : acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}) {
    accept();
  }

  http_target target(std::string base_path = "") const {
    return {"127.0.0.1", std::to_string(acceptor_.local_endpoint().port()), std::move(base_path)};
  }

  std::vector<canned_reply> replies;
  std::vector<std::string> targets;
  std::vector<std::string> bodies;
  size_t connections = 0;

private:
  struct session : std::enable_shared_from_this<session> {
    session(canned_server& server, tcp::socket socket)
        : server(server)
        , socket(std::move(socket)) {}

    void read() {
      request = {};
      http::async_read(socket, buffer, request,
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (!ec)
                           self->answer();
                       });
    }

    void answer() {
      server.targets.emplace_back(request.target());
      server.bodies.push_back(request.body());
      auto index = server.next_++;
      auto reply = index < server.replies.size() ? server.replies[index] : canned_reply{"", true};
      asio::async_write(socket, asio::buffer(reply.bytes),
                        [self = shared_from_this(), reply](beast::error_code ec, size_t) {
                          if (ec)
                            return;
                          if (reply.hold_open)
                            self->server.held_.push_back(self);
                          else
                            self->read();
                        });
    }

    canned_server& server;
    tcp::socket socket;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
  };

  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec)
        return;
      ++connections;
      std::make_shared<session>(*this, std::move(socket))->read();
      accept();
    });
  }

  tcp::acceptor acceptor_;
  size_t next_ = 0;
  std::vector<std::shared_ptr<session>> held_;
};

const std::string json_head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";

} // namespace offload::test
