// offload: an MCP server that hands routine coding work to local LLMs.
// Subcommands: `serve` (the daemon), `fakellm` (a fake LLM server for tests and demos),
// `policy check` and `stats` (the usage ledger).

#include "actors/usage_db.hpp"
#include "protocol/chaos.hpp"
#include "runtime/config.hpp"
#include "runtime/fakellm.hpp"
#include "runtime/logging.hpp"
#include "runtime/serve.hpp"
#include "runtime/systemd.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

namespace {

using namespace offload;

struct serve_flags {
  std::string config_file;
  std::vector<std::string> backends;
  std::string model;
  size_t max_concurrency = 0;
  size_t max_tasks = 0;
  std::string task_timeout;
  std::string batch_timeout;
  std::string log_level;
  std::string log_format;
  std::string policy_file;
  std::string audit_log;
  std::string state_dir;
  std::string profile;
  bool stdio = false;
  std::string http;
  bool allow_remote = false;
};

// The configuration of `offload serve`: the file, then the environment, then the command line.
// `socket_fd` is the socket systemd passed (socket activation), or -1.
daemon_config build_serve_config(const serve_flags& flags, int socket_fd) {
  daemon_config config;
  if (!flags.config_file.empty())
    config = load_config_file(flags.config_file);
  // The environment overrides the file; the command line overrides both.
  apply_environment(config);
  // Command-line backends replace the file's: the command line is the more specific intent.
  if (!flags.backends.empty()) {
    config.backends.clear();
    for (const auto& flag : flags.backends)
      config.backends.push_back(parse_backend_flag(flag));
  }
  if (flags.max_concurrency > 0) {
    if (config.backends.empty())
      config.backends.push_back(
          parse_backend_flag(std::string{"ollama="} + defaults::default_backend_url));
    for (auto& backend : config.backends)
      backend.max_concurrency = flags.max_concurrency;
  }
  if (!flags.model.empty())
    config.engine.default_model = flags.model;
  if (flags.max_tasks > 0)
    config.engine.limits.max_tasks = flags.max_tasks;
  if (!flags.task_timeout.empty())
    config.engine.task_timeout = parse_duration(flags.task_timeout);
  if (!flags.batch_timeout.empty())
    config.engine.batch_timeout = parse_duration(flags.batch_timeout);
  if (!flags.log_level.empty())
    config.log_level = flags.log_level;
  if (!flags.log_format.empty())
    config.log_format = flags.log_format;
  if (!flags.policy_file.empty())
    config.policy_file = flags.policy_file;
  if (!flags.audit_log.empty())
    config.audit_log = flags.audit_log;
  if (!flags.state_dir.empty())
    config.state_dir = flags.state_dir;
  if (!flags.profile.empty())
    config.engine.profile = flags.profile;
  config.stdio = flags.stdio;
  if (!flags.http.empty())
    config.http.listen = flags.http;
  if (flags.allow_remote)
    config.http.allow_remote = true;
  config.http.socket_fd = socket_fd;
  finalize_config(config);
  return config;
}

serve_options build_serve_options(const serve_flags& flags) {
  serve_options options;
  // Taken once, before any thread starts; a reload keeps serving the same socket.
  int socket_fd = systemd::take_listen_socket().value_or(-1);
  options.config = build_serve_config(flags, socket_fd);
  if (!flags.config_file.empty())
    options.reload_config = [flags, socket_fd] { return build_serve_config(flags, socket_fd); };
  return options;
}

// The fakellm flags that need parsing; the rest bind straight to `options`.
struct fakellm_flags {
  fakellm_options options;
  std::string listen = "127.0.0.1:0";
  std::string api = "both";
  uint64_t loading_ms = 0;
  std::string models;
  std::string log_level = "info";
  std::string plan_file;
};

// Reads and checks a fault plan; a bad one stops the start with its file, line and reason.
fakellm::fault_plan load_fault_plan(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    throw config_error(fmt::format("{}: cannot read the file", path));
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = fakellm::parse_fault_plan(text.str(), path);
  if (!parsed.ok())
    throw config_error(parsed.error);
  return std::move(*parsed.plan);
}

fakellm_options build_fakellm_options(const fakellm_flags& flags) {
  fakellm_options options = flags.options;
  const auto& listen = flags.listen;
  auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    throw config_error(
        fmt::format("--listen \"{}\": expected HOST:PORT, e.g. 127.0.0.1:0", listen));
  options.host = listen.substr(0, colon);
  int port = -1;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535)
    throw config_error(fmt::format("--listen \"{}\": the port must be 0..65535", listen));
  options.port = static_cast<uint16_t>(port);
  // CLI11 has checked the value against the same names.
  options.api = fakellm::api_mode_from_string(flags.api).value_or(fakellm::api_mode::both);
  options.loading = std::chrono::milliseconds{flags.loading_ms};
  const auto& models = flags.models;
  if (!models.empty()) {
    options.models.clear();
    size_t start = 0;
    while (start <= models.size()) {
      auto comma = models.find(',', start);
      auto name =
          models.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!name.empty())
        options.models.push_back(name);
      if (comma == std::string::npos)
        break;
      start = comma + 1;
    }
  }
  if (!flags.plan_file.empty())
    options.plan = load_fault_plan(flags.plan_file);
  return options;
}

// `offload policy check FILE`: every error and warning with its line; exit 0 when loadable.
int check_policy_file(const std::string& path) {
  auto loaded = load_policy_file(path);
  for (const auto& error : loaded.errors)
    std::cout << "error: " << error << '\n';
  for (const auto& warning : loaded.warnings)
    std::cout << "warning: " << warning << '\n';
  if (!loaded.policy)
    return 1;
  std::cout << path << ": OK (" << loaded.policy->tools.size() << " tool entries, "
            << loaded.warnings.size() << " warning(s))\n";
  return 0;
}

// `offload config check FILE`: the file as the daemon would read it (with its policy file, if
// it names one); exit 0 when it would start.
int check_config_file(const std::string& path) {
  try {
    auto config = load_config_file(path);
    finalize_config(config);
    if (!config.policy_file.empty() && check_policy_file(config.policy_file) != 0)
      return 1;
    std::cout << path << ": OK (" << config.backends.size() << " backend(s), default model "
              << config.engine.default_model << ")\n";
    // Loud, as at start-up: a test configuration must not end up in production unnoticed.
    if (config.engine.chaos.enabled)
      std::cout << path << ": warning: chaos is ON (" << chaos::describe(config.engine.chaos)
                << "): this daemon would fail work on purpose\n";
    return 0;
  } catch (const std::exception& e) {
    std::cout << "error: " << e.what() << '\n';
    return 1;
  }
}

struct stats_flags {
  std::string state_dir;
  std::string config_file;
  std::string format = "table";
  uint32_t since_days = 0;
};

// `offload stats`: the usage ledger's summary, read-only, so it works while the daemon writes.
int print_stats(const stats_flags& flags) {
  auto dir = flags.state_dir;
  if (dir.empty() && !flags.config_file.empty())
    dir = load_config_file(flags.config_file).state_dir;
  if (dir.empty())
    dir = default_state_dir();
  auto path = dir + "/" + ledger_file_name;
  if (!std::filesystem::exists(path)) {
    std::cerr << "offload: no usage ledger at " << path
              << " (offload serve creates it; pass the daemon's --state-dir)\n";
    return 1;
  }
  usage_db db{path, defaults::sqlite_busy_timeout, sqlite_connection::access::read_only};
  auto since = usage_window_start_ms(flags.since_days, std::chrono::system_clock::now());
  if (flags.format == "records") {
    for (const auto& record : db.records(since))
      std::cout << render_usage_record(record).dump(-1, ' ', false, json::error_handler_t::replace)
                << '\n';
    return 0;
  }
  auto summary = db.summarize(since);
  if (flags.format == "json")
    std::cout << render_usage_json(summary).dump(2, ' ', false, json::error_handler_t::replace)
              << '\n';
  else if (flags.format == "prometheus")
    std::cout << render_usage_prometheus(summary);
  else
    std::cout << render_usage_table(summary);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"offload: hand routine coding work from AI agents to local LLMs (an MCP server)"};
  app.set_version_flag("--version", offload::version_string);
  app.require_subcommand(1);

  serve_flags flags;
  auto* serve = app.add_subcommand("serve", "Run the MCP server");
  serve->add_flag("--stdio", flags.stdio,
                  "Serve MCP over stdin/stdout (the default when no --http is given)");
  serve->add_option("--http", flags.http,
                    "Serve MCP over Streamable HTTP at HOST:PORT, endpoint /mcp (port 0 picks a "
                    "free one; the bound address is printed on stderr)");
  serve->add_flag("--allow-remote", flags.allow_remote,
                  "Allow --http on a non-loopback address (configure bearer tokens too)");
  serve->add_option("--config", flags.config_file, "YAML configuration file")
      ->check(CLI::ExistingFile);
  serve->add_option("--backend", flags.backends,
                    "LLM backend as KIND=URL, KIND ollama or openai, e.g. "
                    "ollama=http://127.0.0.1:11434 or openai=http://127.0.0.1:8080 (repeatable; "
                    "replaces the config file's backends)");
  serve->add_option("--model", flags.model, "Default model for tasks that name none");
  serve->add_option("--max-concurrency", flags.max_concurrency, "Concurrent requests per backend")
      ->check(CLI::PositiveNumber);
  serve->add_option("--max-tasks", flags.max_tasks, "Most tasks in one batch")
      ->check(CLI::PositiveNumber);
  serve->add_option("--task-timeout", flags.task_timeout, "Per-task deadline, e.g. 300s");
  serve->add_option("--batch-timeout", flags.batch_timeout, "Per-batch deadline, e.g. 900s");
  serve
      ->add_option("--policy", flags.policy_file,
                   "Intercept-compatible policy file (YAML): allow/deny, rate limits, hiding")
      ->check(CLI::ExistingFile);
  serve->add_option("--audit-log", flags.audit_log,
                    "Append every tools/call decision to this JSON Lines file (argument hashes "
                    "only, never arguments)");
  serve->add_option("--state-dir", flags.state_dir,
                    "Directory for persistent state (policy counters); default $STATE_DIRECTORY, "
                    "$XDG_STATE_HOME/offload or ~/.local/state/offload");
  serve
      ->add_option("--log-format", flags.log_format,
                   "text (journald-aware) or json: one JSON object per log line")
      ->check(CLI::IsMember({"text", "json"}));
  serve
      ->add_option("--profile", flags.profile,
                   "Fixture profile; \"conformance\" adds the MCP conformance suite's test "
                   "tools, resources and prompts (testing only)")
      ->check(CLI::IsMember({"conformance"}));
  serve->add_option("--log-level", flags.log_level,
                    "trace, debug, info, warn, error, critical or off (logs go to stderr)");

  fakellm_flags fake_flags;
  auto* fake = app.add_subcommand(
      "fakellm", "Run a fake LLM server (Ollama and OpenAI-compatible) for tests and demos");
  fake->add_option("--listen", fake_flags.listen, "HOST:PORT to bind (port 0 picks a free one)");
  fake->add_option("--slots", fake_flags.options.slots,
                   "Concurrent generations; more requests wait (0: no limit)");
  fake->add_option("--queue", fake_flags.options.queue,
                   "Most requests waiting for a slot; more get 503 (default: no limit)");
  fake->add_option("--api", fake_flags.api,
                   "APIs to serve: ollama, openai or both; the other's paths answer 404")
      ->check(CLI::IsMember({"ollama", "openai", "both"}));
  fake->add_option("--loading-ms", fake_flags.loading_ms,
                   "Answer 503 \"Loading model\" for this long after start (default 0)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{24 * 60 * 60 * 1000}));
  fake->add_option("--models", fake_flags.models, "Comma-separated model names to serve");
  fake->add_option("--log-level", fake_flags.log_level, "Log level (stderr)");
  auto* plan_opt = fake->add_option("--plan", fake_flags.plan_file,
                                    "Fault plan (YAML): rules that inject errors, delays, broken "
                                    "streams and hangs (docs/fault-injection.md)")
                       ->check(CLI::ExistingFile);
  fake->add_option("--seed", fake_flags.options.seed,
                   "Seed of the plan's random choices (default 0); same seed, same requests, "
                   "same faults");
  auto* record_opt = fake->add_option("--record", fake_flags.options.record_dir,
                                      "Record mode: relay every request to --upstream and store "
                                      "each exchange in this directory");
  auto* upstream_opt =
      fake->add_option("--upstream", fake_flags.options.upstream,
                       "The real server to record, e.g. http://127.0.0.1:11434 (with --record)");
  auto* replay_opt = fake->add_option("--replay", fake_flags.options.replay_dir,
                                      "Replay mode: answer from the exchanges recorded in this "
                                      "directory")
                         ->check(CLI::ExistingDirectory);
  auto* timing_opt = fake->add_flag("--replay-timing", fake_flags.options.replay_timing,
                                    "Replay with the recorded delays (default: at once)");
  fake->add_option("--ignore-field", fake_flags.options.ignore_fields,
                   "Top-level request field left out of a recording's key (repeatable; use the "
                   "same with --record and --replay)");
  record_opt->needs(upstream_opt);
  upstream_opt->needs(record_opt);
  timing_opt->needs(replay_opt);
  record_opt->excludes(replay_opt);
  plan_opt->excludes(record_opt)->excludes(replay_opt);

  std::string policy_path;
  auto* policy_cmd = app.add_subcommand("policy", "Work with policy files");
  policy_cmd->require_subcommand(1);
  auto* policy_check = policy_cmd->add_subcommand("check", "Validate a policy file");
  policy_check->add_option("file", policy_path, "The policy file")->required();

  std::string config_path;
  auto* config_cmd = app.add_subcommand("config", "Work with configuration files");
  config_cmd->require_subcommand(1);
  auto* config_check = config_cmd->add_subcommand("check", "Validate a configuration file");
  config_check->add_option("file", config_path, "The YAML configuration file")->required();
  stats_flags stats_args;
  auto* stats = app.add_subcommand(
      "stats", "Show the usage ledger: tasks, tokens and estimated savings (works while serving)");
  stats->add_option("--state-dir", stats_args.state_dir,
                    "The daemon's state directory (default: the config file's state_dir, else as "
                    "for serve)");
  stats->add_option("--config", stats_args.config_file, "Read state_dir from this config file")
      ->check(CLI::ExistingFile);
  stats
      ->add_option("--format", stats_args.format,
                   "table (default), json, prometheus, or records (one JSON object per task)")
      ->check(CLI::IsMember({"table", "json", "prometheus", "records"}));
  stats->add_option("--since", stats_args.since_days,
                    "Only the last N UTC days, today included (default 0: everything)");

  CLI11_PARSE(app, argc, argv);

  try {
    if (policy_cmd->parsed())
      return check_policy_file(policy_path);
    if (config_cmd->parsed())
      return check_config_file(config_path);
    if (stats->parsed())
      return print_stats(stats_args);
    if (serve->parsed()) {
      auto options = build_serve_options(flags);
      setup_logging(options.config.log_level, options.config.log_format);
      return run_serve(options);
    }
    setup_logging(fake_flags.log_level);
    return run_fakellm(build_fakellm_options(fake_flags));
  } catch (const std::exception& e) {
    std::cerr << "offload: " << e.what() << '\n';
    return 2;
  }
}
