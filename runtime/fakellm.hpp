#pragma once
// `offload fakellm`: a fake LLM server for tests and demos. It speaks Ollama's HTTP API and the
// OpenAI-compatible one (as llama.cpp's server does), echoes the last user message back as the
// answer, and obeys markers in that message to add latency or inject faults (the rules live in
// protocol/fakellm_*.hpp; docs/fake-llm.md describes every option and marker).

#include "protocol/fakellm_plan.hpp"
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
  // The fault plan in force from the start (`--plan FILE`, already parsed); PUT /_fake/plan
  // swaps it. Unset: only the prompt markers inject faults.
  std::optional<fakellm::fault_plan> plan;
  // Seeds the plan's random choices; the same seed and the same requests give the same faults.
  uint64_t seed = 0;
  // Record mode: every request except /_fake/... goes to `upstream` (an http:// base URL), and
  // each exchange is stored under `record_dir`.
  std::string record_dir;
  std::string upstream;
  // Replay mode: requests are answered from the exchanges stored under `replay_dir`, with their
  // recorded timing when `replay_timing` is set, else at once.
  std::string replay_dir;
  bool replay_timing = false;
  // Top-level request fields left out of the key that identifies a recorded exchange.
  std::vector<std::string> ignore_fields;
};

// Runs the server on the calling thread until SIGINT or SIGTERM and returns the process exit code:
// 0 after a signal, 1 if the server cannot start (including an unusable record or replay
// directory or upstream URL). Once bound it prints exactly
// "listening on HOST:PORT\n" to stdout (flushed) so a parent process can find an ephemeral port;
// logs go to stderr.
int run_fakellm(const fakellm_options& options);

} // namespace offload
