#include "runtime/reload.hpp"

#include "runtime/defaults.hpp"
#include "runtime/logging.hpp"
#include "runtime/systemd.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>

namespace offload {

namespace {

// A STATUS= value must stay on one line.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

} // namespace

reload_plan plan_reload(const daemon_config& running, const daemon_config& fresh) {
  reload_plan plan;
  plan.next = running;

  // Reloadable: an allow-list of what each new call reads from the engine snapshot. Each listed
  // field is taken from the fresh file; any other engine field keeps its running value.
  auto& next = plan.next.engine;
  const auto& e1 = fresh.engine;
  // `field` gives the address of one field of the engine settings it is passed.
  auto take = [&](const char* key, auto field) {
    auto* to = field(next);
    const auto* from = field(e1);
    if (!(*to == *from)) {
      plan.changed.emplace_back(key);
      *to = *from;
    }
  };
  if (running.log_level != fresh.log_level) {
    plan.changed.emplace_back("log_level");
    plan.next.log_level = fresh.log_level;
  }
  take("default_model", [](auto& e) { return &e.default_model; });
  take("shutdown_grace", [](auto& e) { return &e.shutdown_grace; });
  take("batch.max_tasks", [](auto& e) { return &e.limits.max_tasks; });
  take("batch.max_task_chars", [](auto& e) { return &e.limits.max_task_chars; });
  take("batch.max_context_chars", [](auto& e) { return &e.limits.max_context_chars; });
  take("batch.task_timeout", [](auto& e) { return &e.task_timeout; });
  take("batch.batch_timeout", [](auto& e) { return &e.batch_timeout; });
  take("batch.max_task_timeout", [](auto& e) { return &e.limits.max_task_timeout_ms; });
  take("batch.max_batch_timeout", [](auto& e) { return &e.limits.max_batch_timeout_ms; });
  take("batch.max_first_token_timeout",
       [](auto& e) { return &e.limits.max_first_token_timeout_ms; });
  take("batch.max_idle_timeout", [](auto& e) { return &e.limits.max_idle_timeout_ms; });
  take("batch.retry", [](auto& e) { return &e.retry; });
  take("batch.context_chars", [](auto& e) { return &e.default_context_chars; });
  // Context windows derived from models.options (num_ctx) follow the options Ollama is sent,
  // which only a restart changes.
  if (running.model_options == fresh.model_options)
    take("batch.model_context_chars", [](auto& e) { return &e.context_chars; });
  take("batch.seed", [](auto& e) { return &e.seed; });
  take("guards.prompt_injection", [](auto& e) { return &e.injection_guard; });
  take("guards.redact_secrets", [](auto& e) { return &e.redact_secrets; });

  // Restart only: what was built once at start (listeners, backend actors and their clients,
  // the router, the state files, the log sink). Named when changed; the running value stays.
  auto restart = [&](const char* key, const auto& was, const auto& now) {
    if (!(was == now))
      plan.need_restart.emplace_back(key);
  };
  const auto& h0 = running.http;
  const auto& h1 = fresh.http;
  restart("stdio", running.stdio, fresh.stdio);
  restart("http.listen", h0.listen, h1.listen);
  restart("http.allow_remote", h0.allow_remote, h1.allow_remote);
  restart("http.allowed_origins", h0.allowed_origins, h1.allowed_origins);
  restart("http.allowed_hosts", h0.allowed_hosts, h1.allowed_hosts);
  restart("http.session_idle_timeout", h0.session_idle_timeout, h1.session_idle_timeout);
  restart("http.max_sessions", h0.max_sessions, h1.max_sessions);
  restart("http.max_body_bytes", h0.max_body_bytes, h1.max_body_bytes);
  restart("http.max_inflight_per_session", h0.max_inflight_per_session,
          h1.max_inflight_per_session);
  restart("http.sse_retry_ms", h0.sse_retry, h1.sse_retry);
  restart("http.event_buffer", h0.event_buffer, h1.event_buffer);
  restart("http.tokens", h0.tokens, h1.tokens);
  restart("backends", running.backends, fresh.backends);
  restart("models.aliases", running.routing.aliases, fresh.routing.aliases);
  restart("models.options", running.model_options, fresh.model_options);
  restart("routing.strategy", running.routing.strategy, fresh.routing.strategy);
  restart("routing.health_interval", running.routing.health_interval,
          fresh.routing.health_interval);
  restart("routing.discovery_interval", running.routing.discovery_interval,
          fresh.routing.discovery_interval);
  restart("routing.probe_timeout", running.routing.probe_timeout, fresh.routing.probe_timeout);
  restart("routing.breaker", running.routing.breaker, fresh.routing.breaker);
  restart("policy", running.policy_file, fresh.policy_file);
  restart("audit_log", running.audit_log, fresh.audit_log);
  restart("state_dir", running.state_dir, fresh.state_dir);
  restart("ledger.enabled", running.ledger_enabled, fresh.ledger_enabled);
  restart("pricing", running.pricing, fresh.pricing);
  restart("log_format", running.log_format, fresh.log_format);
  restart("profile", running.engine.profile, fresh.engine.profile);
  // The backends took crash_backend at start; one chaos state for the whole run is simpler to
  // reason about than half a reload.
  restart("chaos", running.engine.chaos, fresh.engine.chaos);
  return plan;
}

reloader::reloader(boost::asio::io_context& io, daemon_config running, engine_settings_ptr engine,
                   hooks hooks)
    : running_(std::move(running))
    , engine_(std::move(engine))
    , hooks_(std::move(hooks))
    , hangup_(io, SIGHUP) {
  if (!running_.policy_file.empty())
    policy_.emplace(io, running_.policy_file, defaults::policy_poll_interval,
                    [this](policy_ptr fresh) {
                      systemd::notify_reloading("reloading the policy (the file changed)");
                      hooks_.publish_policy(std::move(fresh));
                      systemd::notify("READY=1\nSTATUS=policy reloaded (the file changed)");
                    });
}

void reloader::start() {
  wait_signal();
  if (policy_)
    policy_->start();
}

void reloader::stop() {
  stopped_ = true;
  boost::system::error_code ignored;
  hangup_.cancel(ignored);
  if (policy_)
    policy_->stop();
}

void reloader::wait_signal() {
  hangup_.async_wait([this](boost::system::error_code ec, int) {
    if (ec || stopped_)
      return;
    reload();
    wait_signal();
  });
}

std::string reloader::reload() {
  systemd::notify_reloading("reloading the configuration");
  std::vector<std::string> reloaded;
  std::vector<std::string> failed;
  if (hooks_.read_config) {
    if (auto error = reload_config())
      failed.push_back(*error);
    else
      reloaded.emplace_back("configuration");
  }
  if (policy_) {
    auto loaded = policy_->read("SIGHUP");
    if (loaded.policy) {
      hooks_.publish_policy(loaded.policy);
      reloaded.emplace_back("policy");
    } else {
      failed.push_back(loaded.errors.empty() ? std::string{"the policy file has errors"}
                                             : loaded.errors.front());
    }
  }
  std::string status;
  if (!failed.empty())
    status =
        fmt::format("reload failed: {}; the previous version stays{}", fmt::join(failed, "; "),
                    reloaded.empty() ? std::string{}
                                     : fmt::format(" (reloaded: {})", fmt::join(reloaded, ", ")));
  else if (!reloaded.empty())
    status = fmt::format("reloaded: {}", fmt::join(reloaded, ", "));
  else
    status = "nothing to reload (no configuration file, no policy)";
  if (failed.empty() && reloaded.empty())
    spdlog::info("SIGHUP: {}", status);
  status = one_line(std::move(status));
  systemd::notify("READY=1\nSTATUS=" + status);
  return status;
}

std::optional<std::string> reloader::reload_config() {
  reload_plan plan;
  try {
    plan = plan_reload(running_, hooks_.read_config());
    // The one change not carried by the engine snapshot; first, so that a failure changes
    // nothing.
    if (plan.next.log_level != running_.log_level)
      set_log_level(plan.next.log_level);
  } catch (const std::exception& e) {
    spdlog::error("configuration reload rejected, the running configuration stays: {}", e.what());
    return std::string{e.what()};
  }
  if (!plan.need_restart.empty())
    spdlog::warn("configuration reload: {} changed, which only a restart applies; running on "
                 "with the previous value(s)",
                 fmt::join(plan.need_restart, ", "));
  running_ = std::move(plan.next);
  if (plan.changed.empty()) {
    spdlog::info("configuration reloaded: no reloadable key changed");
    return std::nullopt;
  }
  auto settings = running_.engine;
  settings.metrics = engine_->metrics;
  engine_ = std::make_shared<const engine_settings>(std::move(settings));
  hooks_.publish_engine(engine_);
  spdlog::info("configuration reloaded: {} changed; calls from now on use the new values",
               fmt::join(plan.changed, ", "));
  return std::nullopt;
}

} // namespace offload
