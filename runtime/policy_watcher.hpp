#pragma once
// Watches the policy file: polled, so that it works on every file system, including bind mounts
// and editors that replace the file. A change that parses becomes the policy; a file with errors
// is rejected with a logged reason and the previous policy stays in force. A reload on SIGHUP
// reads the file through read() (runtime/reload).

#include "runtime/config.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

namespace offload {

class policy_watcher {
public:
  // `changed` receives every policy accepted because the file changed; it runs on the
  // io_context's thread.
  policy_watcher(boost::asio::io_context& io, std::string path, std::chrono::milliseconds poll,
                 std::function<void(policy_ptr)> changed);

  // Starts polling the file.
  void start();
  // Stops polling; call on the io_context's thread or after it stopped.
  void stop();

  // Reads the file now (`why` is for the log). Errors and warnings are logged; `policy` is null
  // when the file has errors, and the caller keeps the previous one.
  loaded_policy read(const char* why);

private:
  void wait_poll();
  // Modification time and size: a change of either means the file changed.
  std::pair<std::filesystem::file_time_type, std::uintmax_t> stamp() const;

  std::string path_;
  std::chrono::milliseconds poll_;
  std::function<void(policy_ptr)> changed_;
  boost::asio::steady_timer timer_;
  std::pair<std::filesystem::file_time_type, std::uintmax_t> last_stamp_;
  bool stopped_ = false;
};

} // namespace offload
