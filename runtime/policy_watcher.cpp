#include "runtime/policy_watcher.hpp"

#include <spdlog/spdlog.h>

namespace offload {

policy_watcher::policy_watcher(boost::asio::io_context& io, std::string path,
                               std::chrono::milliseconds poll,
                               std::function<void(policy_ptr)> changed)
    : path_(std::move(path))
    , poll_(poll)
    , changed_(std::move(changed))
    , timer_(io) {
  last_stamp_ = stamp();
}

void policy_watcher::start() {
  wait_poll();
}

void policy_watcher::stop() {
  stopped_ = true;
  timer_.cancel();
}

void policy_watcher::wait_poll() {
  timer_.expires_after(poll_);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_)
      return;
    if (stamp() != last_stamp_)
      if (auto loaded = read("the file changed"); loaded.policy)
        changed_(loaded.policy);
    wait_poll();
  });
}

loaded_policy policy_watcher::read(const char* why) {
  last_stamp_ = stamp();
  auto loaded = load_policy_file(path_);
  if (!loaded.policy) {
    for (const auto& error : loaded.errors)
      spdlog::error("policy reload ({}) rejected, the previous policy stays: {}", why, error);
    return loaded;
  }
  for (const auto& warning : loaded.warnings)
    spdlog::warn("policy: {}", warning);
  spdlog::info("policy {} reloaded ({})", path_, why);
  return loaded;
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
