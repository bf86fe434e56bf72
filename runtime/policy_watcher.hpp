#pragma once
// Reloads the policy file on SIGHUP and when the file changes (polled: works on every file
// system, including bind mounts and editors that replace the file). A file with errors is
// rejected with a logged reason and the previous policy stays in force.

#include "protocol/policy.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

namespace offload {

class policy_watcher {
public:
  // `publish` receives every accepted policy; it runs on the io_context's thread.
  policy_watcher(boost::asio::io_context& io, std::string path, std::chrono::milliseconds poll,
                 std::function<void(policy_ptr)> publish);

  // Starts listening for SIGHUP and polling the file.
  void start();
  // Stops both; call on the io_context's thread or after it stopped.
  void stop();

private:
  void wait_signal();
  void wait_poll();
  void reload(const char* why);
  // Modification time and size: a change of either means the file changed.
  std::pair<std::filesystem::file_time_type, std::uintmax_t> stamp() const;

  std::string path_;
  std::chrono::milliseconds poll_;
  std::function<void(policy_ptr)> publish_;
  boost::asio::signal_set hangup_;
  boost::asio::steady_timer timer_;
  std::pair<std::filesystem::file_time_type, std::uintmax_t> last_stamp_;
  bool stopped_ = false;
};

} // namespace offload
