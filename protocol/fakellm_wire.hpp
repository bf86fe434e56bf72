#pragma once
// Encoding helpers that the fake LLM's Ollama and OpenAI responses share: JSON strings built by
// hand, timestamps, invented but deterministic model metadata, and token counts.
//
// The fake deliberately does not reuse protocol/ollama.hpp or protocol/openai.hpp: a test double
// that shared the client's encoder and parser would agree with the client's bugs instead of
// exposing them.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace offload::fakellm {

// Appends `text` as a JSON string literal. Streamed lines are built by hand rather than through
// nlohmann::json: a reply of N words makes N + 1 lines, and at thousands of requests per second
// the DOM round trip dominated. Input is valid UTF-8 because it came out of nlohmann's parser, so
// only JSON's mandatory escapes are needed.
void append_json_string(std::string& out, std::string_view text);

// Ollama's timestamps: UTC with nanoseconds, e.g. "2024-05-01T12:34:56.123456789Z".
std::string format_created_at(std::chrono::system_clock::time_point t);

// OpenAI's `created`: whole seconds since the Unix epoch.
int64_t unix_seconds(std::chrono::system_clock::time_point t);

// What the fake claims about a model, derived from its name alone so that listings are
// reproducible: "llama3.2:3b" is family "llama" with 3 billion parameters.
struct model_info {
  std::string name;
  std::string family;
  std::string parameter_size; // e.g. "3B"
  uint64_t size = 0;          // bytes of a Q4_K_M quantisation
  std::string digest;         // 64 hex digits
};

model_info describe_model(std::string_view name);

// 64 hex digits that stand in for the sha256 Ollama reports; the same text gives the same digest.
std::string fake_digest(std::string_view text);

// Context window the fake claims when a prompt is said to be too long.
inline constexpr uint64_t fake_context_size = 4096;

// Token counts and durations of a finished generation. Durations are invented but plausible: the
// scripted latency counts as model load time.
struct usage {
  uint64_t prompt_tokens = 0;
  uint64_t reply_tokens = 0;
  std::chrono::nanoseconds total{0};
  std::chrono::nanoseconds load{0};
  std::chrono::nanoseconds prompt_eval{0};
  std::chrono::nanoseconds eval{0};
};

usage make_usage(size_t prompt_words, size_t reply_words, std::chrono::nanoseconds load);

} // namespace offload::fakellm
