#pragma once
// The OpenAI-compatible chat completions wire format spoken by llama.cpp's server, vLLM, LM Studio,
// Ollama's /v1 and others: request bodies, the server-sent-events response stream (and the
// one-object answer when not streaming), error bodies and the model list.
// Pure code; the HTTP client feeds bytes in as they arrive.

#include "protocol/batch.hpp"
#include "protocol/llm_stream.hpp"
#include "protocol/prompt.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload::openai {

// Body of POST /v1/chat/completions. A streamed request asks for the final usage chunk
// (stream_options.include_usage), without which most servers report no token counts.
std::string make_chat_body(const std::string& model, const std::vector<chat_message>& messages,
                           bool stream);

// The request path of `endpoint` ("chat/completions", "models") under a backend URL's path.
// People configure these servers both at their root (http://host:8080) and at their OpenAI base
// URL (http://host:1234/v1); both mean the same API.
std::string api_path(std::string_view base_path, std::string_view endpoint);

// Incremental parser of a /v1/chat/completions response body: server-sent events when streaming
// (`data:` lines with JSON chunks, then `data: [DONE]`), one JSON object when not; which one is
// told by the first byte that is not white space.
class chat_stream_parser : public llm_stream_parser {
public:
  // A stream that ends without `[DONE]` is complete when a finish_reason was seen; otherwise it
  // becomes `connection_dropped`.
  void feed(std::string_view bytes) override;
  void finish() override;

private:
  enum class body_mode { unknown, events, whole };

  void take_line(std::string_view line);
  void dispatch(bool at_end);
  void take_chunk(const nlohmann::json& chunk);
  void finish_whole_body();

  body_mode mode_ = body_mode::unknown;
  std::string line_;       // bytes of the current, incomplete line
  bool skip_lf_ = false;   // the last line ended in CR: an LF right after it belongs to it
  std::string data_;       // the current event's data lines, joined with LF
  bool has_data_ = false;  // the current event had a data line (even an empty one)
  std::string event_;      // the current event's type ("error" for llama.cpp's error field)
  std::string body_;       // the whole body, when it is one JSON object
  bool finished_ = false;  // a choice carried a finish_reason
  bool has_usage_ = false; // a usage object was seen (timings are only a fallback)
};

// Interprets a non-2xx response (status and body; OpenAI/llama.cpp nested errors or vLLM's flat
// ones) as a task error; `retry_after_ms` comes from the Retry-After header (0: none).
task_error error_from_status(unsigned status, std::string_view body, int64_t retry_after_ms = 0);

// Model ids of a GET /v1/models answer. On a body that is not the expected shape returns nullopt
// and sets `error`.
std::optional<std::vector<std::string>> parse_models(std::string_view body, std::string& error);

} // namespace offload::openai
