#define CAF_SUITE systemd_notify
#include <caf/test/unit_test.hpp>

// Runs the real daemon under a fake systemd: this test owns the $NOTIFY_SOCKET datagram socket
// and checks the notifications across a start, a SIGHUP and a SIGTERM:
// READY → WATCHDOG… → RELOADING → READY → STOPPING, then exit code 0.

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace {

struct fake_systemd {
  std::filesystem::path dir;
  std::string socket_path;
  int fd = -1;

  fake_systemd() {
    char tmpl[] = "/tmp/offload-notify-XXXXXX";
    dir = ::mkdtemp(tmpl);
    socket_path = (dir / "notify").string();
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
    CAF_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  }

  ~fake_systemd() {
    ::close(fd);
    std::filesystem::remove_all(dir);
  }

  // The next notification, or "" after `timeout`.
  std::string next(std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
      return {};
    char buf[4096];
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string{};
  }

  // Reads notifications until one contains `what`; returns every one read.
  std::vector<std::string> until(const std::string& what) {
    std::vector<std::string> seen;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds{15};
    while (std::chrono::steady_clock::now() < end) {
      auto msg = next(std::chrono::milliseconds{500});
      if (msg.empty())
        continue;
      seen.push_back(msg);
      if (msg.find(what) != std::string::npos)
        return seen;
    }
    CAF_FAIL("no notification with " << what);
    return seen;
  }
};

bool has(const std::vector<std::string>& seen, const std::string& what) {
  for (const auto& msg : seen)
    if (msg.find(what) != std::string::npos)
      return true;
  return false;
}

} // namespace

CAF_TEST(the daemon speaks the sd_notify protocol through start reload and stop) {
  fake_systemd systemd;
  auto state = (systemd.dir / "state").string();
  pid_t child = ::fork();
  CAF_REQUIRE(child >= 0);
  if (child == 0) {
    ::setenv("NOTIFY_SOCKET", systemd.socket_path.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "200000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    ::execl(OFFLOAD_BIN, OFFLOAD_BIN, "serve", "--http", "127.0.0.1:0", "--backend",
            "ollama=http://127.0.0.1:9", "--state-dir", state.c_str(), "--log-level", "warn",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto started = systemd.until("READY=1");
  CAF_CHECK(has(started, "STATUS="));
  // The watchdog pings come from the actor system's pulse, every 100 ms here.
  auto pings = systemd.until("WATCHDOG=1");
  pings = systemd.until("WATCHDOG=1");
  CAF_CHECK(!pings.empty());
  ::kill(child, SIGHUP);
  systemd.until("RELOADING=1");
  systemd.until("READY=1");
  ::kill(child, SIGTERM);
  systemd.until("STOPPING=1");
  int status = 0;
  CAF_REQUIRE_EQUAL(::waitpid(child, &status, 0), child);
  CAF_CHECK(WIFEXITED(status));
  CAF_CHECK_EQUAL(WEXITSTATUS(status), 0);
}
