#include "runtime/http_client.hpp"

#include "protocol/llm_errors.hpp"
#include "protocol/ollama.hpp"
#include "protocol/openai.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <optional>
#include <vector>

namespace offload {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Connections and name resolution shared by every exchange with one endpoint. Touched only on
// the I/O thread.
struct endpoint_pool {
  asio::io_context& io;
  backend_kind kind;
  http_target target;
  http_timeouts timeouts;
  size_t max_idle;
  std::map<std::string, ollama::chat_options> model_options;
  std::vector<std::unique_ptr<beast::tcp_stream>> idle;
  std::optional<tcp::resolver::results_type> resolved;
};

// Largest error body we keep for the message (the rest is read and dropped).
constexpr size_t max_error_body = 64 * 1024;

// A per-request override, or the backend's value when the request leaves it at zero.
milliseconds chosen(milliseconds requested, milliseconds configured) {
  return requested.count() > 0 ? requested : configured;
}

// One streamed chat completion: connect (or reuse), write, read the streamed body, parse it
// incrementally with the parser of the backend's wire format.
class chat_exchange : public llm_exchange, public std::enable_shared_from_this<chat_exchange> {
public:
  chat_exchange(std::shared_ptr<endpoint_pool> pool, llm_request_ptr request,
                std::function<void(llm_outcome)> done)
      : pool_(std::move(pool))
      , request_(std::move(request))
      , done_(std::move(done))
      , resolver_(pool_->io)
      , first_token_timeout_(chosen(request_->first_token_timeout, pool_->timeouts.first_token))
      , idle_timeout_(chosen(request_->idle_timeout, pool_->timeouts.idle)) {}

  void begin() {
    deadline_ = clock_type::now() + pool_->timeouts.total;
    auto& t = pool_->target;
    http_request_.method(http::verb::post);
    http_request_.version(11);
    http_request_.set(http::field::host, t.host + ":" + t.port);
    http_request_.set(http::field::content_type, "application/json");
    http_request_.set(http::field::user_agent, "offload");
    http_request_.keep_alive(true);
    if (pool_->kind == backend_kind::openai) {
      http_request_.target(openai::api_path(t.base_path, "chat/completions"));
      http_request_.set(http::field::accept, "text/event-stream");
      http_request_.body() = openai::make_chat_body(request_->model, request_->messages, true);
      stream_parser_ = std::make_unique<openai::chat_stream_parser>();
    } else {
      http_request_.target(t.base_path + "/api/chat");
      http_request_.set(http::field::accept, "application/x-ndjson");
      http_request_.body() =
          ollama::make_chat_body(request_->model, request_->messages, true,
                                 ollama::options_for(pool_->model_options, request_->model));
      stream_parser_ = std::make_unique<ollama::chat_stream_parser>();
    }
    http_request_.prepare_payload();
    asio::post(pool_->io, [self = shared_from_this()] { self->acquire(); });
  }

  void cancel() override {
    asio::post(pool_->io, [self = shared_from_this()] {
      self->fail({errc::cancelled, "the request was cancelled", false});
    });
  }

private:
  // -- connection --------------------------------------------------------------------------------

  void acquire() {
    if (finished_)
      return;
    if (!pool_->idle.empty() && !retried_) {
      stream_ = std::move(pool_->idle.back());
      pool_->idle.pop_back();
      reused_ = true;
      do_write();
      return;
    }
    reused_ = false;
    stream_ = std::make_unique<beast::tcp_stream>(pool_->io);
    if (pool_->resolved) {
      do_connect();
      return;
    }
    resolver_.async_resolve(
        pool_->target.host, pool_->target.port,
        [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
          self->on_resolve(ec, std::move(results));
        });
  }

  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (finished_)
      return;
    if (ec) {
      fail({errc::backend_unreachable,
            fmt::format("cannot resolve {}: {}", pool_->target.host, ec.message()), true});
      return;
    }
    pool_->resolved = std::move(results);
    do_connect();
  }

  void do_connect() {
    arm(pool_->timeouts.connect);
    stream_->async_connect(*pool_->resolved,
                           [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
                             self->on_connect(ec);
                           });
  }

  void on_connect(beast::error_code ec) {
    if (finished_)
      return;
    if (ec == beast::error::timeout) {
      fail(timeout_error(fmt::format("connecting to {} took longer than {} ms",
                                     pool_->target.display(), pool_->timeouts.connect.count())));
      return;
    }
    if (ec) {
      fail({errc::backend_unreachable,
            fmt::format("cannot connect to {}: {}", pool_->target.display(), ec.message()), true});
      return;
    }
    stream_->socket().set_option(tcp::no_delay{true});
    do_write();
  }

  // -- request -----------------------------------------------------------------------------------

  void do_write() {
    arm(idle_timeout_);
    http::async_write(
        *stream_, http_request_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    if (finished_)
      return;
    if (ec) {
      if (retry_on_fresh_connection(ec))
        return;
      fail(io_error(ec, "sending the request"));
      return;
    }
    parser_.emplace();
    parser_->body_limit(defaults::max_response_bytes);
    buffer_.clear();
    arm(first_token_timeout_);
    http::async_read_header(
        *stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  // A kept-alive connection may have been closed by the server while idle; the first failure on
  // it says nothing about the backend, so try once more on a new connection.
  bool retry_on_fresh_connection(beast::error_code ec) {
    if (!reused_ || retried_ || ec == beast::error::timeout)
      return false;
    retried_ = true;
    stream_.reset();
    acquire();
    return true;
  }

  // -- response ----------------------------------------------------------------------------------

  void on_header(beast::error_code ec) {
    if (finished_)
      return;
    if (ec) {
      if (retry_on_fresh_connection(ec))
        return;
      if (ec == beast::error::timeout) {
        fail(first_token_error());
        return;
      }
      fail(io_error(ec, "reading the response header"));
      return;
    }
    status_ = parser_->get().result_int();
    if (status_ / 100 != 2) {
      auto retry_after = parser_->get()[http::field::retry_after];
      retry_after_ms_ = parse_retry_after({retry_after.data(), retry_after.size()},
                                          std::chrono::system_clock::now());
    }
    read_body();
  }

  void read_body() {
    auto& body = parser_->get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    arm(waiting_first_token() ? first_token_timeout_ : idle_timeout_);
    // read_some, not read: async_read would only return once the chunk buffer is full, so a
    // short answer would reach the parser all at once at the end, and the first-token timer
    // would keep running through the whole generation.
    http::async_read_some(
        *stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (finished_)
      return;
    if (ec == http::error::need_buffer)
      ec = {};
    auto received = chunk_.size() - parser_->get().body().size;
    std::string_view bytes{chunk_.data(), received};
    bool first_token_pending = waiting_first_token();
    if (status_ / 100 == 2)
      stream_parser_->feed(bytes);
    else if (error_body_.size() < max_error_body)
      error_body_.append(bytes.substr(0, max_error_body - error_body_.size()));
    if (stream_parser_->failed()) {
      fail(stream_parser_->error());
      return;
    }
    if (ec) {
      // The server may close (or stall) right after the final object; that answer is complete.
      if (status_ / 100 == 2 && stream_parser_->done()) {
        succeed(false);
        return;
      }
      if (ec == beast::error::timeout) {
        if (first_token_pending) {
          fail(first_token_error());
          return;
        }
        fail(timeout_error(fmt::format("the LLM server's stream stalled for more than {} ms",
                                       idle_timeout_.count())));
        return;
      }
      fail(io_error(ec, "reading the response"));
      return;
    }
    if (parser_->is_done()) {
      if (status_ / 100 != 2) {
        auto error = classify_http_error(status_, parse_error_body(error_body_), retry_after_ms_);
        fail_keeping(error, parser_->keep_alive());
        return;
      }
      stream_parser_->finish();
      if (stream_parser_->failed()) {
        fail(stream_parser_->error());
        return;
      }
      succeed(parser_->keep_alive());
      return;
    }
    read_body();
  }

  // -- completion --------------------------------------------------------------------------------

  void succeed(bool reusable) {
    llm_outcome outcome;
    outcome.ok = true;
    outcome.reply.text = stream_parser_->text();
    outcome.reply.model =
        stream_parser_->model().empty() ? request_->model : stream_parser_->model();
    outcome.reply.tokens_in = stream_parser_->tokens_in();
    outcome.reply.tokens_out = stream_parser_->tokens_out();
    outcome.reply.done_reason = stream_parser_->done_reason();
    complete(std::move(outcome), reusable);
  }

  void fail(task_error error) { fail_keeping(std::move(error), false); }

  void fail_keeping(task_error error, bool reusable) {
    llm_outcome outcome;
    outcome.error = std::move(error);
    complete(std::move(outcome), reusable);
  }

  void complete(llm_outcome outcome, bool reusable) {
    if (finished_)
      return;
    finished_ = true;
    resolver_.cancel();
    if (stream_) {
      if (reusable && pool_->idle.size() < pool_->max_idle) {
        stream_->expires_never();
        pool_->idle.push_back(std::move(stream_));
      } else {
        beast::error_code ignored;
        stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_->close();
      }
    }
    auto done = std::move(done_);
    done(std::move(outcome));
  }

  task_error io_error(beast::error_code ec, std::string_view doing) const {
    bool mid_response = status_ != 0;
    auto code = mid_response ? errc::connection_dropped : errc::backend_unreachable;
    if (ec == http::error::partial_message || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == http::error::end_of_stream)
      code = errc::connection_dropped;
    else if (ec.category() == http::make_error_code(http::error::bad_chunk).category())
      code = errc::malformed_stream; // any other HTTP parse error: the server spoke garbage
    return {code,
            fmt::format("connection to {} failed while {}: {}", pool_->target.display(), doing,
                        ec.message()),
            true};
  }

  // Arms the stream's timer for the next operation: the phase's timeout, but never past the
  // exchange's total deadline (and remembers which of the two it was, for the message).
  void arm(milliseconds phase) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline_ - clock_type::now());
    cut_by_total_ = left < phase;
    stream_->expires_after(std::max(milliseconds{1}, std::min(phase, left)));
  }

  bool waiting_first_token() const { return status_ / 100 == 2 && stream_parser_->chunks() == 0; }

  task_error timeout_error(std::string phase_message) const {
    if (cut_by_total_)
      return {errc::timeout,
              fmt::format("the exchange with {} took longer than its total timeout of {} ms",
                          pool_->target.display(), pool_->timeouts.total.count()),
              true};
    return {errc::timeout, std::move(phase_message), true};
  }

  task_error first_token_error() const {
    return timeout_error(fmt::format("the LLM server did not start answering within {} ms "
                                     "(first-token timeout; a cold model load can take this long)",
                                     first_token_timeout_.count()));
  }

  std::shared_ptr<endpoint_pool> pool_;
  llm_request_ptr request_;
  std::function<void(llm_outcome)> done_;
  tcp::resolver resolver_;
  std::unique_ptr<beast::tcp_stream> stream_;
  http::request<http::string_body> http_request_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  beast::flat_buffer buffer_;
  std::array<char, 16 * 1024> chunk_{};
  std::unique_ptr<llm_stream_parser> stream_parser_;
  std::string error_body_;
  unsigned status_ = 0;
  int64_t retry_after_ms_ = 0;
  milliseconds first_token_timeout_;
  milliseconds idle_timeout_;
  clock_type::time_point deadline_;
  bool cut_by_total_ = false;
  bool reused_ = false;
  bool retried_ = false;
  bool finished_ = false;
};

class http_llm_client : public llm_client {
public:
  explicit http_llm_client(std::shared_ptr<endpoint_pool> pool)
      : pool_(std::move(pool)) {}

  std::shared_ptr<llm_exchange> start(llm_request_ptr request,
                                      std::function<void(llm_outcome)> done) override {
    auto exchange = std::make_shared<chat_exchange>(pool_, std::move(request), std::move(done));
    exchange->begin();
    return exchange;
  }

private:
  std::shared_ptr<endpoint_pool> pool_;
};

} // namespace

std::optional<backend_kind> parse_backend_kind(std::string_view name) {
  if (name == "ollama")
    return backend_kind::ollama;
  if (name == "openai")
    return backend_kind::openai;
  return std::nullopt;
}

std::string_view to_string(backend_kind kind) {
  switch (kind) {
  case backend_kind::ollama:
    return "ollama";
  case backend_kind::openai:
    return "openai";
  }
  return "unknown";
}

std::shared_ptr<llm_client>
make_llm_client(boost::asio::io_context& io, backend_kind kind, http_target target,
                http_timeouts timeouts, size_t max_idle,
                std::map<std::string, ollama::chat_options> model_options) {
  auto pool = std::make_shared<endpoint_pool>(endpoint_pool{
      io, kind, std::move(target), timeouts, max_idle, std::move(model_options), {}, std::nullopt});
  return std::make_shared<http_llm_client>(std::move(pool));
}

} // namespace offload
