#include "runtime/serve.hpp"

#include "runtime/http_admin.hpp"
#include "runtime/http_listen.hpp"
#include "runtime/metrics.hpp"
#include "runtime/reload.hpp"
#include "runtime/stdio_transport.hpp"
#include "runtime/systemd.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

namespace offload {

namespace {

namespace asio = boost::asio;

// Tells this process's records apart from earlier runs' (call numbers start again at 1): the
// start time, readable and sortable, plus randomness for two daemons started in one second.
std::string make_run_id() {
  std::random_device random;
  auto now = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  return fmt::format("{:%Y%m%dT%H%M%SZ}-{:08x}", now, random());
}

// CAF's own logger and console output stay silent: stdout is reserved for the protocol.
class offload_actor_config : public caf::actor_system_config {
public:
  offload_actor_config() {
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console-verbosity", caf::atom("quiet"));
  }
};

// Set once by whatever ends the daemon (a signal, the stdio client leaving); main waits for it.
class stop_latch {
public:
  void request() {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      requested_ = true;
    }
    wake_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock{mutex_};
    wake_.wait(lock, [this] { return requested_; });
  }

private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool requested_ = false;
};

// What READY=1 says about the backends, once the router's first round of health probes and model
// discoveries has answered or timed out: the router bounds each by probe_timeout, and the wait
// here, from this thread, is bounded too.
std::string await_backends(caf::actor_system& sys, const router_actor& router,
                           const router_settings& routing) {
  auto wait = routing.probe_timeout + defaults::ready_wait_slack;
  std::string out;
  caf::scoped_actor self{sys};
  self->request(router, wait, router_ready_atom_v)
      .receive(
          [&](router_status& status) {
            auto healthy = std::count_if(
                status.backends.begin(), status.backends.end(), [](const backend_status& b) {
                  return b.health == probe_status::up && b.breaker == breaker_state::closed;
                });
            out = routing.health_interval.count() == 0
                      ? fmt::format("{} backend(s), health probes off", status.backends.size())
                      : fmt::format("{} of {} backend(s) healthy", healthy, status.backends.size());
            spdlog::info("backends probed: {}", out);
          },
          [&](caf::error& err) {
            out = "backends not probed yet";
            spdlog::warn("the backends' first health probes did not finish within {} ms ({}); "
                         "reporting ready anyway",
                         wait.count(), caf::to_string(err));
          });
  return out;
}

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

  // One thread runs every socket; actors reach it only by posting. It starts once nothing can
  // fail any more, so that a failed start-up has no thread to join.
  asio::io_context io{1};
  auto work = asio::make_work_guard(io);
  auto metrics = std::make_shared<metrics::registry>([&] {
    std::vector<std::string> names;
    for (const auto& b : config.backends)
      names.push_back(b.name);
    return names;
  }());
  // What the HTTP transport's sessions need; set below, before the transport accepts anything.
  router_actor router;
  engine_settings_ptr engine;
  // The policy sessions start with; a reload replaces its snapshot (on the I/O thread, where the
  // HTTP transport spawns its sessions too).
  policy_context current_policy;
  // The usage ledger sessions record to (set below, before anything is served).
  usage_context usage;
  stop_latch latch;

  // Bound (or adopted from systemd) before any actor exists, so that a taken port ends the
  // start-up cleanly.
  std::optional<http_transport> http;
  if (wants_http(config.http))
    open_http_transport(
        http, io, config.http,
        [&sys, &router, &engine, &current_policy, &usage](session_settings session,
                                                          output_sink sink) {
          session.server_version = version_string;
          return spawn_mcp_session(sys, std::move(session), std::move(sink), router, engine,
                                   current_policy, usage);
        },
        metrics);

  // Opened before any thread starts, so a bad path ends the start-up cleanly.
  if (policy_snapshot || config.ledger_enabled) {
    std::error_code ec;
    std::filesystem::create_directories(config.state_dir, ec);
    if (ec)
      throw config_error("cannot create the state directory " + config.state_dir + ": " +
                         ec.message());
  }
  if (config.ledger_enabled) {
    auto db = config.state_dir + "/" + ledger_file_name;
    usage.ledger = spawn_usage_ledger(sys, db);
    usage.run_id = make_run_id();
    usage.prices = std::make_shared<const price_table>(config.pricing);
    spdlog::info("recording usage in {} (run {})", db, usage.run_id);
  }
  counter_store_actor counters;
  if (policy_snapshot) {
    auto db = config.state_dir + "/counters.sqlite";
    counters = spawn_counter_store(sys, db);
    spdlog::info("policy counters persist in {}", db);
  }
  audit_log_actor audit;
  if (!config.audit_log.empty()) {
    audit = spawn_audit_log(sys, config.audit_log);
    spdlog::info("auditing tools/call decisions to {}", config.audit_log);
  }

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
    settings.metrics = metrics->backend(b.name);
    settings.chaos = config.engine.chaos;
    settings.chaos_crashes = &metrics->chaos_events(chaos::fault::crash_backend);
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
  router = spawn_router(sys, std::move(backends), config.routing);
  if (config.engine.chaos.enabled)
    spdlog::warn("CHAOS IS ON: this daemon fails work on purpose ({}); never run it for real work",
                 chaos::describe(config.engine.chaos));
  {
    auto settings = config.engine;
    settings.metrics = metrics;
    engine = std::make_shared<const engine_settings>(std::move(settings));
  }

  policy_context policy;
  policy.audit = audit;
  if (policy_snapshot) {
    policy.policy = policy_snapshot;
    policy.now = [] { return std::chrono::system_clock::now(); };
    policy.registry = spawn_bucket_registry(sys, policy.now, counters);
  }
  current_policy = policy;

  std::optional<stdio_transport> stdio;
  mcp_session_actor stdio_session;
  if (config.stdio) {
    stdio.emplace(STDIN_FILENO, STDOUT_FILENO, options.max_message_bytes);
    stdio_session = spawn_mcp_session(sys, {"stdio", version_string, ""}, stdio->sink(), router,
                                      engine, policy, usage);
    metrics->sessions(metrics::transport_kind::stdio).add();
    // The stdio client leaving (EOF, its calls done) ends the daemon, HTTP included: it was
    // started for that client.
    caf::actor_cast<caf::strong_actor_ptr>(stdio_session)->get()->attach_functor([&latch] {
      latch.request();
    });
  }

  asio::signal_set signals{io, SIGINT, SIGTERM};
  // The first signal drains: sessions take no new calls, and running ones may finish within the
  // grace period before they are cancelled (they still answer, unfinished tasks `cancelled`). A
  // second signal cancels at once. Handlers run on the I/O thread, where HTTP sessions live.
  int signals_seen = 0;
  auto shutdown_sessions = [&] {
    if (stdio_session)
      caf::anon_send(stdio_session, shutdown_atom_v);
    if (http)
      http->for_each_session(
          [](const mcp_session_actor& session) { caf::anon_send(session, shutdown_atom_v); });
  };
  std::function<void()> await_signal = [&] {
    signals.async_wait([&](boost::system::error_code ec, int signal) {
      if (ec)
        return;
      if (++signals_seen == 1) {
        spdlog::info("received signal {}; draining: running calls may finish within {} ms", signal,
                     engine->shutdown_grace.count());
        latch.request();
      } else {
        spdlog::warn("received signal {} again; cancelling running calls now", signal);
        shutdown_sessions();
      }
      await_signal();
    });
  };
  await_signal();

  spdlog::info("offload {} serving MCP on {} (default model {})", version_string,
               config.stdio && http ? "stdio and HTTP"
               : http               ? "HTTP"
                                    : "stdio",
               config.engine.default_model);
  // SIGHUP reloads the configuration and the policy (runtime/reload): new snapshots for calls
  // from then on, handed to the sessions on the I/O thread, where HTTP sessions are spawned too.
  reloader::hooks reload_hooks;
  reload_hooks.read_config = options.reload_config;
  reload_hooks.publish_engine = [&](engine_settings_ptr fresh) {
    engine = fresh;
    if (stdio_session)
      caf::anon_send(stdio_session, new_engine_atom_v, fresh);
    if (http)
      http->for_each_session([&](const mcp_session_actor& session) {
        caf::anon_send(session, new_engine_atom_v, fresh);
      });
  };
  reload_hooks.publish_policy = [&](policy_ptr fresh) {
    current_policy.policy = fresh;
    if (stdio_session)
      caf::anon_send(stdio_session, new_policy_atom_v, fresh);
    if (http)
      http->for_each_session([&](const mcp_session_actor& session) {
        caf::anon_send(session, new_policy_atom_v, fresh);
      });
  };
  reloader reloads{io, config, engine, std::move(reload_hooks)};
  asio::post(io, [&reloads] { reloads.start(); });
  std::thread io_thread{[&io] { io.run(); }};
  if (http)
    asio::post(io, [&http] {
      http->start();
      http->set_health(health_state::ready);
    });
  if (stdio)
    stdio->start(stdio_session);

  // systemd: READY=1 once the transports listen and the router has heard from every backend
  // (or given up on it); from now on a pulse on the actor system's own scheduler sends
  // WATCHDOG=1 (when WatchdogSec= is set) and live figures, so that a wedged scheduler stops the
  // pings and systemd restarts the daemon.
  {
    std::promise<void> listening;
    auto started = listening.get_future();
    asio::post(io, [&] { listening.set_value(); });
    started.wait();
  }
  auto status_line = [&metrics](const std::string& backends) {
    return fmt::format("STATUS={} session(s), {} call(s) in flight, {}",
                       metrics->sessions(metrics::transport_kind::stdio).value() +
                           metrics->sessions(metrics::transport_kind::http).value(),
                       metrics->inflight_calls().value(), backends);
  };
  auto ready = std::make_shared<std::atomic<bool>>(false);
  auto watchdog = systemd::watchdog_interval();
  auto pulse_every = watchdog ? std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog / 2)
                              : std::chrono::milliseconds{defaults::status_interval};
  auto pulse = spawn_pulse(
      sys, std::max(pulse_every, std::chrono::milliseconds{10}),
      [status_line, ready, watchdog = watchdog.has_value(), metrics,
       probes = config.routing.health_interval.count() > 0] {
        auto backends = probes ? fmt::format("{} of {} backend(s) healthy",
                                             metrics->healthy_backends(), metrics->backend_count())
                               : fmt::format("{} backend(s)", metrics->backend_count());
        systemd::notify(
            (watchdog ? "WATCHDOG=1\n" : "") +
            (ready->load() ? status_line(backends) : "STATUS=starting: probing the backends"));
      });
  auto probed = await_backends(sys, router, config.routing);
  ready->store(true);
  systemd::notify("READY=1\n" + status_line(probed));

  latch.wait();
  systemd::notify("STOPPING=1\nSTATUS=draining: finishing running calls");
  caf::anon_send_exit(pulse, caf::exit_reason::user_shutdown);

  // Shutdown: stop accepting and end the HTTP sessions (their streams close), end the stdio
  // session, wait for every session actor, then tear the engine down as before.
  caf::scoped_actor self{sys};
  // Drain: no new HTTP sessions, every session told to shut down (it quits once its calls have
  // answered, cancelling them when the grace period ends); then stop the transports and tear
  // the engine down.
  if (http)
    http->set_health(health_state::draining);
  {
    std::promise<void> told;
    auto done = told.get_future();
    asio::post(io, [&] {
      shutdown_sessions();
      told.set_value();
    });
    done.wait();
  }
  if (stdio_session) {
    self->wait_for(stdio_session);
    stdio->stop();
    metrics->sessions(metrics::transport_kind::stdio).sub();
  }
  std::vector<mcp_session_actor> http_sessions;
  if (http) {
    std::promise<std::vector<mcp_session_actor>> live;
    auto sessions = live.get_future();
    asio::post(io, [&] {
      std::vector<mcp_session_actor> all;
      http->for_each_session([&](const mcp_session_actor& session) { all.push_back(session); });
      live.set_value(std::move(all));
    });
    for (auto& session : sessions.get())
      self->wait_for(session);
    std::promise<std::vector<mcp_session_actor>> stopped;
    auto ended = stopped.get_future();
    asio::post(io, [&] { stopped.set_value(http->stop()); });
    http_sessions = ended.get();
  }
  for (auto& session : http_sessions)
    self->wait_for(session);
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
  if (usage.ledger) {
    // After the session, whose calls have answered (their records committed first); records
    // still queued are written as the ledger stops.
    caf::anon_send_exit(usage.ledger, caf::exit_reason::user_shutdown);
    self->wait_for(usage.ledger);
  }
  self->wait_for(router);
  // Exchanges still on the wire belong to tasks that are gone; dropping them is correct.
  work.reset();
  io.stop();
  io_thread.join();
  reloads.stop();
  spdlog::info("offload stopped");
  return 0;
}

} // namespace offload
