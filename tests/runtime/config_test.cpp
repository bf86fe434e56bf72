#define CAF_SUITE config
#include <caf/test/unit_test.hpp>

#include "tests/check_case.hpp"

#include "runtime/config.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

using namespace offload;
using std::chrono::milliseconds;

namespace {

// Writes `text` to a temporary file that is removed at the end of the test.
struct temp_yaml {
  std::string path;
  explicit temp_yaml(const std::string& text) {
    char name[] = "/tmp/offload-config-XXXXXX";
    int fd = mkstemp(name);
    CAF_REQUIRE(fd >= 0);
    path = name;
    std::ofstream{path} << text;
    ::close(fd);
  }
  ~temp_yaml() { std::remove(path.c_str()); }
};

std::string load_error(const std::string& text) {
  temp_yaml file{text};
  try {
    load_config_file(file.path);
  } catch (const config_error& e) {
    return e.what();
  }
  CAF_FAIL("expected a config error for: " << text);
}

} // namespace

CAF_TEST(durations accept units) {
  CAF_CHECK(parse_duration("250ms") == milliseconds{250});
  CAF_CHECK(parse_duration("30s") == milliseconds{30000});
  CAF_CHECK(parse_duration("30") == milliseconds{30000});
  CAF_CHECK(parse_duration("2m") == milliseconds{120000});
  CAF_CHECK(parse_duration("1h") == milliseconds{3600000});
  for (auto bad : {"", "s", "-1s", "3 days", "1.5s"}) {
    bool threw = false;
    try {
      parse_duration(bad);
    } catch (const config_error&) {
      threw = true;
    }
    CAF_CHECK(threw);
  }
}

CAF_TEST(backend flags need a known kind and a url) {
  auto b = parse_backend_flag("ollama=http://127.0.0.1:9");
  CAF_CHECK_EQUAL(b.kind, "ollama");
  CAF_CHECK_EQUAL(b.url, "http://127.0.0.1:9");
  bool threw = false;
  try {
    parse_backend_flag("http://127.0.0.1:9");
  } catch (const config_error&) {
    threw = true;
  }
  CAF_CHECK(threw);
}

CAF_TEST(a full file is read) {
  temp_yaml file{R"(log_level: debug
default_model: llama3.2:3b
batch:
  max_tasks: 5
  task_timeout: 10s
  batch_timeout: 1m
  max_task_timeout: 15s
  retry: {max_attempts: 5, base_backoff: 100ms, max_backoff: 2s, jitter: 0.25}
  context_chars: 4000
  model_context_chars: {big-model: 100000}
backends:
  - name: gpu
    url: http://127.0.0.1:11434/
    max_concurrency: 8
    max_queue: 20
    queue_wait: 30s
    aging: 2s
    timeouts: {connect: 1s, first_token: 20s, idle: 5s}
)"};
  auto config = load_config_file(file.path);
  finalize_config(config);
  CAF_CHECK_EQUAL(config.log_level, "debug");
  CAF_CHECK_EQUAL(config.engine.default_model, "llama3.2:3b");
  CAF_CHECK_EQUAL(config.engine.limits.max_tasks, 5u);
  CAF_CHECK(config.engine.task_timeout == milliseconds{10000});
  CAF_REQUIRE_EQUAL(config.backends.size(), 1u);
  const auto& b = config.backends[0];
  CAF_CHECK_EQUAL(b.name, "gpu");
  CAF_CHECK_EQUAL(b.max_concurrency, 8u);
  CAF_CHECK_EQUAL(b.target.port, "11434");
  CAF_CHECK_EQUAL(b.target.base_path, "");
  CAF_CHECK(b.timeouts.first_token == milliseconds{20000});
  CAF_CHECK_EQUAL(b.max_queue, 20u);
  CAF_CHECK(b.queue_wait == milliseconds{30000});
  CAF_CHECK(b.aging == milliseconds{2000});
  // The total never exceeds the longest task deadline a call may ask for.
  CAF_CHECK(b.timeouts.total == milliseconds{15000});
  CAF_CHECK_EQUAL(config.engine.limits.max_task_timeout_ms, 15000);
  CAF_CHECK_EQUAL(config.engine.retry.max_attempts, 5u);
  CAF_CHECK(config.engine.retry.base_backoff == milliseconds{100});
  CAF_CHECK(config.engine.retry.max_backoff == milliseconds{2000});
  CAF_CHECK_EQUAL(config.engine.retry.jitter, 0.25);
  CAF_CHECK_EQUAL(config.engine.default_context_chars, 4000u);
  CAF_CHECK_EQUAL(config.engine.context_chars.at("big-model"), 100000u);
}

CAF_TEST(no backend means the default ollama) {
  daemon_config config;
  finalize_config(config);
  CAF_REQUIRE_EQUAL(config.backends.size(), 1u);
  CAF_CHECK_EQUAL(config.backends[0].name, "ollama@127.0.0.1:11434");
}

CAF_TEST(unknown keys are errors naming key and line) {
  auto error = load_error("batch:\n  max_tasks: 3\n  max_taks: 4\n");
  CAF_CHECK_NOT_EQUAL(error.find(":3:"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(error.find("max_taks"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(load_error("colour: red\n").find("colour"), std::string::npos);
}

CAF_TEST(bad values are errors naming the field) {
  CAF_CHECK_NOT_EQUAL(load_error("batch:\n  max_tasks: 0\n").find("at least 1"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(load_error("batch:\n  task_timeout: soon\n").find("task_timeout"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(load_error("backends:\n  - kind: ollama\n").find("url"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(load_error("backends:\n  - url: http://x\n    kind: vllm\n").find("vllm"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(load_error("batch: [\n").find(":"), std::string::npos);
  // Checked when read (not only when logging starts), so that a reload names the line too.
  auto level = load_error("default_model: m\nlog_level: chatty\n");
  CAF_CHECK_NOT_EQUAL(level.find(":2: log_level must be"), std::string::npos);
}

CAF_TEST(urls must be http) {
  daemon_config config;
  backend_config b;
  b.url = "https://example.invalid";
  config.backends.push_back(b);
  bool threw = false;
  try {
    finalize_config(config);
  } catch (const config_error& e) {
    threw = std::string{e.what()}.find("only http://") != std::string::npos;
  }
  CAF_CHECK(threw);
}

CAF_TEST(the shipped default config loads and matches the built - in defaults) {
  auto config = load_config_file(OFFLOAD_SOURCE_DIR "/configs/offload.yaml");
  finalize_config(config);
  daemon_config builtin;
  finalize_config(builtin);
  CAF_CHECK_EQUAL(config.engine.default_model, builtin.engine.default_model);
  CAF_CHECK_EQUAL(config.engine.limits.max_tasks, builtin.engine.limits.max_tasks);
  CAF_CHECK(config.engine.task_timeout == builtin.engine.task_timeout);
  CAF_CHECK(config.engine.batch_timeout == builtin.engine.batch_timeout);
  CAF_REQUIRE_EQUAL(config.backends.size(), 1u);
  CAF_CHECK_EQUAL(config.backends[0].target.display(), builtin.backends[0].target.display());
  CAF_CHECK_EQUAL(config.backends[0].max_concurrency, builtin.backends[0].max_concurrency);
  CAF_CHECK(config.backends[0].timeouts.first_token == builtin.backends[0].timeouts.first_token);
  CAF_CHECK_EQUAL(config.http.listen, builtin.http.listen);
  CAF_CHECK(config.http.session_idle_timeout == builtin.http.session_idle_timeout);
  CAF_CHECK_EQUAL(config.http.max_sessions, builtin.http.max_sessions);
  CAF_CHECK_EQUAL(config.http.max_body_bytes, builtin.http.max_body_bytes);
  CAF_CHECK_EQUAL(config.http.max_inflight_per_session, builtin.http.max_inflight_per_session);
  CAF_CHECK(config.http.sse_retry == builtin.http.sse_retry);
  CAF_CHECK_EQUAL(config.http.event_buffer, builtin.http.event_buffer);
  CAF_CHECK(config.http.tokens.empty());
  CAF_CHECK_EQUAL(config.ledger_enabled, builtin.ledger_enabled);
  CAF_CHECK_EQUAL(config.pricing.comparison_model, builtin.pricing.comparison_model);
  CAF_CHECK_EQUAL(config.pricing.cloud_prices.size(), builtin.pricing.cloud_prices.size());
  CAF_CHECK(config.backends[0].discover == builtin.backends[0].discover);
  const auto& r = config.routing;
  const auto& d = builtin.routing;
  CAF_CHECK(r.strategy == d.strategy);
  CAF_CHECK(r.health_interval == d.health_interval);
  CAF_CHECK(r.discovery_interval == d.discovery_interval);
  CAF_CHECK(r.probe_timeout == d.probe_timeout);
  CAF_CHECK_EQUAL(r.breaker.consecutive_failures, d.breaker.consecutive_failures);
  CAF_CHECK_EQUAL(r.breaker.failure_rate, d.breaker.failure_rate);
  CAF_CHECK_EQUAL(r.breaker.min_requests, d.breaker.min_requests);
  CAF_CHECK(r.breaker.window == d.breaker.window);
  CAF_CHECK(r.breaker.cooldown == d.breaker.cooldown);
  CAF_CHECK(r.aliases.empty() && config.model_options.empty());
  const auto& c = config.engine.chaos;
  const auto& dc = builtin.engine.chaos;
  CAF_CHECK(!c.enabled && !dc.enabled);
  CAF_CHECK_EQUAL(c.seed, dc.seed);
  CAF_CHECK_EQUAL(c.kill_task, dc.kill_task);
  CAF_CHECK_EQUAL(c.delay_message, dc.delay_message);
  CAF_CHECK_EQUAL(c.crash_backend, dc.crash_backend);
  CAF_CHECK(c.delay_min == dc.delay_min && c.delay_max == dc.delay_max);
}

CAF_TEST(the chaos section is read) {
  temp_yaml file{R"(chaos:
  enabled: true
  seed: 12345
  kill_task: 0.2
  delay_message: 0.3
  delay: {min: 5ms, max: 2s}
  crash_backend: 1
)"};
  auto config = load_config_file(file.path);
  finalize_config(config);
  const auto& c = config.engine.chaos;
  CAF_CHECK(c.enabled);
  CAF_CHECK_EQUAL(c.seed, 12345u);
  CAF_CHECK_EQUAL(c.kill_task, 0.2);
  CAF_CHECK_EQUAL(c.delay_message, 0.3);
  CAF_CHECK_EQUAL(c.crash_backend, 1.0);
  CAF_CHECK(c.delay_min == milliseconds{5});
  CAF_CHECK(c.delay_max == milliseconds{2000});
  // Without the section, or without `enabled`, chaos is off.
  temp_yaml quiet{"chaos:\n  kill_task: 0.5\n"};
  CAF_CHECK(!load_config_file(quiet.path).engine.chaos.enabled);
  CAF_CHECK(!daemon_config{}.engine.chaos.enabled);
}

CAF_TEST(the example chaos config loads with chaos on) {
  auto config = load_config_file(OFFLOAD_SOURCE_DIR "/configs/offload-chaos.yaml");
  finalize_config(config);
  const auto& c = config.engine.chaos;
  CAF_CHECK(c.enabled);
  CAF_CHECK_GREATER(c.kill_task, 0.0);
  CAF_CHECK_GREATER(c.delay_message, 0.0);
  CAF_CHECK_GREATER(c.crash_backend, 0.0);
}

CAF_TEST(chaos errors name the key and its line) {
  auto has = [](const std::string& error, std::string_view part) {
    return error.find(part) != std::string::npos;
  };
  for (auto key : {"kill_task", "delay_message", "crash_backend"}) {
    for (auto bad : {"1.5", "-0.1", ".nan"}) {
      auto error = load_error(fmt::format("chaos:\n  enabled: true\n  {}: {}\n", key, bad));
      CHECK_CASE(has(error, fmt::format(":3: chaos.{} is a probability and must be between 0 and "
                                        "1, got {}",
                                        key, bad)),
                 key << ": " << bad << " -> " << error);
    }
    auto error = load_error(fmt::format("chaos:\n  {}: often\n", key));
    CHECK_CASE(has(error, fmt::format(":2: chaos.{} has an invalid value \"often\"", key)), error);
  }
  CAF_CHECK(
      has(load_error("chaos:\n  kill_tasks: 0.1\n"), ":2: unknown key \"kill_tasks\" in chaos"));
  CAF_CHECK(has(load_error("chaos:\n  delay: {min: 2s, max: 1s}\n"),
                ":2: chaos.delay.min (2000 ms) must not be more than chaos.delay.max (1000 ms)"));
  CAF_CHECK(has(load_error("chaos:\n  delay: {min: 1s}\n"), "chaos.delay.max (500 ms)"));
  CAF_CHECK(
      has(load_error("chaos:\n  delay: {mean: 1s}\n"), "unknown key \"mean\" in chaos.delay"));
  CAF_CHECK(has(load_error("chaos:\n  delay: {max: soon}\n"), "chaos.delay.max"));
  CAF_CHECK(has(load_error("chaos:\n  enabled: sometimes\n"), "chaos.enabled"));
  CAF_CHECK(has(load_error("chaos: on\n"), "chaos must be a mapping"));
}

CAF_TEST(the http section is read with every key) {
  ::setenv("OFFLOAD_TEST_TOKEN", "token-from-the-environment", 1);
  temp_yaml secret{"token-from-a-file\n"};
  temp_yaml file{R"(http:
  listen: 127.0.0.1:8787
  allowed_origins: [https://app.example.com]
  allowed_hosts: [gpu-box]
  session_idle_timeout: 5m
  max_sessions: 10
  max_body_bytes: 65536
  max_inflight_per_session: 3
  sse_retry_ms: 250
  event_buffer: 64
  tokens:
    - token: token-written-inline
      agent: alice
    - token_env: OFFLOAD_TEST_TOKEN
      agent: bob
    - token_file: )" +
                 secret.path + R"(
      agent: carol
)"};
  auto config = load_config_file(file.path);
  finalize_config(config);
  const auto& http = config.http;
  CAF_CHECK_EQUAL(http.listen, "127.0.0.1:8787");
  CAF_CHECK(!config.stdio); // an HTTP listener replaces the default transport
  CAF_CHECK_EQUAL(http.allowed_origins, std::vector<std::string>{"https://app.example.com"});
  CAF_CHECK_EQUAL(http.allowed_hosts, std::vector<std::string>{"gpu-box"});
  CAF_CHECK(http.session_idle_timeout == milliseconds{300000});
  CAF_CHECK_EQUAL(http.max_sessions, 10u);
  CAF_CHECK_EQUAL(http.max_body_bytes, 65536u);
  CAF_CHECK_EQUAL(http.max_inflight_per_session, 3u);
  CAF_CHECK(http.sse_retry == milliseconds{250});
  CAF_CHECK_EQUAL(http.event_buffer, 64u);
  CAF_REQUIRE_EQUAL(http.tokens.size(), 3u);
  CAF_CHECK_EQUAL(http.tokens[0].token, "token-written-inline");
  CAF_CHECK_EQUAL(http.tokens[0].agent, "alice");
  CAF_CHECK_EQUAL(http.tokens[1].token, "token-from-the-environment");
  CAF_CHECK_EQUAL(http.tokens[1].agent, "bob");
  CAF_CHECK_EQUAL(http.tokens[2].token, "token-from-a-file");
  CAF_CHECK_EQUAL(http.tokens[2].agent, "carol");
  ::unsetenv("OFFLOAD_TEST_TOKEN");
}

CAF_TEST(stdio stays the default transport) {
  daemon_config config;
  finalize_config(config);
  CAF_CHECK(config.stdio);
  CAF_CHECK(config.http.listen.empty());
  daemon_config both;
  both.stdio = true;
  both.http.listen = "127.0.0.1:0";
  finalize_config(both);
  CAF_CHECK(both.stdio);
  // A socket passed by systemd means HTTP was chosen: no stdio unless asked for.
  daemon_config activated;
  activated.http.socket_fd = 3;
  finalize_config(activated);
  CAF_CHECK(!activated.stdio);
}

CAF_TEST(http token errors name the entry but never the token) {
  ::unsetenv("OFFLOAD_TEST_UNSET");
  auto missing_env = load_error("http:\n  tokens:\n    - token_env: OFFLOAD_TEST_UNSET\n"
                                "      agent: a\n");
  CAF_CHECK_NOT_EQUAL(missing_env.find("OFFLOAD_TEST_UNSET"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(missing_env.find("empty"), std::string::npos);
  auto two_sources = load_error("http:\n  tokens:\n    - token: abc\n      token_env: X\n"
                                "      agent: a\n");
  CAF_CHECK_NOT_EQUAL(two_sources.find("exactly one"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(two_sources.find(":3:"), std::string::npos);
  auto no_agent = load_error("http:\n  tokens:\n    - token: sekrit-value\n");
  CAF_CHECK_NOT_EQUAL(no_agent.find("agent"), std::string::npos);
  CAF_CHECK_EQUAL(no_agent.find("sekrit-value"), std::string::npos);
  auto spaces = load_error("http:\n  tokens:\n    - token: \"has space\"\n      agent: a\n");
  CAF_CHECK_NOT_EQUAL(spaces.find("white space"), std::string::npos);
  CAF_CHECK_EQUAL(spaces.find("has space"), std::string::npos);
  auto unreadable = load_error("http:\n  tokens:\n    - token_file: /nonexistent/offload-token\n"
                               "      agent: a\n");
  CAF_CHECK_NOT_EQUAL(unreadable.find("cannot read"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(load_error("http:\n  lisen: 127.0.0.1:1\n").find("lisen"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(load_error("http:\n  max_sessions: 0\n").find("at least 1"),
                      std::string::npos);
}

CAF_TEST(listen addresses are loopback unless remote access is allowed) {
  auto local = parse_listen_address("127.0.0.1:8787");
  CAF_CHECK_EQUAL(local.ip, "127.0.0.1");
  CAF_CHECK_EQUAL(local.port, 8787);
  CAF_CHECK(local.loopback);
  CAF_CHECK(parse_listen_address("localhost:0").loopback);
  auto v6 = parse_listen_address("[::1]:9");
  CAF_CHECK_EQUAL(v6.ip, "::1");
  CAF_CHECK(v6.loopback);
  CAF_CHECK(!parse_listen_address("0.0.0.0:8787").loopback);
  for (auto bad :
       {"8787", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "example.com:80", "127.0.0.1:x"}) {
    bool threw = false;
    try {
      parse_listen_address(bad);
    } catch (const config_error&) {
      threw = true;
    }
    CHECK_CASE(threw, "accepted " << bad);
  }
  daemon_config remote;
  remote.http.listen = "0.0.0.0:8787";
  std::string error;
  try {
    finalize_config(remote);
  } catch (const config_error& e) {
    error = e.what();
  }
  CAF_CHECK_NOT_EQUAL(error.find("--allow-remote"), std::string::npos);
  remote.http.allow_remote = true;
  finalize_config(remote);
  CAF_CHECK(!remote.stdio);
}

CAF_TEST(the ledger can be turned off and prices configured) {
  temp_yaml file{"ledger: {enabled: false}\n"
                 "pricing:\n"
                 "  comparison_model: my-cloud\n"
                 "  cloud_prices:\n"
                 "    my-cloud: {input_per_1m: 2, output_per_1m: 8.5}\n"
                 "    claude-haiku-3-5: {input_per_1m: 1, output_per_1m: 5}\n"
                 "  local_models:\n"
                 "    llama3.2:3b: claude-haiku-3-5\n"};
  auto config = load_config_file(file.path);
  CAF_CHECK(!config.ledger_enabled);
  const auto& prices = config.pricing;
  CAF_CHECK_EQUAL(prices.comparison_model, "my-cloud");
  CAF_CHECK_EQUAL(prices.cloud_prices.at("my-cloud").output_per_1m, 8.5);
  CAF_CHECK_EQUAL(prices.cloud_prices.at("claude-haiku-3-5").input_per_1m, 1.0);
  CAF_CHECK_EQUAL(prices.cloud_prices.count("claude-sonnet-4-5"), 1u); // built-ins stay
  CAF_CHECK_EQUAL(prices.local_models.at("llama3.2:3b"), "claude-haiku-3-5");
  CAF_CHECK(daemon_config{}.ledger_enabled);
}

CAF_TEST(bad prices are errors naming the field) {
  CAF_CHECK_NOT_EQUAL(load_error("pricing: {comparison_model: nobody}\n")
                          .find("\"nobody\" has "
                                "no price"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(load_error("pricing:\n  cloud_prices:\n    x: {input_per_1m: -1, "
                                 "output_per_1m: 1}\n")
                          .find("pricing.cloud_prices.x.input_per_1m must be a number"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(
      load_error("pricing:\n  cloud_prices:\n    x: {input_per_1m: 1}\n").find("output_per_1m"),
      std::string::npos);
  CAF_CHECK_NOT_EQUAL(load_error("pricing: {local_models: {a: b}}\n")
                          .find("\"b\", which has "
                                "no price"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(load_error("ledger: {on: true}\n").find("unknown key \"on\" in ledger"),
                      std::string::npos);
}

CAF_TEST(openai backends are accepted from files and flags) {
  temp_yaml file{R"(backends:
  - url: http://127.0.0.1:8080
    kind: openai
  - url: http://127.0.0.1:1234/v1
    kind: openai
    name: lmstudio
)"};
  auto config = load_config_file(file.path);
  finalize_config(config);
  CAF_REQUIRE_EQUAL(config.backends.size(), 2u);
  CAF_CHECK_EQUAL(config.backends[0].kind, "openai");
  CAF_CHECK_EQUAL(config.backends[0].name, "openai@127.0.0.1:8080");
  CAF_CHECK_EQUAL(config.backends[1].target.base_path, "/v1");
  CAF_CHECK(parse_backend_kind(config.backends[1].kind) == backend_kind::openai);
  auto flag = parse_backend_flag("openai=http://127.0.0.1:8000");
  CAF_CHECK_EQUAL(flag.kind, "openai");
  CAF_CHECK(parse_backend_kind("ollama") == backend_kind::ollama);
  CAF_CHECK(!parse_backend_kind("vllm").has_value());
  CAF_CHECK_EQUAL(to_string(backend_kind::openai), "openai");
}

CAF_TEST(unknown kinds are refused wherever they come from) {
  auto error = load_error("backends:\n  - url: http://x\n    kind: vllm\n");
  CAF_CHECK_NOT_EQUAL(error.find("ollama, openai"), std::string::npos);
  bool threw = false;
  try {
    parse_backend_flag("tgi=http://127.0.0.1:9");
  } catch (const config_error& e) {
    threw = std::string{e.what()}.find("tgi") != std::string::npos;
  }
  CAF_CHECK(threw);
  daemon_config config;
  backend_config b;
  b.url = "http://127.0.0.1:9";
  b.kind = "tgi";
  config.backends.push_back(b);
  threw = false;
  try {
    finalize_config(config);
  } catch (const config_error& e) {
    threw = std::string{e.what()}.find("tgi") != std::string::npos;
  }
  CAF_CHECK(threw);
}

CAF_TEST(models routing and per backend models are read) {
  temp_yaml file{R"(default_model: fast
models:
  aliases: {fast: "llama3.2:3b", coder: "qwen2.5-coder:7b"}
  options:
    "qwen2.5-coder:7b": {keep_alive: 30m, num_ctx: 16384}
    "llama3.2:3b": {keep_alive: "-1"}
routing:
  strategy: round_robin
  health_interval: 5s
  discovery_interval: 0
  probe_timeout: 2s
  breaker: {failures: 4, failure_rate: 0.75, min_requests: 20, window: 2m, cooldown: 10s}
backends:
  - url: http://127.0.0.1:11434
    models: ["qwen2.5-coder:7b"]
    discover: false
)"};
  auto config = load_config_file(file.path);
  finalize_config(config);
  const auto& r = config.routing;
  CAF_CHECK(r.strategy == routing_strategy::round_robin);
  CAF_CHECK(r.health_interval == milliseconds{5000});
  CAF_CHECK(r.discovery_interval == milliseconds{0});
  CAF_CHECK(r.probe_timeout == milliseconds{2000});
  CAF_CHECK_EQUAL(r.breaker.consecutive_failures, 4u);
  CAF_CHECK_EQUAL(r.breaker.failure_rate, 0.75);
  CAF_CHECK_EQUAL(r.breaker.min_requests, 20u);
  CAF_CHECK(r.breaker.window == milliseconds{120000});
  CAF_CHECK(r.breaker.cooldown == milliseconds{10000});
  CAF_CHECK_EQUAL(r.aliases.at("fast"), "llama3.2:3b");
  // The router resolves the default too (here an alias).
  CAF_CHECK_EQUAL(r.default_model, "fast");
  CAF_CHECK_EQUAL(config.model_options.at("qwen2.5-coder:7b").keep_alive, "30m");
  CAF_CHECK_EQUAL(config.model_options.at("qwen2.5-coder:7b").num_ctx, 16384);
  CAF_CHECK_EQUAL(config.model_options.at("llama3.2:3b").keep_alive, "-1");
  // A pinned window sizes compress_context's input, for the model and its aliases.
  CAF_CHECK_EQUAL(config.engine.context_chars.at("qwen2.5-coder:7b"), 16384u * 7 / 2);
  CAF_CHECK_EQUAL(config.engine.context_chars.at("coder"), 16384u * 7 / 2);
  CAF_CHECK_EQUAL(config.engine.context_chars.count("fast"), 0u);
  CAF_REQUIRE_EQUAL(config.backends.size(), 1u);
  CAF_CHECK_EQUAL(config.backends[0].models, (std::vector<std::string>{"qwen2.5-coder:7b"}));
  CAF_CHECK(!config.backends[0].discover);
}

CAF_TEST(routing and model settings are checked) {
  auto has = [](const std::string& error, std::string_view part) {
    return error.find(part) != std::string::npos;
  };
  CAF_CHECK(has(load_error("routing:\n  strategy: random\n"), "least_loaded, round_robin"));
  CAF_CHECK(has(load_error("routing:\n  breaker: {failure_rate: 2}\n"), "failure_rate"));
  CAF_CHECK(has(load_error("routing:\n  breaker: {cooldown: 0}\n"), "cooldown"));
  CAF_CHECK(has(load_error("routing:\n  breaker: {failurs: 3}\n"), "failurs"));
  CAF_CHECK(has(load_error("models:\n  options:\n    m: {keep_alive: soon}\n"), "keep_alive"));
  CAF_CHECK(has(load_error("models:\n  options:\n    m: {num_ctx: 0}\n"), "at least 1"));
  CAF_CHECK(has(load_error("models:\n  alias: {a: b}\n"), "alias"));
  CAF_CHECK(has(load_error("backends:\n  - url: http://x\n    models: llama\n"), "list"));
  auto finalize_error = [](std::map<std::string, std::string> aliases) {
    daemon_config config;
    config.routing.aliases = std::move(aliases);
    try {
      finalize_config(config);
    } catch (const config_error& e) {
      return std::string{e.what()};
    }
    return std::string{};
  };
  CAF_CHECK(has(finalize_error({{"a", "a"}}), "alias of itself"));
  CAF_CHECK(has(finalize_error({{"a", "b"}, {"b", "c"}}), "alias too"));
  CAF_CHECK(finalize_error({{"a", "c"}, {"b", "c"}}).empty());
}
