#include "runtime/http_server.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/socket.h>

#include <cerrno>
#include <iterator>
#include <system_error>

namespace offload {

namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// While an answer is pending, bytes the client pipelines are kept for the next request; past
// this much, stop reading and let TCP push back.
constexpr size_t pipelined_bytes_limit = 64 * 1024;
constexpr size_t watch_read_size = 4096;
// After refusing a request whose body was not read, the rest of it is read and dropped for at
// most this long before closing: closing with unread input sends a reset, which can destroy the
// refusal before the client reads it.
constexpr auto linger_timeout = std::chrono::seconds{2};
constexpr size_t linger_read_size = 64 * 1024;
// After a failed accept (e.g. out of file descriptors) wait before the next one instead of
// spinning on the same error.
constexpr auto accept_retry_delay = std::chrono::milliseconds{100};

template <class Body>
std::string render(beast_http::response<Body>& message, bool header_only) {
  std::string out;
  beast_http::response_serializer<Body> serializer{message};
  serializer.split(header_only);
  beast::error_code ec;
  auto done = [&] { return header_only ? serializer.is_header_done() : serializer.is_done(); };
  while (!ec && !done()) {
    serializer.next(ec, [&](beast::error_code&, const auto& buffers) {
      for (auto buffer : beast::buffers_range_ref(buffers))
        out.append(static_cast<const char*>(buffer.data()), buffer.size());
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
  return out;
}

bool is_parse_error(const beast::error_code& ec) {
  return &ec.category() == &beast_http::make_error_code(beast_http::error::bad_method).category();
}

} // namespace

// -- connection ----------------------------------------------------------------------------------

http_connection::http_connection(tcp::socket&& socket, const http_server_settings& settings,
                                 http_request_handler handler, http_error_builder error_reply,
                                 std::shared_ptr<http_connection_set> registry)
    : stream_(std::move(socket))
    , settings_(settings)
    , handler_(std::move(handler))
    , error_reply_(std::move(error_reply))
    , registry_(std::move(registry)) {
  beast::error_code ec;
  // Events are small writes that must leave at once, not wait for Nagle and a delayed ACK.
  stream_.socket().set_option(tcp::no_delay{true}, ec);
}

http_connection::~http_connection() {
  registry_->open.erase(this);
}

void http_connection::run() {
  registry_->open.emplace(this, weak_from_this());
  do_read();
}

void http_connection::do_read() {
  phase_ = phase::reading;
  parser_.emplace();
  parser_->body_limit(settings_.max_body_bytes);
  stream_.expires_after(settings_.read_timeout);
  beast_http::async_read_header(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&http_connection::on_read_header, shared_from_this()));
}

void http_connection::on_read_header(beast::error_code ec, size_t bytes) {
  if (ec || phase_ == phase::closed)
    return on_read(ec, bytes);
  // curl and others wait for this before sending a body of more than 1 KiB.
  if (beast::iequals(parser_->get()[beast_http::field::expect], "100-continue")) {
    enqueue("HTTP/1.1 100 Continue\r\n\r\n");
    stream_.expires_after(settings_.read_timeout); // the write keeps its own timeout
  }
  beast_http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&http_connection::on_read, shared_from_this()));
}

void http_connection::on_read(beast::error_code ec, size_t) {
  if (phase_ == phase::closed)
    return;
  if (ec == beast_http::error::end_of_stream || ec == net::error::operation_aborted)
    return close();
  if (ec == beast_http::error::body_limit || (ec && is_parse_error(ec))) {
    auto status = ec == beast_http::error::body_limit ? beast_http::status::payload_too_large
                                                      : beast_http::status::bad_request;
    spdlog::debug("http: refusing a request: {}", ec.message());
    // The rest of the request is unread, so the connection cannot carry another one.
    keep_alive_ = false;
    phase_ = phase::replying;
    auto response = error_reply_(status, parser_->get().version());
    response.keep_alive(false);
    response.prepare_payload();
    linger_after_write_ = true;
    return enqueue(render(response, false));
  }
  if (ec) {
    spdlog::debug("http: read failed: {}", ec.message());
    return close();
  }
  phase_ = phase::pending;
  auto request = parser_->release();
  keep_alive_ = request.keep_alive();
  try {
    handler_(shared_from_this(), std::move(request));
  } catch (const std::exception& e) {
    // An exception must not leave the I/O thread, which serves every other connection too.
    spdlog::error("http: internal error while handling a request: {}", e.what());
    if (phase_ == phase::pending)
      reply(error_reply_(beast_http::status::internal_server_error, 11));
    else if (phase_ == phase::streaming)
      close();
  }
  if (busy() && !watching_)
    do_watch();
}

void http_connection::do_watch() {
  watching_ = true;
  stream_.expires_never(); // waiting is deliberate here; pending writes keep their own timeout
  stream_.async_read_some(
      buffer_.prepare(watch_read_size),
      beast::bind_front_handler(&http_connection::on_watch, shared_from_this()));
}

void http_connection::on_watch(beast::error_code ec, size_t bytes) {
  watching_ = false;
  if (phase_ == phase::closed)
    return;
  if (!ec)
    buffer_.commit(bytes); // the start of a pipelined request, parsed once this one is answered
  if (std::exchange(read_after_watch_, false)) {
    if (!ec || ec == net::error::operation_aborted)
      return do_read();
  }
  if (!ec) {
    if (busy() && buffer_.size() < pipelined_bytes_limit)
      do_watch();
    return;
  }
  if (ec == net::error::operation_aborted)
    return;
  spdlog::debug("http: client left while its answer was pending: {}", ec.message());
  close();
}

void http_connection::reply(http_response response) {
  if (phase_ != phase::pending)
    return;
  phase_ = phase::replying;
  gone_ = nullptr;
  response.keep_alive(keep_alive_);
  response.prepare_payload();
  (keep_alive_ ? next_after_write_ : close_after_write_) = true;
  enqueue(render(response, false));
}

void http_connection::open_stream(http_stream_header header) {
  if (phase_ != phase::pending)
    return;
  phase_ = phase::streaming;
  header.keep_alive(keep_alive_);
  header.chunked(true);
  enqueue(render(header, true));
}

void http_connection::stream(std::string bytes) {
  if (phase_ != phase::streaming || bytes.empty())
    return;
  std::string chunk = fmt::format("{:x}\r\n", bytes.size());
  chunk += bytes;
  chunk += "\r\n";
  enqueue(std::move(chunk));
}

void http_connection::close_stream() {
  if (phase_ != phase::streaming)
    return;
  phase_ = phase::replying;
  gone_ = nullptr;
  (keep_alive_ ? next_after_write_ : close_after_write_) = true;
  enqueue("0\r\n\r\n");
}

void http_connection::enqueue(std::string bytes) {
  queue_.push_back(std::move(bytes));
  if (!writing_)
    do_write();
}

void http_connection::do_write() {
  writing_ = true;
  stream_.expires_after(settings_.write_timeout); // a pending watch read keeps no timeout
  net::async_write(stream_, net::buffer(queue_.front()),
                   beast::bind_front_handler(&http_connection::on_write, shared_from_this()));
}

void http_connection::on_write(beast::error_code ec, size_t) {
  writing_ = false;
  if (phase_ == phase::closed)
    return;
  if (ec)
    return fail("write", ec);
  queue_.pop_front();
  if (!queue_.empty())
    return do_write();
  if (std::exchange(linger_after_write_, false))
    return do_linger();
  if (std::exchange(close_after_write_, false))
    return close();
  if (std::exchange(next_after_write_, false))
    finish_exchange();
}

void http_connection::do_linger() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.expires_after(linger_timeout);
  on_linger({}, 0);
}

void http_connection::on_linger(beast::error_code ec, size_t) {
  if (ec || phase_ == phase::closed)
    return close();
  // Whatever arrives is dropped; the timeout set once in do_linger bounds the whole wait.
  stream_.async_read_some(
      buffer_.prepare(linger_read_size),
      beast::bind_front_handler(&http_connection::on_linger, shared_from_this()));
}

void http_connection::finish_exchange() {
  phase_ = phase::reading;
  if (!watching_)
    return do_read();
  // The watch read owns the buffer: cancel it, and read the next request once it has ended.
  read_after_watch_ = true;
  beast::error_code ec;
  stream_.socket().cancel(ec);
}

void http_connection::fail(const char* what, beast::error_code ec) {
  spdlog::debug("http: {} failed: {}", what, ec.message());
  close();
}

void http_connection::close() {
  if (phase_ == phase::closed)
    return;
  bool was_busy = busy();
  phase_ = phase::closed;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
  queue_.clear();
  registry_->open.erase(this);
  auto gone = std::exchange(gone_, nullptr);
  if (was_busy && gone)
    gone();
}

// -- server --------------------------------------------------------------------------------------

http_server::http_server(net::io_context& io, const tcp::endpoint& endpoint,
                         http_server_settings settings, http_request_handler handler,
                         http_error_builder error_reply)
    : io_(io)
    , acceptor_(io)
    , settings_(settings)
    , handler_(std::move(handler))
    , error_reply_(std::move(error_reply))
    , connections_(std::make_shared<http_connection_set>()) {
  if (settings_.listen_fd >= 0) {
    // Already bound and listening: only its address family is needed to adopt it.
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (::getsockname(settings_.listen_fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
      throw std::system_error(errno, std::generic_category(), "getsockname");
    acceptor_.assign(address.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), settings_.listen_fd);
  } else {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }
  local_ = acceptor_.local_endpoint();
}

http_server::~http_server() {
  beast::error_code ec;
  acceptor_.close(ec);
}

void http_server::start() {
  do_accept();
}

void http_server::stop() {
  stopped_ = true;
  beast::error_code ec;
  acceptor_.close(ec);
  // Closing runs the connections' gone callbacks, which may touch the set: close a copy.
  std::vector<http_connection_ptr> open;
  for (auto& [raw, weak] : connections_->open)
    if (auto connection = weak.lock())
      open.push_back(std::move(connection));
  for (auto& connection : open)
    connection->close();
}

void http_server::do_accept() {
  acceptor_.async_accept(io_, beast::bind_front_handler(&http_server::on_accept, this));
}

void http_server::on_accept(beast::error_code ec, tcp::socket socket) {
  if (stopped_)
    return;
  if (ec) {
    spdlog::warn("http: accept failed: {}", ec.message());
    auto timer = std::make_shared<net::steady_timer>(io_, accept_retry_delay);
    timer->async_wait([this, timer](beast::error_code wait_ec) {
      if (!wait_ec && !stopped_)
        do_accept();
    });
    return;
  }
  std::make_shared<http_connection>(std::move(socket), settings_, handler_, error_reply_,
                                    connections_)
      ->run();
  do_accept();
}

} // namespace offload
