#pragma once
// `offload fakellm`: a fake Ollama server for tests and demos. It speaks Ollama's HTTP API, echoes
// the last user message back as the answer, and obeys markers in that message to add latency or
// inject faults (the rules live in protocol/fakellm_script.hpp).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace offload {

struct fakellm_options {
  std::string host = "127.0.0.1";
  uint16_t port = 0; // 0 = ephemeral; the bound port is printed
  // Most generations at once, like OLLAMA_NUM_PARALLEL; more requests wait first come, first
  // served. 0 = unlimited.
  size_t slots = 4;
  // Models the fake claims to have; others get Ollama's 404.
  std::vector<std::string> models = {"qwen2.5-coder:7b", "llama3.2:3b"};
};

// Runs the server on the calling thread until SIGINT or SIGTERM and returns the process exit code:
// 0 after a signal, 1 if the server cannot start. Once bound it prints exactly
// "listening on HOST:PORT\n" to stdout (flushed) so a parent process can find an ephemeral port;
// logs go to stderr.
int run_fakellm(const fakellm_options& options);

} // namespace offload
