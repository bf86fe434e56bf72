#pragma once
// How errors of LLM servers become task errors. Ollama, llama.cpp, vLLM, LM Studio and OpenAI
// word and shape their errors differently; one classification keeps the codes agents and the
// router see the same whichever server answered.

#include "protocol/batch.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace offload {

// An error as a server described it.
struct llm_error_detail {
  std::string message; // the server's text, or the raw body cut short when it was not JSON
  std::string type;    // e.g. "exceed_context_size_error", "invalid_request_error"; may be empty
  std::string code;    // OpenAI's string code ("context_length_exceeded") or a number as text
};

// The error a JSON value carries, if any: {"error": "text"}, {"error": {"message", "type",
// "code"}} (OpenAI, llama.cpp) or vLLM's flat {"object": "error", "message", "type", "code"}.
std::optional<llm_error_detail> error_in_json(const nlohmann::json& value);

// The error described by a response body of any shape; a body that is not a known JSON error
// shape becomes its own text, cut short.
llm_error_detail parse_error_body(std::string_view body);

// Classifies a non-2xx response. `retry_after_ms` is the server's Retry-After hint (0: none).
task_error classify_http_error(unsigned status, const llm_error_detail& detail,
                               int64_t retry_after_ms = 0);

// Classifies an error the server reported inside a 200 response (an NDJSON line or SSE event).
task_error classify_stream_error(const llm_error_detail& detail);

// Milliseconds to wait according to a Retry-After header value: delta-seconds ("120") or an
// HTTP-date (IMF-fixdate, RFC 850 or asctime form) relative to `now`. 0 when the value is empty,
// unparsable or in the past; capped at defaults::max_retry_after.
int64_t parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now);

} // namespace offload
