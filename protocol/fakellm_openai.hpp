#pragma once
// The exact bytes of the fake LLM's OpenAI-compatible responses, as llama.cpp's server sends
// them: /v1/chat/completions as SSE events or one JSON body, /v1/models, /health and errors.

#include "protocol/fakellm_script.hpp"
#include "protocol/fakellm_wire.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload::fakellm {

// What every chunk of one completion repeats.
struct completion_ids {
  std::string id;      // e.g. "chatcmpl-fake-17"
  int64_t created = 0; // Unix seconds
  std::string model;
};

// The SSE events of a stream, each `data: {...}` plus the blank line that ends an event. With
// `usage_null`, every chunk but the last says `"usage":null`, as OpenAI's do when
// stream_options.include_usage is set.

// The first chunk: the assistant's role, no text yet.
void append_role_chunk(std::string& out, const completion_ids& ids, bool usage_null);
void append_content_chunk(std::string& out, const completion_ids& ids, std::string_view piece,
                          bool usage_null);
// An empty delta with `finish_reason`.
void append_finish_chunk(std::string& out, const completion_ids& ids,
                         std::string_view finish_reason, bool usage_null);
// The chunk stream_options.include_usage asks for: no choices, the token counts (plus
// llama.cpp's timings).
void append_usage_chunk(std::string& out, const completion_ids& ids, const usage& counts);
inline constexpr std::string_view done_event = "data: [DONE]\n\n";
// An error in the middle of a stream, as current llama.cpp and OpenAI send it: a data event
// whose object holds `error`.
void append_error_event(std::string& out, std::string_view error_body);

// First event of a `[[fault=malformed]]` stream: an object that never closes.
inline constexpr std::string_view malformed_event =
    "data: {\"id\": \"x\", \"choices\": [{\"delta\": {\"content\": \"oops\"}\n\n";
// The body of an unstreamed `[[fault=malformed]]` answer.
inline constexpr std::string_view malformed_completion_body =
    "{\"id\": \"x\", \"object\": \"chat.completion\", \"choices\": [{\"message\": {\"content\": "
    "\"oops\"}\n";

// The whole answer of a request without `stream`.
std::string make_completion_body(const completion_ids& ids, std::string_view reply,
                                 const usage& counts);

// Body of GET /v1/models.
std::string make_models_body(const std::vector<std::string>& models);

inline constexpr std::string_view health_ok_body = "{\"status\":\"ok\"}";

// llama.cpp's error type for each kind, e.g. "unavailable_error".
std::string_view openai_error_type(error_kind kind);

// An error body in llama.cpp's shape: {"error":{"code":status,"message":..,"type":..}}, plus the
// token counts of an exceed_context_size_error.
struct openai_error {
  uint16_t code = 500;
  std::string_view type;
  std::string message;
  std::optional<uint64_t> n_prompt_tokens;
  std::optional<uint64_t> n_ctx;
};

std::string make_openai_error_body(const openai_error& error);

} // namespace offload::fakellm
