#pragma once
// Ollama's native API wire format: /api/chat request bodies, the NDJSON response stream and error
// bodies, plus the model management endpoints (/api/tags, /api/ps, /api/pull, preloading).
// Pure code; the HTTP client feeds bytes in as they arrive.

#include "protocol/batch.hpp"
#include "protocol/llm_stream.hpp"
#include "protocol/prompt.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload::ollama {

// Per-model settings sent with each request. Ollama reloads a model whose num_ctx changes, so a
// backend should send the same value every time (or none).
struct chat_options {
  // How long the model stays loaded after the request: "5m", "1h", seconds as a number ("300"),
  // a negative number for ever, "0" to unload at once. Empty: the server's default (5m).
  std::string keep_alive;
  // Context window in tokens (options.num_ctx); 0: the model's default.
  int64_t num_ctx = 0;

  friend bool operator==(const chat_options&, const chat_options&) = default;
};

// Body of POST /api/chat.
std::string make_chat_body(const std::string& model, const std::vector<chat_message>& messages,
                           bool stream, const chat_options& options = {});

// The options configured for `model`: its own entry, else the entry of the same model spelt
// with or without the ":latest" tag Ollama implies; none: default options.
chat_options options_for(const std::map<std::string, chat_options>& configured,
                         const std::string& model);

// Body of POST /api/chat that only loads `model` into memory (no messages) and keeps it loaded
// for `keep_alive` (see chat_options; empty: the server's default), with a context window of
// `num_ctx` tokens when set (a later request with another num_ctx would reload it). The answer is
// one object with done_reason "load", which chat_stream_parser reads.
std::string make_preload_body(const std::string& model, const std::string& keep_alive,
                              int64_t num_ctx = 0);

// Incremental parser of an /api/chat response body (NDJSON when streaming, one object when not).
class chat_stream_parser : public llm_stream_parser {
public:
  // A body that ended before the final `done: true` object becomes `connection_dropped`.
  void feed(std::string_view bytes) override;
  void finish() override;

private:
  void parse_line(std::string_view line);

  std::string pending_; // bytes of an incomplete line
};

// Interprets a non-2xx response from Ollama (status and body) as a task error; `retry_after_ms`
// comes from the Retry-After header (0: none).
task_error error_from_status(unsigned status, std::string_view body, int64_t retry_after_ms = 0);

// -- model management
// ------------------------------------------------------------------------------

// Names of the models of a GET /api/tags answer ("qwen2.5-coder:7b", ...). On a body that is not
// the expected shape returns nullopt and sets `error`.
std::optional<std::vector<std::string>> parse_tags(std::string_view body, std::string& error);

// A model loaded in memory, from GET /api/ps.
struct loaded_model {
  std::string name;
  int64_t size = 0;           // bytes in memory, VRAM included
  int64_t size_vram = 0;      // bytes of it in VRAM
  std::string expires_at;     // RFC 3339 time at which Ollama unloads it
  int64_t context_length = 0; // context window it was loaded with; 0 when not reported
};

std::optional<std::vector<loaded_model>> parse_ps(std::string_view body, std::string& error);

// Body of POST /api/pull (streamed progress).
std::string make_pull_body(const std::string& model);

// One line of an /api/pull stream.
struct pull_status {
  std::string status; // "pulling manifest", "pulling <digest>", "verifying sha256 digest", ...
  std::string digest; // the layer being downloaded, if any
  int64_t total = 0;  // its size in bytes, when known
  int64_t completed = 0;
};

// Incremental parser of an /api/pull response body (NDJSON; one object when not streaming).
class pull_progress_parser {
public:
  void feed(std::string_view bytes);
  // A body that ended before the "success" status becomes `connection_dropped`.
  void finish();

  bool done() const { return done_; }
  bool failed() const { return error_.code != errc::no_error; }
  const task_error& error() const { return error_; }

  // The latest status line, and how many there were.
  const pull_status& latest() const { return latest_; }
  size_t updates() const { return updates_; }
  // Bytes over every layer seen so far (a layer counts once, with its latest figures).
  int64_t total_bytes() const;
  int64_t completed_bytes() const;

private:
  void parse_line(std::string_view line);

  std::string pending_;
  pull_status latest_;
  size_t updates_ = 0;
  std::map<std::string, pull_status> layers_; // by digest
  bool done_ = false;
  task_error error_;
};

} // namespace offload::ollama
