#pragma once
// Daemon configuration: the YAML file (full form) and the command-line shortcuts, merged into
// one immutable value. Every key is documented in docs/configuration.md.

#include "actors/spawn.hpp"
#include "runtime/http_client.hpp"

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace offload {

// A configuration problem, with file and line when it came from a file.
class config_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct backend_config {
  std::string name; // unique; defaults to "<kind>@<host>:<port>"
  std::string kind = "ollama";
  std::string url;
  http_target target; // parsed from url
  size_t max_concurrency = defaults::backend_max_concurrency;
  size_t max_queue = defaults::backend_max_queue;
  std::chrono::milliseconds queue_wait = defaults::backend_queue_wait;
  std::chrono::milliseconds aging = defaults::backend_aging;
  http_timeouts timeouts;
  // Models it serves, in addition to those it reports (or instead, with discover: false).
  std::vector<std::string> models;
  bool discover = true;
};

struct daemon_config {
  std::vector<backend_config> backends;
  engine_settings engine;
  // Routing, health and circuit breaking; default_model is copied from engine.default_model.
  router_settings routing;
  // Per-model settings sent to Ollama (keep_alive, num_ctx), from models.options.
  std::map<std::string, ollama::chat_options> model_options;
  std::string log_level = "info";
  std::string policy_file; // Intercept-compatible policy (YAML); empty: every call allowed
  std::string audit_log;   // JSON Lines audit of tools/call decisions; empty: off
  std::string state_dir;   // where persistent state lives; empty: default_state_dir()
};

// Parses "250ms", "30s", "5m", "1h" (a bare number means seconds).
std::chrono::milliseconds parse_duration(std::string_view text);

// Parses "KIND=URL" as given to --backend.
backend_config parse_backend_flag(std::string_view flag);

// Reads a YAML configuration file. Unknown keys and bad values are errors naming file and line.
daemon_config load_config_file(const std::string& path);

// A policy file as loaded: the policy, or every error with its line; warnings either way.
struct loaded_policy {
  policy_ptr policy;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

// Reads and parses a policy file (Intercept v1.1.0 or the seed form).
loaded_policy load_policy_file(const std::string& path);

// $STATE_DIRECTORY (set by systemd's StateDirectory=), else $XDG_STATE_HOME/offload, else
// $HOME/.local/state/offload.
std::string default_state_dir();

// Fills derived fields (names, parsed URLs, total timeouts, the router's default model, context
// sizes from num_ctx) and checks the whole (aliases); throws config_error. Adds the default
// Ollama backend when none is configured.
void finalize_config(daemon_config& config);

} // namespace offload
