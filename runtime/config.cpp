#include "runtime/config.hpp"

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>
#include <spdlog/common.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace offload {

namespace {

using std::chrono::milliseconds;

[[noreturn]] void fail_at(const std::string& file, const YAML::Node& node, std::string message) {
  auto mark = node.Mark();
  if (mark.is_null())
    throw config_error(fmt::format("{}: {}", file, message));
  throw config_error(fmt::format("{}:{}: {}", file, mark.line + 1, message));
}

// Rejects keys we do not know, so that a typo never silently falls back to a default.
void check_keys(const std::string& file, const YAML::Node& map, std::string_view section,
                const std::set<std::string>& known) {
  if (!map.IsMap())
    fail_at(file, map, fmt::format("{} must be a mapping", section));
  for (const auto& entry : map) {
    auto key = entry.first.as<std::string>();
    if (known.count(key) == 0) {
      std::string list;
      for (const auto& k : known)
        list += (list.empty() ? "" : ", ") + k;
      fail_at(file, entry.first,
              fmt::format("unknown key \"{}\" in {} (known keys: {})", key, section, list));
    }
  }
}

template <class T>
T scalar(const std::string& file, const YAML::Node& node, std::string_view what) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    fail_at(file, node,
            fmt::format("{} has an invalid value \"{}\"", what,
                        node.IsScalar() ? node.Scalar() : "(not a scalar)"));
  }
}

milliseconds duration_at(const std::string& file, const YAML::Node& node, std::string_view what) {
  try {
    return parse_duration(scalar<std::string>(file, node, what));
  } catch (const config_error& e) {
    fail_at(file, node, fmt::format("{}: {}", what, e.what()));
  }
}

size_t positive_at(const std::string& file, const YAML::Node& node, std::string_view what) {
  auto value = scalar<long long>(file, node, what);
  if (value < 1)
    fail_at(file, node, fmt::format("{} must be at least 1, got {}", what, value));
  return static_cast<size_t>(value);
}

std::vector<std::string> model_list(const std::string& file, const YAML::Node& node,
                                    std::string_view what) {
  if (!node.IsSequence())
    fail_at(file, node, fmt::format("{} must be a list of model names", what));
  std::vector<std::string> out;
  for (const auto& entry : node) {
    auto name = scalar<std::string>(file, entry, what);
    if (name.empty())
      fail_at(file, entry, fmt::format("{} has an empty model name", what));
    out.push_back(std::move(name));
  }
  return out;
}

void read_backend(const std::string& file, const YAML::Node& node, backend_config& out) {
  check_keys(file, node, "a backend",
             {"name", "kind", "url", "max_concurrency", "max_queue", "queue_wait", "aging",
              "timeouts", "models", "discover"});
  if (node["models"])
    out.models = model_list(file, node["models"], "models");
  if (node["discover"])
    out.discover = scalar<bool>(file, node["discover"], "discover");
  if (!node["url"])
    fail_at(file, node, "a backend needs \"url\", e.g. url: http://127.0.0.1:11434");
  out.url = scalar<std::string>(file, node["url"], "url");
  if (node["name"])
    out.name = scalar<std::string>(file, node["name"], "name");
  if (node["kind"])
    out.kind = scalar<std::string>(file, node["kind"], "kind");
  if (node["max_concurrency"])
    out.max_concurrency = positive_at(file, node["max_concurrency"], "max_concurrency");
  if (node["max_queue"])
    out.max_queue = positive_at(file, node["max_queue"], "max_queue");
  if (node["queue_wait"])
    out.queue_wait = duration_at(file, node["queue_wait"], "queue_wait");
  if (node["aging"])
    out.aging = duration_at(file, node["aging"], "aging");
  if (auto t = node["timeouts"]) {
    check_keys(file, t, "timeouts", {"connect", "first_token", "idle", "total"});
    if (t["connect"])
      out.timeouts.connect = duration_at(file, t["connect"], "timeouts.connect");
    if (t["first_token"])
      out.timeouts.first_token = duration_at(file, t["first_token"], "timeouts.first_token");
    if (t["idle"])
      out.timeouts.idle = duration_at(file, t["idle"], "timeouts.idle");
    if (t["total"])
      out.timeouts.total = duration_at(file, t["total"], "timeouts.total");
  }
  if (!parse_backend_kind(out.kind))
    fail_at(
        file, node["kind"] ? node["kind"] : node,
        fmt::format("backend kind \"{}\" is not supported (supported: ollama, openai)", out.kind));
}

// The batch engine's retry, deadline-maximum and context-window settings.
void read_engine_extras(const std::string& file, const YAML::Node& batch, engine_settings& out) {
  auto& limits = out.limits;
  auto max_ms = [&](const char* key, int64_t& target) {
    if (batch[key])
      target = duration_at(file, batch[key], fmt::format("batch.{}", key)).count();
  };
  max_ms("max_task_timeout", limits.max_task_timeout_ms);
  max_ms("max_batch_timeout", limits.max_batch_timeout_ms);
  max_ms("max_first_token_timeout", limits.max_first_token_timeout_ms);
  max_ms("max_idle_timeout", limits.max_idle_timeout_ms);
  if (auto retry = batch["retry"]) {
    check_keys(file, retry, "batch.retry",
               {"max_attempts", "base_backoff", "max_backoff", "jitter"});
    if (retry["max_attempts"])
      out.retry.max_attempts = static_cast<uint32_t>(
          positive_at(file, retry["max_attempts"], "batch.retry.max_attempts"));
    if (retry["base_backoff"])
      out.retry.base_backoff = duration_at(file, retry["base_backoff"], "batch.retry.base_backoff");
    if (retry["max_backoff"])
      out.retry.max_backoff = duration_at(file, retry["max_backoff"], "batch.retry.max_backoff");
    if (retry["jitter"]) {
      out.retry.jitter = scalar<double>(file, retry["jitter"], "batch.retry.jitter");
      if (out.retry.jitter < 0 || out.retry.jitter > 1)
        fail_at(file, retry["jitter"], "batch.retry.jitter must be between 0 and 1");
    }
  }
  if (batch["context_chars"])
    out.default_context_chars = positive_at(file, batch["context_chars"], "batch.context_chars");
  if (auto models = batch["model_context_chars"]) {
    if (!models.IsMap())
      fail_at(file, models, "batch.model_context_chars must map model names to sizes");
    for (const auto& entry : models)
      out.context_chars[entry.first.as<std::string>()] =
          positive_at(file, entry.second, "batch.model_context_chars");
  }
  if (batch["seed"])
    out.seed = scalar<uint64_t>(file, batch["seed"], "batch.seed");
}

std::vector<std::string> string_list(const std::string& file, const YAML::Node& node,
                                     std::string_view what) {
  if (!node.IsSequence())
    fail_at(file, node, fmt::format("{} must be a list of strings", what));
  std::vector<std::string> out;
  for (const auto& item : node)
    out.push_back(scalar<std::string>(file, item, what));
  return out;
}

// A secret read from a file: its first line, without the line break and surrounding blanks.
std::string read_token_file(const std::string& file, const YAML::Node& node,
                            const std::string& path) {
  std::ifstream in{path};
  if (!in)
    fail_at(file, node, fmt::format("token_file {}: cannot read the file", path));
  std::string line;
  std::getline(in, line);
  auto first = line.find_first_not_of(" \t\r");
  auto last = line.find_last_not_of(" \t\r");
  return first == std::string::npos ? std::string{} : line.substr(first, last - first + 1);
}

http_token_config read_token(const std::string& file, const YAML::Node& node, size_t index) {
  check_keys(file, node, "an http token", {"token", "token_env", "token_file", "agent"});
  auto sources =
      (node["token"] ? 1 : 0) + (node["token_env"] ? 1 : 0) + (node["token_file"] ? 1 : 0);
  if (sources != 1)
    fail_at(
        file, node,
        fmt::format("http.tokens[{}] needs exactly one of token, token_env and token_file", index));
  if (!node["agent"])
    fail_at(file, node,
            fmt::format("http.tokens[{}] needs \"agent\", the name policies see", index));
  http_token_config out;
  out.agent = scalar<std::string>(file, node["agent"], "agent");
  if (node["token"]) {
    out.token = scalar<std::string>(file, node["token"], "token");
    out.origin = fmt::format("http.tokens[{}] (token)", index);
  } else if (node["token_env"]) {
    auto name = scalar<std::string>(file, node["token_env"], "token_env");
    const char* value = std::getenv(name.c_str());
    out.token = value == nullptr ? "" : value;
    out.origin = fmt::format("http.tokens[{}] (token_env {})", index, name);
  } else {
    auto path = scalar<std::string>(file, node["token_file"], "token_file");
    out.token = read_token_file(file, node["token_file"], path);
    out.origin = fmt::format("http.tokens[{}] (token_file {})", index, path);
  }
  if (out.token.empty())
    fail_at(file, node, fmt::format("{}: the token is empty", out.origin));
  if (out.token.find_first_of(" \t\r\n") != std::string::npos)
    fail_at(file, node, fmt::format("{}: the token contains white space", out.origin));
  if (out.agent.empty())
    fail_at(file, node, fmt::format("http.tokens[{}]: agent is empty", index));
  return out;
}

void read_http(const std::string& file, const YAML::Node& node, http_config& out) {
  check_keys(file, node, "http",
             {"listen", "allow_remote", "allowed_origins", "allowed_hosts", "session_idle_timeout",
              "max_sessions", "max_body_bytes", "max_inflight_per_session", "sse_retry_ms",
              "event_buffer", "tokens"});
  if (node["listen"])
    out.listen = scalar<std::string>(file, node["listen"], "http.listen");
  if (node["allow_remote"])
    out.allow_remote = scalar<bool>(file, node["allow_remote"], "http.allow_remote");
  if (node["allowed_origins"])
    out.allowed_origins = string_list(file, node["allowed_origins"], "http.allowed_origins");
  if (node["allowed_hosts"])
    out.allowed_hosts = string_list(file, node["allowed_hosts"], "http.allowed_hosts");
  if (node["session_idle_timeout"])
    out.session_idle_timeout =
        duration_at(file, node["session_idle_timeout"], "http.session_idle_timeout");
  if (node["max_sessions"])
    out.max_sessions = positive_at(file, node["max_sessions"], "http.max_sessions");
  if (node["max_body_bytes"])
    out.max_body_bytes = positive_at(file, node["max_body_bytes"], "http.max_body_bytes");
  if (node["max_inflight_per_session"])
    out.max_inflight_per_session =
        positive_at(file, node["max_inflight_per_session"], "http.max_inflight_per_session");
  if (node["sse_retry_ms"])
    out.sse_retry = milliseconds{positive_at(file, node["sse_retry_ms"], "http.sse_retry_ms")};
  if (node["event_buffer"])
    out.event_buffer = positive_at(file, node["event_buffer"], "http.event_buffer");
  if (auto tokens = node["tokens"]) {
    if (!tokens.IsSequence())
      fail_at(file, tokens, "http.tokens must be a list of {token_env: NAME, agent: NAME} entries");
    size_t index = 0;
    for (const auto& entry : tokens)
      out.tokens.push_back(read_token(file, entry, index++));
  }
  if (out.session_idle_timeout.count() == 0)
    fail_at(file, node["session_idle_timeout"], "http.session_idle_timeout must be positive");
}

double price_at(const std::string& file, const YAML::Node& node, std::string_view what) {
  auto value = scalar<double>(file, node, what);
  if (!std::isfinite(value) || value < 0)
    fail_at(file, node, fmt::format("{} must be a number of USD of at least 0", what));
  return value;
}

// `pricing:` — the comparison model, cloud prices (merged over the built-in ones) and which
// cloud model a local model's work is compared with.
void read_pricing(const std::string& file, const YAML::Node& node, price_table& out) {
  check_keys(file, node, "pricing", {"comparison_model", "cloud_prices", "local_models"});
  if (node["comparison_model"])
    out.comparison_model =
        scalar<std::string>(file, node["comparison_model"], "pricing.comparison_model");
  if (auto prices = node["cloud_prices"]) {
    if (!prices.IsMap())
      fail_at(file, prices,
              "pricing.cloud_prices must map cloud model names to {input_per_1m, output_per_1m}");
    for (const auto& entry : prices) {
      auto model = entry.first.as<std::string>();
      auto what = fmt::format("pricing.cloud_prices.{}", model);
      check_keys(file, entry.second, what, {"input_per_1m", "output_per_1m"});
      if (!entry.second["input_per_1m"] || !entry.second["output_per_1m"])
        fail_at(file, entry.second, fmt::format("{} needs input_per_1m and output_per_1m", what));
      out.cloud_prices[model] = {
          price_at(file, entry.second["input_per_1m"], what + ".input_per_1m"),
          price_at(file, entry.second["output_per_1m"], what + ".output_per_1m")};
    }
  }
  if (auto locals = node["local_models"]) {
    if (!locals.IsMap())
      fail_at(file, locals, "pricing.local_models must map local model names to cloud model names");
    for (const auto& entry : locals)
      out.local_models[entry.first.as<std::string>()] =
          scalar<std::string>(file, entry.second, "pricing.local_models");
  }
  if (auto problem = price_table_problem(out))
    fail_at(file, node, "pricing: " + *problem);
}

// models: {aliases: {NAME: MODEL}, options: {MODEL: {keep_alive, num_ctx}}}
void read_models(const std::string& file, const YAML::Node& models, daemon_config& out) {
  check_keys(file, models, "models", {"aliases", "options"});
  if (auto aliases = models["aliases"]) {
    if (!aliases.IsMap())
      fail_at(file, aliases, "models.aliases must map alias names to model names");
    for (const auto& entry : aliases) {
      auto alias = entry.first.as<std::string>();
      auto target = scalar<std::string>(file, entry.second, "models.aliases");
      if (alias.empty() || target.empty())
        fail_at(file, entry.first, "models.aliases: names must not be empty");
      out.routing.aliases[alias] = target;
    }
  }
  if (auto options = models["options"]) {
    if (!options.IsMap())
      fail_at(file, options, "models.options must map model names to {keep_alive, num_ctx}");
    for (const auto& entry : options) {
      auto model = entry.first.as<std::string>();
      const auto& node = entry.second;
      auto where = fmt::format("models.options.{}", model);
      check_keys(file, node, where, {"keep_alive", "num_ctx"});
      ollama::chat_options chosen;
      if (node["keep_alive"]) {
        chosen.keep_alive = scalar<std::string>(file, node["keep_alive"], where + ".keep_alive");
        if (!model_tools::valid_keep_alive(chosen.keep_alive))
          fail_at(file, node["keep_alive"],
                  fmt::format("{}.keep_alive must be a duration such as 5m, 1h or -1 (for "
                              "ever), or a number of seconds; got \"{}\"",
                              where, chosen.keep_alive));
      }
      if (node["num_ctx"])
        chosen.num_ctx =
            static_cast<int64_t>(positive_at(file, node["num_ctx"], where + ".num_ctx"));
      out.model_options[model] = std::move(chosen);
    }
  }
}

// routing: {strategy, health_interval, discovery_interval, probe_timeout, breaker: {...}}
void read_routing(const std::string& file, const YAML::Node& routing, router_settings& out) {
  check_keys(file, routing, "routing",
             {"strategy", "health_interval", "discovery_interval", "probe_timeout", "breaker"});
  if (routing["strategy"]) {
    auto text = scalar<std::string>(file, routing["strategy"], "routing.strategy");
    auto strategy = parse_routing_strategy(text);
    if (!strategy)
      fail_at(file, routing["strategy"],
              fmt::format("routing.strategy must be least_loaded, round_robin or ordered, got "
                          "\"{}\"",
                          text));
    out.strategy = *strategy;
  }
  if (routing["health_interval"])
    out.health_interval = duration_at(file, routing["health_interval"], "routing.health_interval");
  if (routing["discovery_interval"])
    out.discovery_interval =
        duration_at(file, routing["discovery_interval"], "routing.discovery_interval");
  if (routing["probe_timeout"]) {
    out.probe_timeout = duration_at(file, routing["probe_timeout"], "routing.probe_timeout");
    if (out.probe_timeout.count() == 0)
      fail_at(file, routing["probe_timeout"], "routing.probe_timeout must be more than 0");
  }
  if (auto breaker = routing["breaker"]) {
    auto& b = out.breaker;
    check_keys(file, breaker, "routing.breaker",
               {"failures", "failure_rate", "min_requests", "window", "cooldown"});
    if (breaker["failures"])
      b.consecutive_failures =
          static_cast<uint32_t>(positive_at(file, breaker["failures"], "routing.breaker.failures"));
    if (breaker["failure_rate"]) {
      b.failure_rate =
          scalar<double>(file, breaker["failure_rate"], "routing.breaker.failure_rate");
      if (b.failure_rate <= 0 || b.failure_rate > 1)
        fail_at(file, breaker["failure_rate"],
                "routing.breaker.failure_rate must be more than 0 and at most 1");
    }
    if (breaker["min_requests"])
      b.min_requests = static_cast<uint32_t>(
          positive_at(file, breaker["min_requests"], "routing.breaker.min_requests"));
    if (breaker["window"]) {
      b.window = duration_at(file, breaker["window"], "routing.breaker.window");
      if (b.window < milliseconds{100})
        fail_at(file, breaker["window"], "routing.breaker.window must be at least 100ms");
    }
    if (breaker["cooldown"]) {
      b.cooldown = duration_at(file, breaker["cooldown"], "routing.breaker.cooldown");
      if (b.cooldown.count() == 0)
        fail_at(file, breaker["cooldown"], "routing.breaker.cooldown must be more than 0");
    }
  }
}

// chaos: {enabled, seed, kill_task, delay_message, delay: {min, max}, crash_backend}
void read_chaos(const std::string& file, const YAML::Node& node, chaos::settings& out) {
  check_keys(file, node, "chaos",
             {"enabled", "seed", "kill_task", "delay_message", "delay", "crash_backend"});
  if (node["enabled"])
    out.enabled = scalar<bool>(file, node["enabled"], "chaos.enabled");
  if (node["seed"])
    out.seed = scalar<uint64_t>(file, node["seed"], "chaos.seed");
  auto probability = [&](const char* key, double& target) {
    auto value_node = node[key];
    if (!value_node)
      return;
    auto what = fmt::format("chaos.{}", key);
    auto value = scalar<double>(file, value_node, what);
    if (!(value >= 0 && value <= 1)) // NaN too
      fail_at(file, value_node,
              fmt::format("{} is a probability and must be between 0 and 1, got {}", what,
                          value_node.Scalar()));
    target = value;
  };
  probability("kill_task", out.kill_task);
  probability("delay_message", out.delay_message);
  probability("crash_backend", out.crash_backend);
  if (auto delay = node["delay"]) {
    check_keys(file, delay, "chaos.delay", {"min", "max"});
    if (delay["min"])
      out.delay_min = duration_at(file, delay["min"], "chaos.delay.min");
    if (delay["max"])
      out.delay_max = duration_at(file, delay["max"], "chaos.delay.max");
    if (out.delay_min > out.delay_max)
      fail_at(file, delay,
              fmt::format("chaos.delay.min ({} ms) must not be more than chaos.delay.max ({} ms)",
                          out.delay_min.count(), out.delay_max.count()));
  }
}

} // namespace

listen_address parse_listen_address(std::string_view text) {
  auto fail = [&](std::string_view why) {
    throw config_error(fmt::format("listen address \"{}\": {}", text, why));
  };
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    fail("expected HOST:PORT, e.g. 127.0.0.1:8787");
  auto host = text.substr(0, colon);
  auto port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
      port > 65535)
    fail("the port must be 0..65535 (0 picks a free one)");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  listen_address out;
  out.port = static_cast<uint16_t>(port);
  if (host == "localhost") {
    out.ip = "127.0.0.1";
    return out;
  }
  boost::system::error_code error;
  auto address = boost::asio::ip::make_address(std::string{host}, error);
  if (error)
    fail("the host must be an IP address or localhost");
  out.ip = address.to_string();
  out.loopback = address.is_loopback();
  return out;
}

milliseconds parse_duration(std::string_view text) {
  long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || value < 0)
    throw config_error(fmt::format("\"{}\" is not a duration such as 500ms, 30s or 5m", text));
  std::string_view unit{end, static_cast<size_t>(text.data() + text.size() - end)};
  if (unit == "ms")
    return milliseconds{value};
  if (unit.empty() || unit == "s")
    return milliseconds{value * 1000};
  if (unit == "m")
    return milliseconds{value * 60'000};
  if (unit == "h")
    return milliseconds{value * 3'600'000};
  throw config_error(
      fmt::format("\"{}\" has an unknown unit \"{}\"; use ms, s, m or h", text, unit));
}

backend_config parse_backend_flag(std::string_view flag) {
  auto eq = flag.find('=');
  if (eq == std::string_view::npos)
    throw config_error(fmt::format("--backend \"{}\": expected KIND=URL, e.g. "
                                   "ollama=http://127.0.0.1:11434",
                                   flag));
  backend_config out;
  out.kind = std::string{flag.substr(0, eq)};
  out.url = std::string{flag.substr(eq + 1)};
  if (!parse_backend_kind(out.kind))
    throw config_error(fmt::format("--backend \"{}\": kind \"{}\" is not supported (supported: "
                                   "ollama, openai)",
                                   flag, out.kind));
  return out;
}

daemon_config load_config_file(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw config_error(fmt::format("{}: cannot read the file", path));
  } catch (const YAML::ParserException& e) {
    throw config_error(fmt::format("{}:{}: {}", path, e.mark.line + 1, e.msg));
  }
  daemon_config config;
  if (root.IsNull())
    return config; // an empty file means all defaults
  check_keys(path, root, "the top level",
             {"log_level", "log_format", "shutdown_grace", "default_model", "batch", "backends",
              "policy", "audit_log", "state_dir", "guards", "http", "ledger", "pricing", "models",
              "routing", "profile", "chaos"});
  if (auto chaos = root["chaos"])
    read_chaos(path, chaos, config.engine.chaos);
  if (auto models = root["models"])
    read_models(path, models, config);
  if (auto routing = root["routing"])
    read_routing(path, routing, config.routing);
  if (root["shutdown_grace"])
    config.engine.shutdown_grace = duration_at(path, root["shutdown_grace"], "shutdown_grace");
  if (root["log_format"])
    config.log_format = scalar<std::string>(path, root["log_format"], "log_format");
  if (auto ledger = root["ledger"]) {
    check_keys(path, ledger, "ledger", {"enabled"});
    if (ledger["enabled"])
      config.ledger_enabled = scalar<bool>(path, ledger["enabled"], "ledger.enabled");
  }
  if (auto pricing = root["pricing"])
    read_pricing(path, pricing, config.pricing);
  if (auto guards = root["guards"]) {
    check_keys(path, guards, "guards", {"prompt_injection", "redact_secrets"});
    if (guards["prompt_injection"]) {
      auto text = scalar<std::string>(path, guards["prompt_injection"], "guards.prompt_injection");
      auto mode = guards::parse_guard_mode(text);
      if (!mode)
        fail_at(
            path, guards["prompt_injection"],
            fmt::format("guards.prompt_injection must be block, warn or off, got \"{}\"", text));
      config.engine.injection_guard = *mode;
    }
    if (guards["redact_secrets"])
      config.engine.redact_secrets =
          scalar<bool>(path, guards["redact_secrets"], "guards.redact_secrets");
  }
  if (root["http"])
    read_http(path, root["http"], config.http);
  if (root["profile"]) {
    config.engine.profile = scalar<std::string>(path, root["profile"], "profile");
    if (config.engine.profile != "conformance")
      fail_at(path, root["profile"],
              fmt::format("profile \"{}\" is unknown; the only profile is \"conformance\" (test "
                          "fixtures for the MCP conformance suite, never for production)",
                          config.engine.profile));
  }
  if (root["state_dir"])
    config.state_dir = scalar<std::string>(path, root["state_dir"], "state_dir");
  if (root["audit_log"])
    config.audit_log = scalar<std::string>(path, root["audit_log"], "audit_log");
  if (root["policy"])
    config.policy_file = scalar<std::string>(path, root["policy"], "policy");
  if (root["log_level"]) {
    config.log_level = scalar<std::string>(path, root["log_level"], "log_level");
    // spdlog maps unknown names to "off"; checked here so that the error names the line.
    if (spdlog::level::from_str(config.log_level) == spdlog::level::off &&
        config.log_level != "off")
      fail_at(path, root["log_level"],
              fmt::format("log_level must be trace, debug, info, warn, error, critical or off, "
                          "got \"{}\"",
                          config.log_level));
  }
  if (root["default_model"])
    config.engine.default_model = scalar<std::string>(path, root["default_model"], "default_model");
  if (auto batch = root["batch"]) {
    check_keys(path, batch, "batch",
               {"max_tasks", "max_task_chars", "max_context_chars", "task_timeout", "batch_timeout",
                "max_task_timeout", "max_batch_timeout", "max_first_token_timeout",
                "max_idle_timeout", "retry", "context_chars", "model_context_chars", "seed"});
    read_engine_extras(path, batch, config.engine);
    auto& limits = config.engine.limits;
    if (batch["max_tasks"])
      limits.max_tasks = positive_at(path, batch["max_tasks"], "batch.max_tasks");
    if (batch["max_task_chars"])
      limits.max_task_chars = positive_at(path, batch["max_task_chars"], "batch.max_task_chars");
    if (batch["max_context_chars"])
      limits.max_context_chars =
          positive_at(path, batch["max_context_chars"], "batch.max_context_chars");
    if (batch["task_timeout"])
      config.engine.task_timeout = duration_at(path, batch["task_timeout"], "batch.task_timeout");
    if (batch["batch_timeout"])
      config.engine.batch_timeout =
          duration_at(path, batch["batch_timeout"], "batch.batch_timeout");
  }
  if (auto backends = root["backends"]) {
    if (!backends.IsSequence())
      fail_at(path, backends, "backends must be a list of {url: ..., kind: ollama|openai} entries");
    for (const auto& node : backends) {
      backend_config backend;
      read_backend(path, node, backend);
      config.backends.push_back(std::move(backend));
    }
  }
  return config;
}

void apply_environment(daemon_config& config) {
  auto env = [](const char* name) -> std::string {
    const char* value = std::getenv(name);
    return value != nullptr ? value : "";
  };
  if (auto url = env("OLLAMA_BASE_URL"); !url.empty() && config.backends.empty())
    config.backends.push_back(parse_backend_flag("ollama=" + url));
  if (auto backend = env("OFFLOAD_BACKEND"); !backend.empty())
    config.backends = {parse_backend_flag(backend)};
  if (auto model = env("OFFLOAD_DEFAULT_MODEL"); !model.empty())
    config.engine.default_model = model;
  if (auto level = env("OFFLOAD_LOG_LEVEL"); !level.empty())
    config.log_level = level;
  if (auto format = env("OFFLOAD_LOG_FORMAT"); !format.empty())
    config.log_format = format;
  if (auto dir = env("OFFLOAD_STATE_DIR"); !dir.empty())
    config.state_dir = dir;
  if (auto policy = env("OFFLOAD_POLICY"); !policy.empty())
    config.policy_file = policy;
  if (auto listen = env("OFFLOAD_HTTP_LISTEN"); !listen.empty())
    config.http.listen = listen;
}

std::string default_state_dir() {
  if (const char* systemd = std::getenv("STATE_DIRECTORY"); systemd != nullptr && *systemd) {
    std::string first{systemd};
    return first.substr(0, first.find(':')); // systemd lists several directories with ':'
  }
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg)
    return std::string{xdg} + "/offload";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home)
    return std::string{home} + "/.local/state/offload";
  return "/var/lib/offload";
}

loaded_policy load_policy_file(const std::string& path) {
  loaded_policy out;
  std::ifstream in{path};
  if (!in) {
    out.errors.push_back(fmt::format("{}: cannot read the file", path));
    return out;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = parse_policy(text.str(), path);
  out.policy = std::move(parsed.value);
  out.errors = std::move(parsed.errors);
  out.warnings = std::move(parsed.warnings);
  return out;
}

void finalize_config(daemon_config& config) {
  if (config.backends.empty()) {
    backend_config fallback;
    fallback.url = defaults::default_backend_url;
    config.backends.push_back(std::move(fallback));
  }
  std::set<std::string> names;
  for (auto& backend : config.backends) {
    if (!parse_backend_kind(backend.kind))
      throw config_error(fmt::format("backend {}: kind \"{}\" is not supported (supported: "
                                     "ollama, openai)",
                                     backend.name.empty() ? backend.url : backend.name,
                                     backend.kind));
    std::string error;
    auto target = parse_http_url(backend.url, error);
    if (!target)
      throw config_error(
          fmt::format("backend {}: {}", backend.name.empty() ? backend.url : backend.name, error));
    backend.target = std::move(*target);
    if (backend.name.empty())
      backend.name =
          fmt::format("{}@{}:{}", backend.kind, backend.target.host, backend.target.port);
    if (!names.insert(backend.name).second)
      throw config_error(
          fmt::format("two backends are named \"{}\"; give each a unique name", backend.name));
    // An exchange never outlives the task that waits for it.
    backend.timeouts.total = std::min(
        backend.timeouts.total, std::max(config.engine.task_timeout,
                                         milliseconds{config.engine.limits.max_task_timeout_ms}));
  }
  config.routing.default_model = config.engine.default_model;
  for (const auto& [alias, target] : config.routing.aliases) {
    if (alias == target)
      throw config_error(fmt::format("models.aliases: \"{}\" is an alias of itself", alias));
    if (config.routing.aliases.count(target) > 0)
      throw config_error(fmt::format("models.aliases: \"{}\" points to \"{}\", which is an "
                                     "alias too; point it to the model itself",
                                     alias, target));
  }
  // A pinned context window tells compress_context how much fits (at about 3.5 characters per
  // token, as defaults::context_chars assumes), unless configured directly.
  for (const auto& [model, options] : config.model_options)
    if (options.num_ctx > 0 && config.engine.context_chars.count(model) == 0)
      config.engine.context_chars[model] = static_cast<size_t>(options.num_ctx) * 7 / 2;
  // compress_context looks the window up by the name the task used, which may be an alias.
  for (const auto& [alias, target] : config.routing.aliases)
    if (auto it = config.engine.context_chars.find(target);
        it != config.engine.context_chars.end() && config.engine.context_chars.count(alias) == 0)
      config.engine.context_chars[alias] = it->second;
  if (config.state_dir.empty())
    config.state_dir = default_state_dir();
  if (!config.http.listen.empty()) {
    auto address = parse_listen_address(config.http.listen);
    if (!address.loopback && !config.http.allow_remote)
      throw config_error(fmt::format(
          "listen address {}: not a loopback address; serving MCP beyond this machine needs "
          "--allow-remote (http.allow_remote: true), and bearer tokens (http.tokens)",
          config.http.listen));
  }
  // stdio stays the default transport; a socket passed by systemd means HTTP was chosen.
  if (!config.stdio && config.http.listen.empty() && config.http.socket_fd < 0)
    config.stdio = true;
  if (auto problem = price_table_problem(config.pricing))
    throw config_error("pricing: " + *problem);
  if (config.engine.batch_timeout < config.engine.task_timeout)
    config.engine.batch_timeout = config.engine.task_timeout;
}

} // namespace offload
