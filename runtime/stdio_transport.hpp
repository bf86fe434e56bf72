#pragma once
// The stdio transport: newline-delimited JSON-RPC on stdin/stdout. It only moves bytes: a reader
// thread splits stdin into lines and sends each to the session actor; a writer thread drains a
// queue of outgoing messages to stdout so that no actor ever blocks on a full pipe.

#include "actors/spawn.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace offload {

class stdio_transport {
public:
  stdio_transport(int in_fd, int out_fd, size_t max_message_bytes);
  ~stdio_transport();
  stdio_transport(const stdio_transport&) = delete;
  stdio_transport& operator=(const stdio_transport&) = delete;

  // Where the session writes its messages; safe to call from any thread.
  output_sink sink();

  // Starts reading; every line goes to `session`, and end of input becomes (mcp_eof).
  void start(mcp_session_actor session);

  // Stops reading, writes everything already queued, and joins both threads.
  void stop();

private:
  void read_loop(mcp_session_actor session);
  void write_loop();
  void enqueue(std::string message);

  int in_fd_;
  int out_fd_;
  size_t max_message_bytes_;
  int wake_pipe_[2] = {-1, -1}; // written by stop() to interrupt poll() in the reader
  std::thread reader_;
  std::thread writer_;
  std::mutex mutex_;
  std::condition_variable wake_writer_;
  std::deque<std::string> outgoing_;
  bool stopping_ = false;
  bool output_broken_ = false; // the client closed stdout; later messages are dropped
};

} // namespace offload
