#pragma once
// The project's error codes. Each code has a stable snake_case name that agents see in tool
// results (error.code), so names never change once released; add new codes at the end.

#include <cstdint>
#include <string_view>

namespace offload {

enum class errc : uint8_t {
  no_error = 0,
  invalid_argument,    // the caller's input is wrong; retrying the same input will not help
  backend_unreachable, // could not connect to the LLM server
  backend_http_error,  // the LLM server answered with an HTTP error status
  backend_error,       // the LLM server reported an error inside a 200 response
  model_not_found,     // the LLM server does not have the model
  malformed_stream,    // the LLM server's response could not be parsed
  connection_dropped,  // the connection closed before the response was complete
  timeout,             // a deadline passed
  task_crashed,        // the task actor died unexpectedly (a bug or an injected fault)
  cancelled,           // the caller or the daemon cancelled the work
  no_backend,          // no backend is configured or available for the task
  internal,            // an invariant broke inside offload; a bug
  queue_full,          // the backend's queue was full or its wait budget ran out
  skipped,             // not run: an earlier task of a stop_on_error chain failed
  backend_overloaded,  // the LLM server said it is busy (HTTP 429, 503 "server busy")
  model_loading,       // the LLM server is still loading the model (llama.cpp 503 "Loading model")
  context_too_long,    // the prompt does not fit the model's context window
  prompt_injection,    // the injection guard blocked the task's input
  backend_unavailable, // every backend for the model is down or its circuit breaker is open
  task_killed,         // chaos testing killed the task actor on purpose (chaos.kill_task)
};

// Stable name of a code, e.g. "backend_http_error".
std::string_view to_string(errc code);

// Whether the same request might succeed if tried again later (used by agents and retries).
bool is_retryable(errc code);

} // namespace offload
