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

// stdout is reserved for the "listening on" line a parent process reads.
std::shared_ptr<spdlog::logger> make_logger() {
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
  server_state server{options, log};
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
