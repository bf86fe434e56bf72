#pragma once
// The exact bytes of the fake LLM's Ollama responses: /api/chat and /api/generate lines and
// bodies, model loads, errors, /api/tags, /api/ps, /api/pull progress and /api/version.

#include "protocol/fakellm_wire.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace offload::fakellm {

// /api/chat puts the text in message.content, /api/generate in response.
enum class ollama_shape : uint8_t { chat, generate };

// Appends one streamed NDJSON line (`done: false`) carrying `piece`, newline included.
void append_content_line(std::string& out, std::string_view model, std::string_view created_at,
                         std::string_view piece, ollama_shape shape = ollama_shape::chat);

// Appends the last NDJSON line of a stream (`done: true`, empty content), newline included.
void append_final_line(std::string& out, std::string_view model, std::string_view created_at,
                       const usage& counts, ollama_shape shape = ollama_shape::chat);

// The whole answer of a `stream: false` request: the final object with the full reply.
std::string make_complete_body(std::string_view model, std::string_view created_at,
                               std::string_view reply, const usage& counts,
                               ollama_shape shape = ollama_shape::chat);

// The answer to a request with nothing to generate: `done_reason` "load" (or "unload" when
// keep_alive is zero), no counts.
std::string make_load_body(std::string_view model, std::string_view created_at, bool unload,
                           ollama_shape shape);

// First line of a `[[fault=malformed]]` stream: an object that never closes.
inline constexpr std::string_view malformed_line =
    "{\"model\": \"x\", \"message\": {\"content\": \"oops\"\n";

// Ollama's error body, {"error": message}.
std::string make_error_body(std::string_view message);

// Appends an error line of a stream, as Ollama sends when generation fails midway.
void append_error_line(std::string& out, std::string_view message);

// Ollama's texts.
std::string model_not_found_message(std::string_view model);
inline constexpr std::string_view server_busy_message =
    "server busy, please try again.  maximum pending requests exceeded";
inline constexpr std::string_view context_too_long_message =
    "the input length exceeds the context length";
inline constexpr std::string_view pull_not_found_message =
    "pull model manifest: file does not exist";
inline constexpr std::string_view invalid_model_name_message = "invalid model name";
inline constexpr std::string_view loading_message = "Loading model";

// The text of an injected fault that has no real server's wording, e.g. "injected fault: http500".
std::string injected_fault_message(std::string_view fault_name);

// Body of GET /api/tags listing `models` with plausible, deterministic metadata.
std::string make_tags_body(const std::vector<std::string>& models);

// A model in memory, as GET /api/ps reports it.
struct running_model {
  std::string name;
  std::chrono::system_clock::time_point expires_at;
};

std::string make_ps_body(const std::vector<running_model>& models);

// Body of GET /api/version.
std::string make_version_body();

// The NDJSON lines of a successful pull of `model`, newlines included: "pulling manifest", a
// few progress lines per layer with `completed` rising to `total`, "verifying sha256 digest",
// "writing manifest", "success".
std::vector<std::string> make_pull_lines(std::string_view model);

// The pause between two lines of a streamed pull.
inline constexpr std::chrono::milliseconds pull_line_interval{20};

// The status line that precedes a failed pull's error.
inline constexpr std::string_view pull_manifest_line = "{\"status\":\"pulling manifest\"}\n";

// The answer to a `stream: false` pull.
inline constexpr std::string_view pull_success_body = "{\"status\":\"success\"}";

} // namespace offload::fakellm
