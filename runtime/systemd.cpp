#include "runtime/systemd.hpp"

#include <systemd/sd-daemon.h>

#include <string>

namespace offload::systemd {

bool notify(std::string_view state) {
  std::string text{state};
  // unset_environment = 0: a reload or a second notification still needs $NOTIFY_SOCKET.
  return sd_notify(0, text.c_str()) > 0;
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
    return std::nullopt;
  return std::chrono::microseconds{usec};
}

std::vector<int> listen_fds() {
  std::vector<int> fds;
  int n = sd_listen_fds(0);
  for (int i = 0; i < n; ++i)
    fds.push_back(SD_LISTEN_FDS_START + i);
  return fds;
}

} // namespace offload::systemd
