#include "runtime/systemd.hpp"

#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <fmt/format.h>

#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>

namespace offload::systemd {

bool notify(std::string_view state) {
  std::string text{state};
  // unset_environment = 0: a reload or a second notification still needs $NOTIFY_SOCKET.
  return sd_notify(0, text.c_str()) > 0;
}

bool notify_reloading(std::string_view status) {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  auto usec =
      static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
  return notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={}", usec, status));
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
    return std::nullopt;
  return std::chrono::microseconds{usec};
}

std::optional<int> take_listen_socket() {
  // unset_environment = 1: the sockets are ours alone. sd_listen_fds also sets FD_CLOEXEC on
  // them, and returns 0 when $LISTEN_PID names another process (the variables were inherited).
  int n = sd_listen_fds(1);
  if (n < 0)
    throw std::runtime_error(fmt::format(
        "socket activation: cannot read $LISTEN_FDS/$LISTEN_PID: {}", std::strerror(-n)));
  if (n == 0)
    return std::nullopt;
  if (n > 1)
    throw std::runtime_error(fmt::format(
        "socket activation: systemd passed {} sockets; offload serves exactly one: give "
        "offload.socket a single ListenStream=",
        n));
  int fd = SD_LISTEN_FDS_START;
  if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0)
    throw std::runtime_error(
        "socket activation: the socket systemd passed is not a listening TCP socket; "
        "offload.socket needs ListenStream=HOST:PORT (an IP address and a port)");
  return fd;
}

} // namespace offload::systemd
