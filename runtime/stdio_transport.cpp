#include "runtime/stdio_transport.hpp"

#include "protocol/jsonrpc.hpp"

#include <caf/send.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <unistd.h>

namespace offload {

stdio_transport::stdio_transport(int in_fd, int out_fd, size_t max_message_bytes)
    : in_fd_(in_fd)
    , out_fd_(out_fd)
    , max_message_bytes_(max_message_bytes) {
  if (::pipe(wake_pipe_) != 0)
    throw std::runtime_error(fmt::format("pipe() failed: {}", std::strerror(errno)));
}

stdio_transport::~stdio_transport() {
  stop();
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
}

output_sink stdio_transport::sink() {
  return [this](std::string message, const std::string&) { enqueue(std::move(message)); };
}

void stdio_transport::start(mcp_session_actor session) {
  writer_ = std::thread([this] { write_loop(); });
  reader_ = std::thread([this, session] { read_loop(session); });
}

void stdio_transport::stop() {
  if (reader_.joinable()) {
    char byte = 1;
    [[maybe_unused]] auto n = ::write(wake_pipe_[1], &byte, 1);
    reader_.join();
  }
  {
    std::lock_guard<std::mutex> guard{mutex_};
    stopping_ = true;
  }
  wake_writer_.notify_all();
  if (writer_.joinable())
    writer_.join();
}

void stdio_transport::enqueue(std::string message) {
  message.push_back('\n');
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (output_broken_)
      return;
    outgoing_.push_back(std::move(message));
  }
  wake_writer_.notify_one();
}

void stdio_transport::read_loop(mcp_session_actor session) {
  std::string line;
  bool discarding = false; // inside a line that exceeded the size limit
  char buffer[64 * 1024];
  for (;;) {
    pollfd fds[2] = {{in_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      spdlog::error("stdio: poll failed: {}", std::strerror(errno));
      break;
    }
    if (fds[1].revents != 0)
      return; // stop() asked us to quit; the session is being shut down by its owner
    auto n = ::read(in_fd_, buffer, sizeof(buffer));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0)
      break;
    std::string_view chunk{buffer, static_cast<size_t>(n)};
    while (!chunk.empty()) {
      auto nl = chunk.find('\n');
      auto piece = chunk.substr(0, nl);
      if (!discarding)
        line.append(piece);
      if (line.size() > max_message_bytes_) {
        line.clear();
        discarding = true;
      }
      if (nl == std::string_view::npos)
        break;
      chunk.remove_prefix(nl + 1);
      if (discarding) {
        enqueue(jsonrpc::make_error(
            nullptr, jsonrpc::invalid_request,
            fmt::format("message too large: the limit is {} bytes per line", max_message_bytes_)));
        discarding = false;
        continue;
      }
      if (!line.empty() && line.back() == '\r')
        line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos)
        caf::anon_send(session, mcp_in_atom_v, std::move(line));
      line.clear();
    }
  }
  if (!line.empty() && !discarding)
    caf::anon_send(session, mcp_in_atom_v, std::move(line));
  caf::anon_send(session, mcp_eof_atom_v);
}

void stdio_transport::write_loop() {
  for (;;) {
    std::string message;
    {
      std::unique_lock<std::mutex> lock{mutex_};
      wake_writer_.wait(lock, [this] { return stopping_ || !outgoing_.empty(); });
      if (outgoing_.empty())
        return; // stopping and drained
      message = std::move(outgoing_.front());
      outgoing_.pop_front();
    }
    std::string_view rest{message};
    while (!rest.empty()) {
      auto n = ::write(out_fd_, rest.data(), rest.size());
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        spdlog::warn("stdio: cannot write to stdout ({}); dropping further output",
                     std::strerror(errno));
        std::lock_guard<std::mutex> guard{mutex_};
        output_broken_ = true;
        outgoing_.clear();
        break;
      }
      rest.remove_prefix(static_cast<size_t>(n));
    }
  }
}

} // namespace offload
