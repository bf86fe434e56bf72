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

  friend bool operator==(const backend_config&, const backend_config&) = default;
};

// One bearer token of the HTTP transport and the agent it authenticates.
struct http_token_config {
  std::string token;  // the secret itself, resolved from token, token_env or token_file
  std::string agent;  // the identity policy scopes see
  std::string origin; // where it came from, for messages: "tokens[0] (token_env OFFLOAD_T)"

  friend bool operator==(const http_token_config&, const http_token_config&) = default;
};

struct http_config {
  std::string listen;        // HOST:PORT; empty: HTTP off
  bool allow_remote = false; // binding to a non-loopback address needs this
  std::vector<std::string> allowed_origins;
  std::vector<std::string> allowed_hosts;
  std::chrono::milliseconds session_idle_timeout = defaults::http_session_idle_timeout;
  size_t max_sessions = defaults::http_max_sessions;
  size_t max_body_bytes = defaults::http_max_body_bytes;
  size_t max_inflight_per_session = defaults::http_max_inflight_per_session;
  std::chrono::milliseconds sse_retry = defaults::http_sse_retry;
  size_t event_buffer = defaults::http_event_buffer;
  std::vector<http_token_config> tokens;
  // A listening socket passed by systemd (socket activation: LISTEN_FDS, see runtime/systemd);
  // -1: none. When set, HTTP is served on it and `listen` is not bound. Not a file key.
  int socket_fd = -1;
};

// A listen address as given ("127.0.0.1:8787", "[::1]:0", "localhost:8787"), resolved.
struct listen_address {
  std::string ip; // "127.0.0.1", "::1"
  uint16_t port = 0;
  bool loopback = true;
};

// Parses HOST:PORT where HOST is an IP address or "localhost"; throws config_error.
listen_address parse_listen_address(std::string_view text);

struct daemon_config {
  bool stdio = false; // serve MCP on stdin/stdout (the default when no transport is chosen)
  http_config http;
  std::vector<backend_config> backends;
  engine_settings engine;
  // Routing, health and circuit breaking; default_model is copied from engine.default_model.
  router_settings routing;
  // Per-model settings sent to Ollama (keep_alive, num_ctx), from models.options.
  std::map<std::string, ollama::chat_options> model_options;
  std::string log_level = "info";
  std::string log_format = "text"; // text (journald-aware) or json
  std::string policy_file;         // Intercept-compatible policy (YAML); empty: every call allowed
  std::string audit_log;           // JSON Lines audit of tools/call decisions; empty: off
  std::string state_dir;           // where persistent state lives; empty: default_state_dir()
  // Record every finished task in <state_dir>/usage.sqlite (cost_dashboard, get_metrics,
  // `offload stats`).
  bool ledger_enabled = true;
  price_table pricing = default_price_table(); // what a task done locally saved
};

// Applies the environment's overrides of common keys, as the original server read them:
// OLLAMA_BASE_URL (the backend when the file names none: one Ollama backend at that URL),
// OFFLOAD_BACKEND (KIND=URL), OFFLOAD_DEFAULT_MODEL, OFFLOAD_LOG_LEVEL, OFFLOAD_LOG_FORMAT,
// OFFLOAD_STATE_DIR, OFFLOAD_POLICY, OFFLOAD_HTTP_LISTEN. Empty variables are ignored.
void apply_environment(daemon_config& config);

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
// Ollama backend when none is configured. Serves stdio when no transport is chosen (neither
// stdio, nor http.listen, nor a socket from systemd).
void finalize_config(daemon_config& config);

} // namespace offload
