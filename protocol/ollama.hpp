#pragma once
// Ollama's /api/chat wire format: request bodies, the NDJSON response stream and error bodies.
// Pure code; the HTTP client feeds bytes in as they arrive.

#include "protocol/batch.hpp"
#include "protocol/prompt.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace offload::ollama {

// Body of POST /api/chat.
std::string make_chat_body(const std::string& model, const std::vector<chat_message>& messages,
                           bool stream);

// Incremental parser of an /api/chat response body (NDJSON when streaming, one object when not).
// Bytes may arrive split anywhere, including inside a UTF-8 sequence or a JSON token.
class chat_stream_parser {
public:
  // Consumes the next bytes of the body. After an error, further input is ignored.
  void feed(std::string_view bytes);

  // Called at the end of the body: a partial last line is parsed, and a body that ended before
  // the final `done: true` object becomes a `connection_dropped` error.
  void finish();

  bool done() const { return done_; }
  bool failed() const { return error_.code != errc::no_error; }
  const task_error& error() const { return error_; }

  const std::string& text() const { return text_; }
  const std::string& model() const { return model_; }
  const std::string& done_reason() const { return done_reason_; }
  int64_t tokens_in() const { return tokens_in_; }
  int64_t tokens_out() const { return tokens_out_; }
  // Number of content chunks seen so far (a first-token timer stops at the first one).
  size_t chunks() const { return chunks_; }

private:
  void parse_line(std::string_view line);
  void fail(errc code, std::string message);

  std::string pending_; // bytes of an incomplete line
  std::string text_;
  std::string model_;
  std::string done_reason_;
  int64_t tokens_in_ = 0;
  int64_t tokens_out_ = 0;
  size_t chunks_ = 0;
  bool done_ = false;
  task_error error_;
};

// Interprets a non-2xx response from Ollama (status and body) as a task error.
task_error error_from_status(unsigned status, std::string_view body);

} // namespace offload::ollama
