#include "runtime/policy_watcher.hpp"

#include "runtime/config.hpp"

#include <spdlog/spdlog.h>

#include <csignal>

namespace offload {

policy_watcher::policy_watcher(boost::asio::io_context& io, std::string path,
                               std::chrono::milliseconds poll,
                               std::function<void(policy_ptr)> publish)
    : path_(std::move(path))
    , poll_(poll)
    , publish_(std::move(publish))
    , hangup_(io, SIGHUP)
    , timer_(io) {
  last_stamp_ = stamp();
}

void policy_watcher::start() {
  wait_signal();
  wait_poll();
}

void policy_watcher::stop() {
  stopped_ = true;
  boost::system::error_code ignored;
  hangup_.cancel(ignored);
  timer_.cancel();
}

void policy_watcher::wait_signal() {
  hangup_.async_wait([this](boost::system::error_code ec, int) {
    if (ec || stopped_)
      return;
    reload("SIGHUP");
    wait_signal();
  });
}

void policy_watcher::wait_poll() {
  timer_.expires_after(poll_);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_)
      return;
    auto now = stamp();
    if (now != last_stamp_)
      reload("the file changed");
    wait_poll();
  });
}

void policy_watcher::reload(const char* why) {
  last_stamp_ = stamp();
  auto loaded = load_policy_file(path_);
  if (!loaded.policy) {
    for (const auto& error : loaded.errors)
      spdlog::error("policy reload ({}) rejected, the previous policy stays: {}", why, error);
    return;
  }
  for (const auto& warning : loaded.warnings)
    spdlog::warn("policy: {}", warning);
  spdlog::info("policy {} reloaded ({})", path_, why);
  publish_(loaded.policy);
}

std::pair<std::filesystem::file_time_type, std::uintmax_t> policy_watcher::stamp() const {
  std::error_code ec;
  auto time = std::filesystem::last_write_time(path_, ec);
  auto size = ec ? 0 : std::filesystem::file_size(path_, ec);
  if (ec)
    return {};
  return {time, size};
}

} // namespace offload
