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

// Per-call deadline overrides (milliseconds; 0 = the configured default). Validated against the
// configured maxima, so an agent can shorten or lengthen them only within what the operator allows.
struct deadline_overrides {
  int64_t task_timeout_ms = 0;
  int64_t batch_timeout_ms = 0;
  int64_t first_token_timeout_ms = 0;
  int64_t idle_timeout_ms = 0;
};

// A validated call of `batch_offload`, `offload_work` or `compress_context`. Shared read-only
// between actors.
struct batch_spec {
  std::string tool; // the MCP tool that was called
  std::vector<task_spec> tasks;
  // The session that made the call: backends share their slots fairly between owners.
  std::string owner;
  bool sequential = false;    // each task sees the previous successful result
  bool stop_on_error = false; // sequential only: the first failure skips the rest
  deadline_overrides deadlines;
  // compress_context: the content to summarise is tasks[0].context; this is the target length in
  // characters (0 for other tools).
  size_t target_chars = 0;
};
using batch_spec_ptr = std::shared_ptr<const batch_spec>;

// Limits applied while validating arguments; all come from configuration.
struct batch_limits {
  size_t max_tasks = 10;
  size_t max_task_chars = 32 * 1024;
  size_t max_context_chars = 256 * 1024;
  size_t max_field_chars = 256; // language, output_format, model, category
  // Largest per-call deadline overrides accepted, in milliseconds.
  int64_t max_task_timeout_ms = 900'000;
  int64_t max_batch_timeout_ms = 3'600'000;
  int64_t max_first_token_timeout_ms = 600'000;
  int64_t max_idle_timeout_ms = 600'000;
  // compress_context: largest content accepted, and the default target length.
  size_t max_compress_chars = 4 * 1024 * 1024;
  size_t default_target_chars = 2000;
};

// Why one task did not produce a result. `code` is stable; `message` is for people.
struct task_error {
  errc code = errc::no_error;
  std::string message;
  bool retryable = false;
  // How long the server asked us to wait before trying again (Retry-After); 0: no hint.
  int64_t retry_after_ms = 0;
};

// ok: `text` holds the answer. error: `error` says why not. skipped: never run (stop_on_error).
// cancelled: stopped by the caller or by the daemon shutting down.
enum class task_status : uint8_t { ok, error, skipped, cancelled };

// What the guards did to one task: the injection check of its input and the redaction of its
// output.
struct guard_verdict {
  std::string injection = "off";               // "off" | "clean" | "warned" | "blocked"
  std::vector<std::string> injection_findings; // categories found, when warned or blocked
  size_t redactions = 0;                       // secrets removed from the output
  std::vector<std::string> redacted_kinds;
};

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
  uint32_t attempts = 0; // requests sent to a backend (retries included)
  guard_verdict guard;
  // Notes for the agent that do not make the task fail (e.g. compress_context truncated input).
  std::vector<std::string> warnings;
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

// Validates `compress_context` arguments ({content, target_length?, focus?, model?}) into a
// one-task batch whose context is the content.
std::optional<batch_spec> parse_compress_context(const json& args, const batch_limits& limits,
                                                 std::string& error);

// Stable name of a status: "ok", "error", "skipped", "cancelled".
std::string_view to_string(task_status status);

// Readable text for the agent: one section per task in input order, then a summary line.
std::string render_text(const batch_spec& spec, const batch_result& result);

// `structuredContent` for the result; matches batch_output_schema().
json render_structured(const batch_result& result);

// JSON Schema of render_structured's output (the tools' `outputSchema`).
json batch_output_schema();

// JSON Schema of one task's fields, shared by both tools' input schemas.
json task_properties_schema();

// JSON Schema of the per-call options shared by the task tools (deadline overrides).
json deadline_properties_schema();

// JSON Schema of compress_context's arguments.
json compress_context_input_schema();

// Whether every task failed (the tool result is then `isError`).
bool all_failed(const batch_result& result);

} // namespace offload
