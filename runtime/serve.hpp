#pragma once
// `offload serve`: wires configuration, the actor system, the I/O thread and the transports.

#include "runtime/config.hpp"

#include <functional>
#include <string>

namespace offload {

struct serve_options {
  daemon_config config;
  size_t max_message_bytes = defaults::max_message_bytes;
  // Reads the configuration again as `config` was read (file, environment, command line), for a
  // reload (SIGHUP); throws config_error. Empty: there is no file to read again.
  std::function<daemon_config()> reload_config;
};

// Runs until the transport closes (EOF on stdin) or SIGINT/SIGTERM; returns the exit code.
int run_serve(const serve_options& options);

inline constexpr const char* version_string = "0.1.0";

// The usage ledger's file in the state directory (read by `offload stats`).
inline constexpr const char* ledger_file_name = "usage.sqlite";

} // namespace offload
