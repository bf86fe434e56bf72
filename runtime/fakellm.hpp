#pragma once
// `offload fakellm`: a fake LLM server for tests and demos. It speaks Ollama's HTTP API and the
// OpenAI-compatible one (as llama.cpp's server does), echoes the last user message back as the
// answer, and obeys markers in that message to add latency or inject faults (the rules live in
// protocol/fakellm_*.hpp; docs/fake-llm.md describes every option and marker).

#include "protocol/fakellm_route.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace offload {

struct fakellm_options {
  std::string host = "127.0.0.1";
  uint16_t port = 0; // 0 = ephemeral; the bound port is printed
  // Most generations at once, like OLLAMA_NUM_PARALLEL or llama.cpp's -np; more requests wait
  // first come, first served. 0 = unlimited.
  size_t slots = 4;
  // Most requests waiting for a slot, like OLLAMA_MAX_QUEUE; more are turned away with 503.
  // Unset = no limit.
  std::optional<size_t> queue;
  // The APIs served; the other one's paths answer 404, as on a server that lacks them.
  fakellm::api_mode api = fakellm::api_mode::both;
  // For this long after start the server is "loading its model", as llama.cpp's is: everything
  // but /_fake/... answers 503.
  std::chrono::milliseconds loading{0};
  // Models the fake claims to have (and can "pull"); others get a 404.
  std::vector<std::string> models = {"qwen2.5-coder:7b", "llama3.2:3b"};
};

// Runs the server on the calling thread until SIGINT or SIGTERM and returns the process exit code:
// 0 after a signal, 1 if the server cannot start. Once bound it prints exactly
// "listening on HOST:PORT\n" to stdout (flushed) so a parent process can find an ephemeral port;
// logs go to stderr.
int run_fakellm(const fakellm_options& options);

} // namespace offload
