#pragma once
// Tasks and batches: the argument shapes of `batch_offload` and `offload_work` (kept from the
// original claude-token-saver-mcp), their validation, and how results are shown to agents.

#include "protocol/errors.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace offload {

using json = nlohmann::json;

// One unit of work for a local LLM, as the agent described it.
struct task_spec {
  std::string task;          // what to do (required)
  std::string language;      // programming language, optional
  std::string context;       // code or text the task is about, optional
  std::string output_format; // e.g. "code", "markdown", optional
  std::string model;         // explicit model, optional (else the configured default)
  std::string category;      // kind of work, optional (used for model selection later)
};

// A validated call of `batch_offload` or `offload_work`. Shared read-only between actors.
struct batch_spec {
  std::string tool; // the MCP tool that was called
  std::vector<task_spec> tasks;
  bool sequential = false; // each task sees the previous successful result
};
using batch_spec_ptr = std::shared_ptr<const batch_spec>;

// Limits applied while validating arguments; all come from configuration.
struct batch_limits {
  size_t max_tasks = 10;
  size_t max_task_chars = 32 * 1024;
  size_t max_context_chars = 256 * 1024;
  size_t max_field_chars = 256; // language, output_format, model, category
};

// Why one task did not produce a result. `code` is stable; `message` is for people.
struct task_error {
  errc code = errc::no_error;
  std::string message;
  bool retryable = false;
  // How long the server asked us to wait before trying again (Retry-After); 0: no hint.
  int64_t retry_after_ms = 0;
};

enum class task_status : uint8_t { ok, error };

// The outcome of one task, in the order the agent gave the tasks.
struct task_result {
  size_t index = 0;
  task_status status = task_status::error;
  std::string text; // the LLM's answer when ok
  task_error error; // when status == error
  std::string model;
  std::string backend;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  int64_t duration_ms = 0;
};

struct batch_result {
  std::vector<task_result> tasks;
  int64_t duration_ms = 0;
};

// Validates `batch_offload` arguments. On failure returns nullopt and sets `error` to a message
// that names the offending field and, where relevant, the limit.
std::optional<batch_spec> parse_batch_offload(const json& args, const batch_limits& limits,
                                              std::string& error);

// Validates `offload_work` arguments (one task at top level) into a one-task batch.
std::optional<batch_spec> parse_offload_work(const json& args, const batch_limits& limits,
                                             std::string& error);

// Readable text for the agent: one section per task in input order, then a summary line.
std::string render_text(const batch_spec& spec, const batch_result& result);

// `structuredContent` for the result; matches batch_output_schema().
json render_structured(const batch_result& result);

// JSON Schema of render_structured's output (the tools' `outputSchema`).
json batch_output_schema();

// JSON Schema of one task's fields, shared by both tools' input schemas.
json task_properties_schema();

// Whether every task failed (the tool result is then `isError`).
bool all_failed(const batch_result& result);

} // namespace offload
