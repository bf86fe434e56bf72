#pragma once
// What the response parsers of both wire formats (Ollama NDJSON, OpenAI SSE) have in common, so
// that the HTTP client can drive either without knowing which one it holds.

#include "protocol/batch.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace offload {

// Incremental parser of a chat response body. Bytes may arrive split anywhere, including inside a
// UTF-8 sequence, a JSON token or a line ending.
class llm_stream_parser {
public:
  virtual ~llm_stream_parser() = default;

  // Consumes the next bytes of the body. After an error or the end of the answer, further input
  // is ignored.
  virtual void feed(std::string_view bytes) = 0;

  // Called at the end of the body: buffered input is parsed, and a body that ended before the
  // answer was complete becomes a `connection_dropped` error.
  virtual void finish() = 0;

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

protected:
  void fail(task_error error) { error_ = std::move(error); }
  void fail(errc code, std::string message) {
    error_ = task_error{code, std::move(message), is_retryable(code)};
  }

  std::string text_;
  std::string model_;
  std::string done_reason_;
  int64_t tokens_in_ = 0;
  int64_t tokens_out_ = 0;
  size_t chunks_ = 0;
  bool done_ = false;

private:
  task_error error_;
};

} // namespace offload
