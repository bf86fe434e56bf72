#pragma once
// Reloading without a restart: SIGHUP (`systemctl reload offload`).
//
// The configuration file (when the daemon was started with --config) is read again, with the
// environment and the command line applied over it as at start, and so is the policy file. Each
// is checked in full before anything changes; one with errors is logged with them (file, line,
// reason) and its running version stays. An accepted configuration replaces, at once and as a
// whole, the engine settings snapshot that new calls use (calls already running keep the one
// they started with) and the log level. Keys that only a restart can change (the listeners,
// the backends, the state directory, ...) keep their running values; when they changed, a
// warning names them. systemd hears RELOADING=1, then READY=1 with a STATUS saying how it went.
//
// Besides, the policy file is polled (runtime/policy_watcher): a change reloads the policy alone.
// Everything here runs on the I/O thread, where the HTTP transport spawns its sessions.

#include "runtime/config.hpp"
#include "runtime/policy_watcher.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace offload {

// How a freshly read configuration applies to the running one.
struct reload_plan {
  // The running configuration with every reloadable key taken from the fresh one.
  daemon_config next;
  // Reloadable keys whose value changed, e.g. "batch.max_tasks": they apply to new calls.
  std::vector<std::string> changed;
  // Keys whose value changed but that only a restart applies; they keep their running values.
  std::vector<std::string> need_restart;
};

// Compares two finalized configurations key by key (pure).
reload_plan plan_reload(const daemon_config& running, const daemon_config& fresh);

class reloader {
public:
  struct hooks {
    // Reads the configuration as at start; throws config_error (or another std::exception).
    // Empty: the daemon was started without a configuration file.
    std::function<daemon_config()> read_config;
    // Hand an accepted snapshot to the running sessions and to those started from now on.
    std::function<void(engine_settings_ptr)> publish_engine;
    std::function<void(policy_ptr)> publish_policy;
  };

  // `running` is the configuration the daemon started with and `engine` the snapshot built
  // from it (a reload keeps its metrics registry). With a policy file in `running`, the file is
  // watched too. Catches SIGHUP from now on, so that it never ends the daemon.
  reloader(boost::asio::io_context& io, daemon_config running, engine_settings_ptr engine,
           hooks hooks);

  // On the I/O thread (or before it runs): starts waiting for SIGHUP and polling the policy.
  void start();
  // On the I/O thread or after it stopped.
  void stop();

  // Reloads now, as on SIGHUP; on the I/O thread. Returns the STATUS sent with READY=1.
  std::string reload();

private:
  void wait_signal();
  // Reads and applies the configuration; the error when it was rejected.
  std::optional<std::string> reload_config();

  daemon_config running_;
  engine_settings_ptr engine_;
  hooks hooks_;
  boost::asio::signal_set hangup_;
  std::optional<policy_watcher> policy_;
  bool stopped_ = false;
};

} // namespace offload
