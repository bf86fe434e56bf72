#include "runtime/http_fetch.hpp"

#include "protocol/llm_errors.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <stdexcept>

namespace offload {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class fetch_exchange : public llm_exchange, public std::enable_shared_from_this<fetch_exchange> {
public:
  fetch_exchange(asio::io_context& io, http_target target, std::chrono::milliseconds timeout,
                 std::function<void(fetch_result)> done)
      : target_(std::move(target))
      , timeout_(timeout)
      , done_(std::move(done))
      , resolver_(io)
      , stream_(io)
      , timer_(io) {}

  // Streams a 2xx body to `on_body` instead of buffering it; `idle` bounds each read.
  void stream_to(std::function<void(std::string_view)> on_body, std::chrono::milliseconds idle) {
    on_body_ = std::move(on_body);
    idle_ = idle;
  }

  void begin(http::verb method, std::string path, std::string body, size_t max_body) {
    request_.method(method);
    request_.target(path);
    request_.version(11);
    request_.set(http::field::host, target_.host + ":" + target_.port);
    request_.set(http::field::user_agent, "offload");
    request_.set(http::field::accept, "application/json");
    request_.keep_alive(false);
    if (!body.empty())
      request_.set(http::field::content_type, "application/json");
    request_.body() = std::move(body);
    request_.prepare_payload();
    max_body_ = max_body;
    // A stream is limited by its timeouts rather than its size; error bodies by `max_body`.
    parser_.body_limit(on_body_ ? boost::optional<std::uint64_t>{} : max_body);
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->start(); });
  }

  void cancel() override {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      self->fail({errc::cancelled, "the request was cancelled", false});
    });
  }

private:
  void start() {
    if (finished_)
      return;
    timer_.expires_after(timeout_);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec)
        self->on_deadline();
    });
    resolver_.async_resolve(
        target_.host, target_.port,
        [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
          self->on_resolve(ec, std::move(results));
        });
  }

  // The whole exchange ran out of time: abort whatever operation is pending; its handler then
  // reports the timeout.
  void on_deadline() {
    if (finished_)
      return;
    timed_out_ = true;
    resolver_.cancel();
    // Closing (not only cancelling) also fails an operation started by a handler that was
    // already queued when the deadline passed.
    stream_.close();
  }

  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (finished_)
      return;
    if (ec) {
      fail_io(ec, errc::backend_unreachable, "resolving the host name");
      return;
    }
    stream_.async_connect(results,
                          [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
                            self->on_connect(ec);
                          });
  }

  void on_connect(beast::error_code ec) {
    if (finished_)
      return;
    if (ec) {
      fail_io(ec, errc::backend_unreachable, "connecting");
      return;
    }
    http::async_write(stream_, request_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->on_write(ec);
    });
  }

  void on_write(beast::error_code ec) {
    if (finished_)
      return;
    if (ec) {
      fail_io(ec, errc::connection_dropped, "sending the request");
      return;
    }
    if (on_body_) {
      stream_.expires_after(idle_);
      http::async_read_header(
          stream_, buffer_, parser_,
          [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
      return;
    }
    http::async_read(
        stream_, buffer_, parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  // Streaming: a 2xx body goes to on_body_ piece by piece; anything else is read whole.
  void on_header(beast::error_code ec) {
    if (finished_)
      return;
    if (ec == beast::error::timeout && !timed_out_) {
      fail({errc::timeout,
            fmt::format("{} did not start answering within {} ms", where(), idle_.count()), true});
      return;
    }
    if (ec) {
      fail_read(ec);
      return;
    }
    if (parser_.get().result_int() / 100 != 2) {
      on_body_ = nullptr;
      stream_.expires_never(); // the exchange's deadline still applies
      parser_.body_limit(max_body_);
      http::async_read(
          stream_, buffer_, parser_,
          [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
      return;
    }
    read_piece();
  }

  void read_piece() {
    stream_.expires_after(idle_);
    http::async_read_some(
        stream_, buffer_, parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_piece(ec); });
  }

  void on_piece(beast::error_code ec) {
    if (finished_)
      return;
    auto& body = parser_.get().body();
    if (!body.empty()) {
      on_body_(body);
      // The string body appends what each read brings, so emptying it keeps only new bytes.
      body.clear();
    }
    if (ec) {
      if (ec == beast::error::timeout && !timed_out_) {
        fail({errc::timeout, fmt::format("{} sent nothing for {} ms", where(), idle_.count()),
              true});
        return;
      }
      fail_read(ec);
      return;
    }
    if (!parser_.is_done()) {
      read_piece();
      return;
    }
    fetch_result result;
    result.ok = true;
    result.status = parser_.get().result_int();
    complete(std::move(result));
  }

  void on_read(beast::error_code ec) {
    if (finished_)
      return;
    if (ec) {
      fail_read(ec);
      return;
    }
    auto& response = parser_.get();
    fetch_result result;
    result.ok = true;
    result.status = response.result_int();
    auto retry_after = response[http::field::retry_after];
    result.retry_after_ms = parse_retry_after({retry_after.data(), retry_after.size()},
                                              std::chrono::system_clock::now());
    result.body = std::move(response.body());
    complete(std::move(result));
  }

  void fail_read(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      fail(
          {errc::malformed_stream,
           fmt::format("the answer of {} is larger than the limit of {} bytes", where(), max_body_),
           false});
      return;
    }
    if (ec) {
      bool garbage = ec.category() == http::make_error_code(http::error::bad_chunk).category() &&
                     ec != http::error::partial_message && ec != http::error::end_of_stream;
      fail_io(ec, garbage ? errc::malformed_stream : errc::connection_dropped,
              "reading the answer");
      return;
    }
  }

  std::string where() const { return target_.display() + std::string{request_.target()}; }

  void fail_io(beast::error_code ec, errc code, std::string_view doing) {
    if (timed_out_) {
      fail({errc::timeout, fmt::format("{} did not answer within {} ms", where(), timeout_.count()),
            true});
      return;
    }
    fail({code, fmt::format("{} failed while {}: {}", where(), doing, ec.message()),
          is_retryable(code)});
  }

  void fail(task_error error) {
    fetch_result result;
    result.error = std::move(error);
    complete(std::move(result));
  }

  void complete(fetch_result result) {
    if (finished_)
      return;
    finished_ = true;
    timer_.cancel();
    resolver_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    on_body_ = nullptr;
    auto done = std::move(done_);
    done(std::move(result));
  }

  http_target target_;
  std::chrono::milliseconds timeout_;
  std::function<void(fetch_result)> done_;
  std::function<void(std::string_view)> on_body_; // set: stream a 2xx body
  std::chrono::milliseconds idle_{0};
  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  http::request<http::string_body> request_;
  http::response_parser<http::string_body> parser_;
  beast::flat_buffer buffer_;
  size_t max_body_ = 0;
  bool timed_out_ = false;
  bool finished_ = false;
};

} // namespace

std::shared_ptr<llm_exchange> fetch(boost::asio::io_context& io, const http_target& target,
                                    std::string_view method, std::string path, std::string body,
                                    std::chrono::milliseconds timeout,
                                    std::function<void(fetch_result)> done, size_t max_body) {
  auto verb = http::string_to_verb(method);
  if (verb == http::verb::unknown)
    throw std::invalid_argument(
        fmt::format("fetch: unknown HTTP method {:?}", std::string{method}));
  auto exchange = std::make_shared<fetch_exchange>(io, target, timeout, std::move(done));
  exchange->begin(verb, std::move(path), std::move(body), max_body);
  return exchange;
}

std::shared_ptr<llm_exchange>
fetch_stream(boost::asio::io_context& io, const http_target& target, std::string_view method,
             std::string path, std::string body, std::chrono::milliseconds timeout,
             std::chrono::milliseconds idle, std::function<void(std::string_view)> on_body,
             std::function<void(fetch_result)> done, size_t max_body) {
  auto verb = http::string_to_verb(method);
  if (verb == http::verb::unknown)
    throw std::invalid_argument(
        fmt::format("fetch: unknown HTTP method {:?}", std::string{method}));
  auto exchange = std::make_shared<fetch_exchange>(io, target, timeout, std::move(done));
  exchange->stream_to(std::move(on_body), idle);
  exchange->begin(verb, std::move(path), std::move(body), max_body);
  return exchange;
}

} // namespace offload
