#pragma once
// A small HTTP/1.1 server on Boost.Beast, after Beast's advanced server example: one connection
// object per socket with do_x/on_x steps, expires_after before every operation, a fresh parser
// with a body limit for every request. Everything runs on one io_context thread, which
// serialises the handlers the way a strand would in a multi-threaded server.
//
// The server only parses and writes. Each request goes to a handler, which answers through the
// connection at once or later (a request that waits for an actor), with one response or with a
// stream of chunks (Server-Sent Events). While an answer is pending the connection keeps a read
// open, so that a client that hangs up is noticed at once.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace offload {

namespace beast_http = boost::beast::http;
using http_request = beast_http::request<beast_http::string_body>;
using http_response = beast_http::response<beast_http::string_body>;
using http_stream_header = beast_http::response<beast_http::empty_body>;

struct http_server_settings {
  size_t max_body_bytes = 0;
  // Reading one request (headers and body), and how long a kept-alive connection may idle.
  std::chrono::milliseconds read_timeout{0};
  // Writing one response or stream chunk to a client that does not read.
  std::chrono::milliseconds write_timeout{0};
  // A TCP socket that already listens (passed by systemd's socket activation), served instead of
  // binding the endpoint; the server owns it from then on. -1: bind the endpoint.
  int listen_fd = -1;
};

class http_connection;
using http_connection_ptr = std::shared_ptr<http_connection>;

// Receives every complete request. It must eventually answer through the connection (reply, or
// open_stream ... close_stream) unless the connection ends first.
using http_request_handler = std::function<void(const http_connection_ptr&, http_request&&)>;
// Builds the answer to a request the server itself refuses: 413 (body over the limit) or 400
// (not HTTP). The connection closes after it.
using http_error_builder =
    std::function<http_response(beast_http::status status, unsigned version)>;

struct http_connection_set; // the server's registry of open connections

class http_connection : public std::enable_shared_from_this<http_connection> {
public:
  http_connection(boost::asio::ip::tcp::socket&& socket, const http_server_settings& settings,
                  http_request_handler handler, http_error_builder error_reply,
                  std::shared_ptr<http_connection_set> registry);
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  void run();

  // Answers the pending request; afterwards the connection reads the next one or closes.
  void reply(http_response response);
  // Starts a chunked response; `header` names the Content-Type and any other fields.
  void open_stream(http_stream_header header);
  // Sends `bytes` as one chunk of the open stream (ignored when it is not open).
  void stream(std::string bytes);
  // Ends the stream; afterwards the connection reads the next request or closes.
  void close_stream();
  // `gone` runs once if the connection ends while an answer is pending or a stream is open (the
  // client hung up, a write failed or timed out, close() was called); never after a normal end.
  void on_gone(std::function<void()> gone) { gone_ = std::move(gone); }
  // Ends the connection now.
  void close();
  bool is_open() const { return phase_ != phase::closed; }
  // While an answer is pending or a stream is open.
  bool busy() const { return phase_ == phase::pending || phase_ == phase::streaming; }

private:
  enum class phase { reading, pending, replying, streaming, closed };

  void do_read();
  void on_read_header(boost::beast::error_code ec, size_t bytes);
  void on_read(boost::beast::error_code ec, size_t bytes);
  void do_watch();
  void on_watch(boost::beast::error_code ec, size_t bytes);
  void enqueue(std::string bytes);
  void do_write();
  void on_write(boost::beast::error_code ec, size_t bytes);
  void finish_exchange();
  void do_linger();
  void on_linger(boost::beast::error_code ec, size_t bytes);
  void fail(const char* what, boost::beast::error_code ec);

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<beast_http::request_parser<beast_http::string_body>> parser_;
  http_server_settings settings_;
  http_request_handler handler_;
  http_error_builder error_reply_;
  std::shared_ptr<http_connection_set> registry_;
  std::function<void()> gone_;
  phase phase_ = phase::reading;
  bool keep_alive_ = false;
  bool watching_ = false;         // a read is open only to notice the client hanging up
  bool read_after_watch_ = false; // the watch was cancelled so that the next request can be read
  bool writing_ = false;
  bool close_after_write_ = false;
  bool linger_after_write_ = false; // refused with input unread: drain it, then close
  bool next_after_write_ = false;   // the exchange is complete once the queue is written
  std::deque<std::string> queue_;
};

// The registry of open connections, shared with them so that it outlives the server object
// (connections can be destroyed later, with the io_context's pending handlers).
struct http_connection_set {
  std::unordered_map<http_connection*, std::weak_ptr<http_connection>> open;
};

// Destroy it only once its io_context no longer runs: pending accepts refer to it.
class http_server {
public:
  // Binds and listens at once, or adopts settings.listen_fd (throws std::system_error when the
  // address cannot be bound or the socket cannot be adopted); accepting starts with start().
  http_server(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint,
              http_server_settings settings, http_request_handler handler,
              http_error_builder error_reply);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  boost::asio::ip::tcp::endpoint local_endpoint() const { return local_; }
  // Both on the io_context thread.
  void start();
  // Stops accepting and closes every connection.
  void stop();

private:
  void do_accept();
  void on_accept(boost::beast::error_code ec, boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::endpoint local_;
  http_server_settings settings_;
  http_request_handler handler_;
  http_error_builder error_reply_;
  std::shared_ptr<http_connection_set> connections_;
  bool stopped_ = false;
};

} // namespace offload
