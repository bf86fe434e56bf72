#include "runtime/serve.hpp"

#include "runtime/http_admin.hpp"
#include "runtime/policy_watcher.hpp"
#include "runtime/stdio_transport.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <filesystem>
#include <optional>
#include <thread>

namespace offload {

namespace {

namespace asio = boost::asio;

// CAF's own logger and console output stay silent: stdout is reserved for the protocol.
class offload_actor_config : public caf::actor_system_config {
public:
  offload_actor_config() {
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console-verbosity", caf::atom("quiet"));
  }
};

} // namespace

int run_serve(const serve_options& options) {
  const auto& config = options.config;
  std::signal(SIGPIPE, SIG_IGN); // a vanished peer is an error code, not a dead daemon

  // Load the policy before any thread starts: a bad file ends the start-up cleanly.
  policy_ptr policy_snapshot;
  if (!config.policy_file.empty()) {
    auto loaded = load_policy_file(config.policy_file);
    for (const auto& warning : loaded.warnings)
      spdlog::warn("policy: {}", warning);
    if (!loaded.policy) {
      std::string all;
      for (const auto& error : loaded.errors)
        all += "\n  " + error;
      throw config_error("the policy file has errors:" + all);
    }
    policy_snapshot = loaded.policy;
    spdlog::info("policy {} loaded", config.policy_file);
  }

  offload_actor_config actor_config;
  caf::actor_system sys{actor_config};
  // Opened before any thread starts, so a bad path ends the start-up cleanly.
  counter_store_actor counters;
  if (policy_snapshot) {
    std::error_code ec;
    std::filesystem::create_directories(config.state_dir, ec);
    if (ec)
      throw config_error("cannot create the state directory " + config.state_dir + ": " +
                         ec.message());
    auto db = config.state_dir + "/counters.sqlite";
    counters = spawn_counter_store(sys, db);
    spdlog::info("policy counters persist in {}", db);
  }
  audit_log_actor audit;
  if (!config.audit_log.empty()) {
    audit = spawn_audit_log(sys, config.audit_log);
    spdlog::info("auditing tools/call decisions to {}", config.audit_log);
  }

  // One thread runs every socket; actors reach it only by posting.
  asio::io_context io{1};
  auto work = asio::make_work_guard(io);
  std::thread io_thread{[&io] { io.run(); }};

  std::vector<backend_spec> backends;
  admin_options admin;
  admin.model_options = config.model_options;
  admin.probe_timeout = config.routing.probe_timeout;
  for (const auto& b : config.backends) {
    // finalize_config has checked the kind.
    auto kind = parse_backend_kind(b.kind).value();
    auto client =
        make_llm_client(io, kind, b.target, b.timeouts, b.max_concurrency, config.model_options);
    backend_settings settings;
    settings.name = b.name;
    settings.max_concurrency = b.max_concurrency;
    settings.max_queue = b.max_queue;
    settings.queue_wait = b.queue_wait;
    settings.aging = b.aging;
    auto spec = make_backend_spec(std::move(settings), std::move(client),
                                  make_endpoint_admin(io, kind, b.target, admin));
    spec.kind = b.kind;
    spec.models = b.models;
    spec.discover = b.discover;
    backends.push_back(std::move(spec));
    spdlog::info("backend {}: {} at {}, {} concurrent request(s){}", b.name, b.kind,
                 b.target.display(), b.max_concurrency,
                 b.models.empty()
                     ? std::string{}
                     : fmt::format(", configured models: {}", fmt::join(b.models, ", ")));
  }
  spdlog::info("routing: {}, health probes every {} ms, model discovery every {} ms",
               to_string(config.routing.strategy), config.routing.health_interval.count(),
               config.routing.discovery_interval.count());
  auto router = spawn_router(sys, std::move(backends), config.routing);
  auto engine = std::make_shared<const engine_settings>(config.engine);

  stdio_transport transport{STDIN_FILENO, STDOUT_FILENO, options.max_message_bytes};
  policy_context policy;
  policy.audit = audit;
  if (policy_snapshot) {
    policy.policy = policy_snapshot;
    policy.now = [] { return std::chrono::system_clock::now(); };
    policy.registry = spawn_bucket_registry(sys, policy.now, counters);
  }
  auto session = spawn_mcp_session(sys, {"stdio", version_string, ""}, transport.sink(), router,
                                   engine, policy);

  asio::signal_set signals{io, SIGINT, SIGTERM};
  // The first signal cancels running calls, which still answer (their unfinished tasks as
  // `cancelled`); a second one stops at once.
  std::function<void()> await_signal;
  bool signalled = false;
  await_signal = [&] {
    signals.async_wait([&, session](boost::system::error_code ec, int signal) {
      if (ec)
        return;
      if (!signalled) {
        signalled = true;
        spdlog::info("received signal {}; cancelling running calls and shutting down", signal);
        caf::anon_send(session, shutdown_atom_v);
        await_signal();
        return;
      }
      spdlog::warn("received signal {} again; stopping now", signal);
      caf::anon_send_exit(session, caf::exit_reason::user_shutdown);
    });
  };
  await_signal();

  spdlog::info("offload {} serving MCP on stdio (default model {})", version_string,
               config.engine.default_model);
  // Reloads swap the snapshot for calls from then on; running calls keep the one they started
  // with. A daemon started without a policy has nothing to reload.
  std::optional<policy_watcher> watcher;
  if (policy_snapshot) {
    watcher.emplace(io, config.policy_file, defaults::policy_poll_interval,
                    [session](policy_ptr fresh) {
                      caf::anon_send(session, new_policy_atom_v, std::move(fresh));
                    });
    asio::post(io, [&watcher] { watcher->start(); });
  }
  // SIGHUP must never end the daemon (its default action), even with nothing to reload.
  asio::signal_set hangup{io};
  std::function<void()> ignore_hangup = [&] {
    hangup.async_wait([&](boost::system::error_code ec, int) {
      if (ec)
        return;
      spdlog::info("SIGHUP: no policy file configured, nothing to reload");
      ignore_hangup();
    });
  };
  if (!policy_snapshot) {
    hangup.add(SIGHUP);
    asio::post(io, ignore_hangup);
  }
  transport.start(session);
  caf::scoped_actor self{sys};
  self->wait_for(session);
  transport.stop();
  // The backends own sockets of `io`: they must be gone before the io_context is. The router
  // stops them and quits only once they are gone.
  caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
  if (audit) {
    caf::anon_send_exit(audit, caf::exit_reason::user_shutdown);
    self->wait_for(audit);
  }
  if (policy.registry) {
    caf::anon_send_exit(policy.registry, caf::exit_reason::user_shutdown);
    self->wait_for(policy.registry);
  }
  if (counters) {
    // After the registry and its buckets, so that their last saves are written.
    caf::anon_send_exit(counters, caf::exit_reason::user_shutdown);
    self->wait_for(counters);
  }
  self->wait_for(router);
  // Exchanges still on the wire belong to tasks that are gone; dropping them is correct.
  work.reset();
  io.stop();
  io_thread.join();
  if (watcher)
    watcher->stop();
  spdlog::info("offload stopped");
  return 0;
}

} // namespace offload
