// `offload fakellm`: the listener and the process around it; fakellm_session.cpp serves each
// connection.

#include "runtime/fakellm_server.hpp"
#include "runtime/fakellm.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>

namespace offload {

namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using fakellm_detail::server_state;

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
    fakellm_detail::start_session(std::move(socket), server_);
    do_accept();
  }

  tcp::acceptor acceptor_;
  server_state& server_;
  net::steady_timer retry_timer_;
};

fakellm::plan_summary summarize(const fakellm::plan_state& plan) {
  fakellm::plan_summary summary;
  summary.source = plan.plan().source;
  summary.description = plan.plan().description;
  summary.seed = plan.seed();
  for (size_t i = 0; i < plan.plan().rules.size(); ++i) {
    const auto& rule = plan.plan().rules[i];
    const auto& counters = plan.counters()[i];
    summary.rules.push_back({rule.name, rule.line, counters.seen, counters.matched});
  }
  return summary;
}

// stdout is reserved for the "listening on" line a parent process reads.
std::shared_ptr<spdlog::logger> make_logger() {
  auto log = std::make_shared<spdlog::logger>(
      "fakellm", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  log->set_level(spdlog::get_level());
  return log;
}

} // namespace

namespace fakellm_detail {

server_state::server_state(const fakellm_options& opts, std::shared_ptr<spdlog::logger> logger)
    : options(opts)
    , log(std::move(logger))
    , slots(opts.slots, opts.queue)
    , ready_at(std::chrono::steady_clock::now() + opts.loading) {
  if (opts.plan)
    plan.emplace(*opts.plan, opts.seed);
  if (!opts.record_dir.empty()) {
    std::string error;
    upstream = parse_http_url(opts.upstream, error);
    if (!upstream)
      throw std::runtime_error(fmt::format("--upstream \"{}\": {}", opts.upstream, error));
    recorder.emplace(opts.record_dir);
    proxy.mode = "record";
    proxy.directory = opts.record_dir;
  } else if (!opts.replay_dir.empty()) {
    library.emplace(opts.replay_dir);
    proxy.mode = "replay";
    proxy.directory = opts.replay_dir;
  }
}

fakellm::stats server_state::snapshot() const {
  auto current = counters;
  current.in_flight = slots.in_use();
  current.max_concurrent = slots.max_in_use();
  current.waiting = slots.waiting();
  current.api = options.api;
  if (plan)
    current.plan = summarize(*plan);
  if (proxying())
    current.proxy = proxy;
  return current;
}

void server_state::reset() {
  counters.reset_counters();
  slots.reset_max();
  attempts.clear();
  if (plan)
    plan->reset();
  if (library)
    library->rewind();
  proxy.exchanges = 0;
  proxy.missing = 0;
  proxy.failed = 0;
}

} // namespace fakellm_detail

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
  std::optional<server_state> state;
  try {
    state.emplace(options, log);
  } catch (const std::exception& e) {
    log->error("fakellm: {}", e.what());
    return 1;
  }
  auto& server = *state;
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
  log->info("fakellm: serving {} model(s) over the {} API(s) with {} slot(s), queue {}, "
            "loading for {} ms",
            options.models.size(), fakellm::to_string(options.api),
            options.slots == 0 ? std::string{"unlimited"} : std::to_string(options.slots),
            options.queue ? std::to_string(*options.queue) : std::string{"unlimited"},
            options.loading.count());
  if (server.plan)
    log->info("fakellm: fault plan {} with {} rule(s), seed {}", options.plan->source,
              options.plan->rules.size(), options.seed);
  if (server.recorder)
    log->info("fakellm: recording exchanges with {} into {}", server.upstream->display(),
              options.record_dir);
  if (server.library)
    log->info("fakellm: replaying {} exchange(s) from {}{}", server.library->size(),
              options.replay_dir, options.replay_timing ? " with their timing" : "");
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
