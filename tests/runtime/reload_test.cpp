// What a configuration reload applies: plan_reload key by key (reloadable keys taken from the
// fresh file, restart-only keys named and kept), and the reloader publishing a new engine
// snapshot only for a valid file.
#define CAF_SUITE reload
#include <caf/test/unit_test.hpp>

#include "runtime/reload.hpp"

#include <boost/asio/io_context.hpp>

#include <memory>
#include <vector>

using namespace offload;
using namespace std::chrono_literals;

namespace {

daemon_config base_config() {
  daemon_config config;
  config.http.listen = "127.0.0.1:8787";
  config.state_dir = "/var/lib/offload";
  config.backends.push_back(parse_backend_flag("ollama=http://127.0.0.1:11434"));
  finalize_config(config);
  return config;
}

bool contains(const std::vector<std::string>& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

} // namespace

CAF_TEST(an unchanged configuration changes nothing) {
  auto plan = plan_reload(base_config(), base_config());
  CAF_CHECK(plan.changed.empty());
  CAF_CHECK(plan.need_restart.empty());
}

CAF_TEST(reloadable keys are taken from the fresh configuration) {
  auto running = base_config();
  running.engine.metrics = std::make_shared<metrics::registry>();
  auto fresh = base_config();
  fresh.engine.limits.max_tasks = 2;
  fresh.engine.default_model = "llama3.2:3b";
  fresh.engine.injection_guard = guards::guard_mode::warn;
  fresh.engine.retry.max_attempts = 1;
  fresh.log_level = "debug";
  auto plan = plan_reload(running, fresh);
  CAF_CHECK(plan.need_restart.empty());
  CAF_CHECK_EQUAL(plan.changed.size(), 5u);
  for (const char* key :
       {"log_level", "default_model", "batch.max_tasks", "batch.retry", "guards.prompt_injection"})
    CAF_CHECK(contains(plan.changed, key));
  CAF_CHECK_EQUAL(plan.next.engine.limits.max_tasks, 2u);
  CAF_CHECK_EQUAL(plan.next.engine.default_model, "llama3.2:3b");
  CAF_CHECK_EQUAL(plan.next.log_level, "debug");
  // The metrics registry is the running one, not the fresh (empty) one.
  CAF_CHECK(plan.next.engine.metrics == running.engine.metrics);
}

CAF_TEST(engine fields outside the reloadable list keep their running values) {
  auto running = base_config();
  auto fresh = base_config();
  fresh.engine.tools_page_size = 3;
  fresh.engine.progress_heartbeat = 1s;
  auto plan = plan_reload(running, fresh);
  CAF_CHECK(plan.changed.empty());
  CAF_CHECK_EQUAL(plan.next.engine.tools_page_size, running.engine.tools_page_size);
  CAF_CHECK(plan.next.engine.progress_heartbeat == running.engine.progress_heartbeat);
}

CAF_TEST(restart only keys are named and keep their running values) {
  auto running = base_config();
  auto fresh = base_config();
  fresh.http.listen = "127.0.0.1:9999";
  fresh.http.max_sessions = 7;
  fresh.state_dir = "/tmp/elsewhere";
  fresh.backends.push_back(parse_backend_flag("openai=http://127.0.0.1:8080"));
  fresh.routing.strategy = routing_strategy::ordered;
  fresh.engine.limits.max_tasks = 4;
  fresh.engine.chaos.enabled = true;
  fresh.engine.chaos.kill_task = 0.5;
  finalize_config(fresh);
  auto plan = plan_reload(running, fresh);
  for (const char* key :
       {"http.listen", "http.max_sessions", "state_dir", "backends", "routing.strategy", "chaos"})
    CAF_CHECK(contains(plan.need_restart, key));
  CAF_CHECK_EQUAL(plan.need_restart.size(), 6u);
  CAF_CHECK(!plan.next.engine.chaos.enabled);
  CAF_CHECK_EQUAL(plan.next.http.listen, "127.0.0.1:8787");
  CAF_CHECK_EQUAL(plan.next.state_dir, "/var/lib/offload");
  CAF_CHECK_EQUAL(plan.next.backends.size(), 1u);
  CAF_CHECK(plan.next.routing.strategy == routing_strategy::least_loaded);
  // The reloadable part of the same edit still applies.
  CAF_CHECK_EQUAL(plan.changed, std::vector<std::string>{"batch.max_tasks"});
  CAF_CHECK_EQUAL(plan.next.engine.limits.max_tasks, 4u);
}

CAF_TEST(context windows derived from models options wait for a restart) {
  auto running = base_config();
  auto fresh = base_config();
  fresh.model_options["qwen2.5-coder:7b"].num_ctx = 16384;
  finalize_config(fresh);
  CAF_REQUIRE_EQUAL(fresh.engine.context_chars.count("qwen2.5-coder:7b"), 1u);
  auto plan = plan_reload(running, fresh);
  CAF_CHECK_EQUAL(plan.need_restart, std::vector<std::string>{"models.options"});
  CAF_CHECK(plan.changed.empty());
  CAF_CHECK(plan.next.engine.context_chars.empty());
}

CAF_TEST(the reloader publishes a valid configuration and keeps the old one otherwise) {
  boost::asio::io_context io;
  auto running = base_config();
  auto engine = std::make_shared<const engine_settings>(running.engine);
  daemon_config next = base_config();
  next.engine.limits.max_tasks = 3;
  bool broken = false;
  std::vector<engine_settings_ptr> published;
  reloader::hooks hooks;
  hooks.read_config = [&] {
    if (broken)
      throw config_error("offload.yaml:2: batch.max_tasks has an invalid value \"zero\"");
    return next;
  };
  hooks.publish_engine = [&](engine_settings_ptr fresh) { published.push_back(fresh); };
  hooks.publish_policy = [](policy_ptr) { CAF_FAIL("no policy is configured"); };
  reloader aut{io, running, engine, hooks};
  CAF_CHECK_EQUAL(aut.reload(), "reloaded: configuration");
  CAF_REQUIRE_EQUAL(published.size(), 1u);
  CAF_CHECK_EQUAL(published[0]->limits.max_tasks, 3u);
  // Nothing changed since: nothing to publish.
  CAF_CHECK_EQUAL(aut.reload(), "reloaded: configuration");
  CAF_CHECK_EQUAL(published.size(), 1u);
  broken = true;
  auto status = aut.reload();
  CAF_CHECK_EQUAL(status.rfind("reload failed: offload.yaml:2: batch.max_tasks", 0), 0u);
  CAF_CHECK_EQUAL(published.size(), 1u);
  // Back to a valid file that differs from the running one: published again.
  broken = false;
  next.engine.limits.max_tasks = 5;
  aut.reload();
  CAF_REQUIRE_EQUAL(published.size(), 2u);
  CAF_CHECK_EQUAL(published[1]->limits.max_tasks, 5u);
}
