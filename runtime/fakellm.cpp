#include "runtime/fakellm.hpp"

#include "protocol/fakellm_script.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>

namespace offload {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// Limits of the fake itself; the daemon's own limits live in runtime/defaults.hpp.
// The daemon's largest request (10 tasks, each with 256 KiB of context) fits with room to spare.
constexpr size_t request_body_limit = 16 * 1024 * 1024;
// Idle keep-alive connections and stalled request uploads are closed after this.
constexpr auto request_timeout = 60s;
// A client that stops reading a response for this long is gone.
constexpr auto write_timeout = 30s;
// While a request waits (for a slot, a latency marker or forever), bytes the client pipelines
// are kept for the next request; past this much, stop reading and let TCP push back.
constexpr size_t pipelined_bytes_limit = 64 * 1024;
constexpr size_t watch_read_size = 4096;
// What Ollama sends with non-streamed bodies.
constexpr std::string_view json_content_type = "application/json; charset=utf-8";

using logger_ptr = std::shared_ptr<spdlog::logger>;

// Everything the connections share. Only the io_context thread touches it, so no locks.
struct server_state {
  const fakellm_options& options;
  logger_ptr log;
  fakellm::slot_pool slots;
  uint64_t requests = 0;
  decltype(fakellm::stats::faults) faults{};

  fakellm::stats snapshot() const {
    return {requests, slots.in_use(), slots.max_in_use(), slots.waiting(), faults};
  }
};

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

// One HTTP/1.1 connection, serving its requests one after another (keep-alive).
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket&& socket, server_state& server)
      : stream_(std::move(socket))
      , server_(server)
      , timer_(stream_.get_executor()) {}

  // A session that dies holding a slot (e.g. the server stops) must not leak it.
  ~session() { release_slot(); }

  // Everything runs on the one io_context thread, which serialises handlers the way a strand
  // would in Beast's multi-threaded example.
  void run() { do_read(); }

private:
  enum class phase { reading, queued, delaying, hanging, writing, closed };

  void do_read() {
    phase_ = phase::reading;
    close_after_write_ = false;
    parser_.emplace();
    parser_->body_limit(request_body_limit);
    stream_.expires_after(request_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream)
      return do_close();
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      return send_error(http::status::payload_too_large, "request body too large");
    }
    if (ec) {
      server_.log->debug("fakellm: read failed: {}", ec.message());
      return do_close();
    }
    const auto& request = parser_->get();
    keep_alive_ = request.keep_alive();
    auto route = fakellm::route_request(request.method_string(), request.target());
    if (route.target == fakellm::endpoint::not_found)
      return send_error(http::status::not_found,
                        fmt::format("path {:?} not found", std::string{request.target()}));
    if (!route.method_allowed)
      return send_error(http::status::method_not_allowed,
                        fmt::format("method {} not allowed, use {}",
                                    std::string{request.method_string()}, route.allowed_method),
                        route.allowed_method);
    switch (route.target) {
    case fakellm::endpoint::root:
      return send(http::status::ok, "text/plain; charset=utf-8", "Ollama is running");
    case fakellm::endpoint::chat:
      return handle_chat(request.body());
    case fakellm::endpoint::tags:
      return send_json(http::status::ok, fakellm::make_tags_body(server_.options.models));
    case fakellm::endpoint::version:
      return send_json(http::status::ok, fakellm::make_version_body());
    case fakellm::endpoint::stats:
      return send_json(http::status::ok, fakellm::make_stats_body(server_.snapshot()));
    case fakellm::endpoint::reset_stats:
      // Gauges (in_flight, waiting) describe the present and are not counters to reset.
      server_.requests = 0;
      server_.faults = {};
      server_.slots.reset_max();
      return send_json(http::status::ok, fakellm::make_stats_body(server_.snapshot()));
    case fakellm::endpoint::not_found:
      break;
    }
  }

  void handle_chat(const std::string& body) {
    ++server_.requests;
    auto parsed = fakellm::parse_chat_request(body);
    if (!parsed.ok())
      return send_error(http::status::bad_request, parsed.error);
    if (!fakellm::serves_model(server_.options.models, parsed.request.model))
      return send_error(http::status::not_found,
                        fakellm::model_not_found_message(parsed.request.model));
    chat_ = std::move(parsed.request);
    script_ = fakellm::parse_script(fakellm::reply_to(chat_));
    if (server_.slots.try_acquire())
      return on_slot_granted();
    phase_ = phase::queued;
    ticket_ = server_.slots.enqueue([self = shared_from_this()] { self->on_slot_granted(); });
    do_watch();
  }

  void on_slot_granted() {
    holding_slot_ = true;
    ticket_.reset();
    if (script_.latency == 0ms)
      return stop_watching_then_generate();
    phase_ = phase::delaying;
    if (!watching_)
      do_watch();
    timer_.expires_after(script_.latency);
    timer_.async_wait(beast::bind_front_handler(&session::on_latency_elapsed, shared_from_this()));
  }

  void on_latency_elapsed(beast::error_code ec) {
    if (ec || phase_ != phase::delaying)
      return;
    stop_watching_then_generate();
  }

  // While a request waits, a pending read is the only way to learn that the client hung up; the
  // waiting request then gives up its place or slot. No timeout: waiting is deliberate here.
  void do_watch() {
    watching_ = true;
    stream_.expires_never();
    stream_.async_read_some(buffer_.prepare(watch_read_size),
                            beast::bind_front_handler(&session::on_watch, shared_from_this()));
  }

  void on_watch(beast::error_code ec, size_t bytes) {
    watching_ = false;
    if (phase_ == phase::closed)
      return;
    if (!ec) {
      buffer_.commit(bytes); // a pipelined next request, parsed once this one is answered
      if (!generate_after_watch_) {
        if (buffer_.size() < pipelined_bytes_limit)
          do_watch();
        return;
      }
    } else if (ec != net::error::operation_aborted) {
      return client_gone(ec);
    }
    if (std::exchange(generate_after_watch_, false))
      generate();
  }

  // A read and the response write may not overlap with the next request's read, so the watch is
  // cancelled and the response starts from its completion handler.
  void stop_watching_then_generate() {
    if (!watching_)
      return generate();
    generate_after_watch_ = true;
    stream_.cancel();
  }

  void client_gone(beast::error_code ec) {
    server_.log->debug("fakellm: client left while its request waited: {}", ec.message());
    if (ticket_) {
      server_.slots.cancel(*ticket_);
      ticket_.reset();
    }
    timer_.cancel();
    release_slot();
    do_close();
  }

  void generate() {
    auto injected = script_.injected;
    if (injected != fakellm::fault::none)
      ++server_.faults[static_cast<size_t>(injected)];
    switch (injected) {
    case fakellm::fault::http500:
      return send_error(http::status::internal_server_error,
                        fakellm::injected_fault_message(injected));
    case fakellm::fault::notfound:
      return send_error(http::status::not_found, fakellm::model_not_found_message(chat_.model));
    case fakellm::fault::hang:
      phase_ = phase::hanging;
      return do_watch();
    case fakellm::fault::none:
    case fakellm::fault::drop:
    case fakellm::fault::malformed:
      return send_answer(injected);
    }
  }

  void send_answer(fakellm::fault injected) {
    auto reply = fakellm::reply_to(chat_);
    auto created_at = fakellm::format_created_at(std::chrono::system_clock::now());
    auto counts = fakellm::make_usage(fakellm::count_prompt_words(chat_.messages),
                                      fakellm::count_words(reply), script_.latency);
    bool drop = injected == fakellm::fault::drop;
    close_after_write_ = drop;
    if (!chat_.stream) {
      auto body = injected == fakellm::fault::malformed
                      ? std::string{fakellm::malformed_line}
                      : fakellm::make_complete_body(chat_.model, created_at, reply, counts);
      // A dropped plain response promises the whole body in Content-Length and sends half.
      auto header = make_header(http::status::ok, json_content_type);
      header.content_length(body.size());
      wire_.clear();
      append_header(wire_, header);
      wire_.append(drop ? std::string_view{body}.substr(0, body.size() / 2) : body);
      return do_write();
    }
    auto pieces = fakellm::split_pieces(reply);
    auto header = make_header(http::status::ok, "application/x-ndjson");
    header.chunked(true);
    wire_.clear();
    wire_.reserve(pieces.size() * 160 + 512);
    append_header(wire_, header);
    if (injected == fakellm::fault::malformed)
      append_http_chunk(wire_, fakellm::malformed_line);
    // Each NDJSON line is its own HTTP chunk, as Ollama sends them, but all go in one write.
    auto pieces_sent = drop ? (pieces.size() + 1) / 2 : pieces.size();
    std::string line;
    for (size_t i = 0; i < pieces_sent; ++i) {
      line.clear();
      fakellm::append_content_line(line, chat_.model, created_at, pieces[i]);
      append_http_chunk(wire_, line);
    }
    if (!drop) {
      line.clear();
      fakellm::append_final_line(line, chat_.model, created_at, counts);
      append_http_chunk(wire_, line);
      wire_.append("0\r\n\r\n");
    }
    do_write();
  }

  http::response<http::empty_body> make_header(http::status status, std::string_view type) {
    http::response<http::empty_body> header{status, 11};
    header.set(http::field::server, "offload-fakellm");
    header.set(http::field::content_type, type);
    header.keep_alive(keep_alive_);
    return header;
  }

  void send(http::status status, std::string_view type, std::string_view body,
            std::string_view allow = {}) {
    auto header = make_header(status, type);
    header.content_length(body.size());
    if (!allow.empty())
      header.set(http::field::allow, allow);
    wire_.clear();
    append_header(wire_, header);
    wire_.append(body);
    do_write();
  }

  void send_json(http::status status, std::string_view body) {
    send(status, json_content_type, body);
  }

  void send_error(http::status status, std::string_view message, std::string_view allow = {}) {
    server_.log->debug("fakellm: {} {}", static_cast<unsigned>(status), message);
    send(status, json_content_type, fakellm::make_error_body(message), allow);
  }

  void do_write() {
    phase_ = phase::writing;
    stream_.expires_after(write_timeout);
    net::async_write(stream_, net::buffer(wire_),
                     beast::bind_front_handler(&session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, size_t) {
    release_slot();
    if (ec) {
      server_.log->debug("fakellm: write failed: {}", ec.message());
      return do_close();
    }
    if (close_after_write_) {
      // The injected drop: no terminator, no graceful shutdown, just gone.
      phase_ = phase::closed;
      return stream_.close();
    }
    if (!keep_alive_)
      return do_close();
    do_read();
  }

  void release_slot() {
    if (std::exchange(holding_slot_, false))
      server_.slots.release();
  }

  void do_close() {
    phase_ = phase::closed;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  server_state& server_;
  net::steady_timer timer_; // the latency marker's wait
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_; // fresh per request
  std::string wire_; // bytes of the response being written
  phase phase_ = phase::reading;
  bool keep_alive_ = false;
  fakellm::chat_request chat_;
  fakellm::script script_;
  std::optional<fakellm::slot_pool::ticket> ticket_; // our place in the slot queue
  bool holding_slot_ = false;
  bool watching_ = false;             // a disconnect-watching read is pending
  bool generate_after_watch_ = false; // that read was cancelled to start the response
  bool close_after_write_ = false;    // the drop fault cuts the connection after writing
};

class listener : public std::enable_shared_from_this<listener> {
public:
  listener(net::io_context& ioc, const tcp::endpoint& endpoint, server_state& server)
      : acceptor_(ioc)
      , server_(server)
      , retry_timer_(ioc) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }

  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  void run() { do_accept(); }

  void stop() {
    beast::error_code ec;
    acceptor_.close(ec);
    retry_timer_.cancel();
  }

private:
  void do_accept() {
    acceptor_.async_accept(beast::bind_front_handler(&listener::on_accept, shared_from_this()));
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open())
      return;
    if (ec) {
      // Out of file descriptors, typically: retrying at once would spin.
      server_.log->warn("fakellm: accept failed: {}", ec.message());
      retry_timer_.expires_after(100ms);
      retry_timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
        if (!wait_ec)
          self->do_accept();
      });
      return;
    }
    // Responses go out in one write each; waiting to coalesce them would only add latency.
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<session>(std::move(socket), server_)->run();
    do_accept();
  }

  tcp::acceptor acceptor_;
  server_state& server_;
  net::steady_timer retry_timer_;
};

// stdout is reserved for the "listening on" line a parent process reads.
logger_ptr make_logger() {
  auto log = std::make_shared<spdlog::logger>(
      "fakellm", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  log->set_level(spdlog::get_level());
  return log;
}

} // namespace

int run_fakellm(const fakellm_options& options) {
  auto log = make_logger();
  // "[::1]" is how people write IPv6 hosts next to a port; the address parser wants "::1".
  std::string_view host = options.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  beast::error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec) {
    log->error("fakellm: host {:?} is not an IP address", options.host);
    return 1;
  }
  // Declared before the io_context so that sessions destroyed with it can still return slots.
  server_state server{options, log, fakellm::slot_pool{options.slots}};
  net::io_context ioc{1};
  // Waiters hold sessions; they must go while the io_context can still close their sockets,
  // and sessions torn down with the io_context must not hand their slots to anyone.
  struct close_slots_first {
    fakellm::slot_pool& slots;
    ~close_slots_first() { slots.close(); }
  } slots_guard{server.slots};
  // Installed before the port is announced: a parent may signal as soon as it reads the line.
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  std::shared_ptr<listener> accepting;
  try {
    accepting = std::make_shared<listener>(ioc, tcp::endpoint{address, options.port}, server);
  } catch (const boost::system::system_error& e) {
    log->error("fakellm: cannot listen on {}:{}: {}", options.host, options.port,
               e.code().message());
    return 1;
  }
  auto bound = accepting->local_endpoint();
  std::fputs(fmt::format("listening on {}:{}\n", bound.address().to_string(), bound.port()).c_str(),
             stdout);
  std::fflush(stdout);
  log->info("fakellm: serving {} model(s) with {} slot(s)", options.models.size(),
            options.slots == 0 ? std::string{"unlimited"} : std::to_string(options.slots));
  signals.async_wait([&](beast::error_code wait_ec, int signal_number) {
    if (wait_ec)
      return;
    log->info("fakellm: stopping on signal {}", signal_number);
    accepting->stop();
    ioc.stop();
  });
  accepting->run();
  try {
    ioc.run();
  } catch (const std::exception& e) {
    log->error("fakellm: {}", e.what());
    return 1;
  }
  return 0;
}

} // namespace offload
