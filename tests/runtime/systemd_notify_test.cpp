#define CAF_SUITE systemd_notify
#include <caf/test/unit_test.hpp>

// Runs the real daemon under a fake systemd: this test owns the $NOTIFY_SOCKET datagram socket
// and checks the notifications across a start, reloads and a SIGTERM:
// READY (once the backend was probed) → WATCHDOG… → RELOADING → READY (reloaded) → RELOADING →
// READY (reload failed, naming the file and line) → STOPPING, then exit code 0. The behaviour a
// reload changes is checked over MCP by tests/e2e/systemd.test.mjs.

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
#include <fstream>
#include <regex>
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

// `offload fakellm` on an ephemeral port, killed (by PID) at the end of the test.
struct fake_llm {
  pid_t pid = -1;
  std::string url;

  fake_llm() {
    int out[2];
    CAF_REQUIRE(::pipe(out) == 0);
    pid = ::fork();
    CAF_REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      ::execl(OFFLOAD_BIN, OFFLOAD_BIN, "fakellm", "--listen", "127.0.0.1:0", "--log-level", "warn",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    // "listening on 127.0.0.1:PORT" is its first line.
    std::string line;
    char c = 0;
    pollfd p{out[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos && ::poll(&p, 1, 15000) > 0 &&
           ::read(out[0], &c, 1) == 1)
      line += c;
    ::close(out[0]);
    std::smatch m;
    CAF_REQUIRE(std::regex_search(line, m, std::regex{"listening on (127\\.0\\.0\\.1:[0-9]+)"}));
    url = "http://" + m[1].str();
  }

  ~fake_llm() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// `offload serve` under the fake systemd, with `args` after `serve`.
pid_t start_daemon(const fake_systemd& systemd, std::vector<std::string> args) {
  pid_t child = ::fork();
  CAF_REQUIRE(child >= 0);
  if (child == 0) {
    ::setenv("NOTIFY_SOCKET", systemd.socket_path.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "200000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    std::vector<char*> argv{const_cast<char*>(OFFLOAD_BIN), const_cast<char*>("serve")};
    for (auto& arg : args)
      argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(OFFLOAD_BIN, argv.data());
    ::_exit(127);
  }
  return child;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out{path, std::ios::trunc};
  out << text;
}

void stop_daemon(fake_systemd& systemd, pid_t child) {
  ::kill(child, SIGTERM);
  systemd.until("STOPPING=1");
  int status = 0;
  CAF_REQUIRE_EQUAL(::waitpid(child, &status, 0), child);
  CAF_CHECK(WIFEXITED(status));
  CAF_CHECK_EQUAL(WEXITSTATUS(status), 0);
}

} // namespace

CAF_TEST(the daemon speaks the sd_notify protocol through start reload and stop) {
  fake_systemd systemd;
  fake_llm fake;
  auto state = (systemd.dir / "state").string();
  auto config = systemd.dir / "offload.yaml";
  write_file(config, "batch:\n  max_tasks: 4\n");
  auto child =
      start_daemon(systemd, {"--config", config.string(), "--http", "127.0.0.1:0", "--backend",
                             "ollama=" + fake.url, "--state-dir", state, "--log-level", "warn"});
  // READY only once the router has probed the backend: its STATUS says how that went.
  auto started = systemd.until("READY=1");
  CAF_CHECK(has(started, "STATUS="));
  CAF_CHECK(has(started, "1 of 1 backend(s) healthy"));
  // The watchdog pings come from the actor system's pulse, every 100 ms here.
  auto pings = systemd.until("WATCHDOG=1");
  pings = systemd.until("WATCHDOG=1");
  CAF_CHECK(!pings.empty());
  // A valid edit: reloaded.
  write_file(config, "batch:\n  max_tasks: 2\n");
  ::kill(child, SIGHUP);
  systemd.until("RELOADING=1");
  auto reloaded = systemd.until("READY=1");
  CAF_CHECK(has(reloaded, "STATUS=reloaded: configuration"));
  // An invalid edit: rejected with its file and line, and still READY afterwards.
  write_file(config, "batch:\n  max_tasks: zero\n");
  ::kill(child, SIGHUP);
  systemd.until("RELOADING=1");
  auto rejected = systemd.until("READY=1");
  CAF_CHECK(has(rejected, "STATUS=reload failed: " + config.string() + ":2: batch.max_tasks"));
  stop_daemon(systemd, child);
}

CAF_TEST(ready says so when a backend is down) {
  fake_systemd systemd;
  auto state = (systemd.dir / "state").string();
  // Port 9 (discard) refuses connections: the probe fails at once.
  auto child =
      start_daemon(systemd, {"--http", "127.0.0.1:0", "--backend", "ollama=http://127.0.0.1:9",
                             "--state-dir", state, "--log-level", "error"});
  auto started = systemd.until("READY=1");
  CAF_CHECK(has(started, "0 of 1 backend(s) healthy"));
  // Without a configuration file a reload has only nothing to do, and SIGHUP never kills.
  ::kill(child, SIGHUP);
  systemd.until("RELOADING=1");
  auto reloaded = systemd.until("READY=1");
  CAF_CHECK(has(reloaded, "STATUS=nothing to reload"));
  stop_daemon(systemd, child);
}
