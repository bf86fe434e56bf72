#pragma once
// The daemon's side of systemd's service protocol (sd_notify): readiness, status, watchdog,
// reload and stop notifications, and socket activation. Every call is a no-op when the daemon
// does not run under systemd (no $NOTIFY_SOCKET / $LISTEN_FDS), so callers need no checks.

#include <chrono>
#include <optional>
#include <string_view>

namespace offload::systemd {

// Sends one notification, e.g. "READY=1\nSTATUS=serving". Returns whether systemd got it.
bool notify(std::string_view state);

// Sends RELOADING=1 with the monotonic time systemd's Type=notify-reload asks for, and `status`.
bool notify_reloading(std::string_view status);

// How often systemd expects WATCHDOG=1 (half of WatchdogSec= is the usual ping interval), or
// nothing when the watchdog is off or meant for another process.
std::optional<std::chrono::microseconds> watchdog_interval();

// The listening socket passed by socket activation (offload.socket: $LISTEN_FDS, with
// $LISTEN_PID naming this process), or nothing when none was passed. Call it once, before any
// thread starts: it unsets $LISTEN_FDS, $LISTEN_PID and $LISTEN_FDNAMES so that nothing else
// takes the socket. Throws std::runtime_error unless exactly one listening TCP socket was passed.
std::optional<int> take_listen_socket();

} // namespace offload::systemd
