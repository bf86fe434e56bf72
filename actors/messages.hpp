#pragma once
// Types carried in messages between actors. They never leave the process (no remote actors), so
// they are allowed as "unsafe" message types instead of being given serialisers. Large payloads
// (prompts, batches) travel as shared_ptr<const T> so that no actor copies them.

#include "protocol/audit.hpp"
#include "protocol/batch.hpp"
#include "protocol/ledger.hpp"
#include "protocol/ollama.hpp"
#include "protocol/policy.hpp"
#include "protocol/prompt.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/error.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace offload {

// One chat completion asked of an LLM backend.
// How a backend orders waiting requests: interactive ones (offload_work) go before batch tasks.
enum class request_priority : uint8_t { interactive, batch };

struct llm_request {
  std::string model;
  std::vector<chat_message> messages;
  std::string trace_id; // "<session>/<call>/<task>" for logs
  // Whose request this is: a backend's queue is fair between these (one queue per session).
  std::string fairness_key;
  request_priority priority = request_priority::batch;
  // Per-call overrides of the backend's timeouts; zero means the backend's configured value.
  std::chrono::milliseconds first_token_timeout{0};
  std::chrono::milliseconds idle_timeout{0};
  // Which attempt of its task this is (1: the first), for the logs and chaos decisions.
  uint32_t attempt = 1;
};
using llm_request_ptr = std::shared_ptr<const llm_request>;

// The batch engine's settings (actors/spawn.hpp), shared read-only by the sessions and their
// calls; a configuration reload hands the sessions a new snapshot.
struct engine_settings;
using engine_settings_ptr = std::shared_ptr<const engine_settings>;

// A successful completion.
struct llm_reply {
  std::string text;
  std::string model;
  std::string backend;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  std::string done_reason;
};

// What an HTTP exchange produced: a reply, or the error that ended it.
struct llm_outcome {
  bool ok = false;
  llm_reply reply;
  task_error error;
};

// What the router should know about a (re)try: which backend just failed it, so that another one
// serving the model is preferred.
struct route_hint {
  uint32_t attempt = 1;
  std::string avoid_backend;
};

// How one routed attempt ended, as the task reports it to the router: `no_error` for a reply,
// else the error's code (`cancelled` when the task gave up on the attempt itself: its deadline,
// a cancelled batch). The router decides which codes count against the backend.
struct attempt_report {
  uint32_t backend_id = 0;
  errc outcome = errc::no_error;
};

// How an endpoint answered its health probe.
enum class probe_status : uint8_t { up, loading, down };

// What a backend's management side answered: a health probe, a model list, the loaded models,
// a preload or a pull. `ok` or `error`; the other fields as the operation fills them.
struct admin_result {
  bool ok = false;
  task_error error;
  probe_status health = probe_status::down; // health probes
  std::vector<std::string> models;          // model lists
  std::vector<ollama::loaded_model> loaded; // loaded models (Ollama's /api/ps)
  std::string detail;                       // the server's version; the keep_alive used; ...
};

// One step of a model pull, as relayed to whoever asked for it.
struct pull_update {
  std::string status;    // Ollama's words: "pulling manifest", "pulling 1a2b3c...", ...
  int64_t completed = 0; // bytes over every layer seen so far
  int64_t total = 0;     // their sizes, as far as known
};

// A finished tools/call result (content, isError, structuredContent), as a model tool answers.
struct tool_answer {
  nlohmann::json result;
};

// Quota taken from one counter, kept by the caller so that it can be given back.
struct held_quota {
  std::string key;
  int64_t amount = 0;
  // Which window the quota was taken in: a fixed window's start (seconds since the epoch), or a
  // rolling window's entry id. A release for a window that has since reset does nothing.
  int64_t window_id = 0;
};

// A bucket's answer to one reservation.
struct bucket_verdict {
  bool granted = false;
  held_quota held;                 // when granted
  int64_t retry_after_seconds = 0; // when refused: until enough quota frees up
};

// The answer to a whole call's reservations (tool rules first, then "*"): all granted, or none
// (earlier grants are given back) plus the one that was refused.
struct reservation_outcome {
  bool granted = false;
  std::vector<held_quota> held;        // when granted: release these on a JSON-RPC error
  std::optional<policy_denial> denial; // when refused
  int64_t retry_after_seconds = 0;     // when refused
};

// One rolling-window grant as saved between runs (ids are per process, so they are not saved).
struct saved_grant {
  std::chrono::system_clock::time_point at;
  int64_t amount = 0;
};

// A counter's state as the counter_store keeps it, so that counts survive a restart. A bucket
// starts from it only if it still counts in the same window.
struct saved_counter {
  counter_window window = fixed_window::minute;
  int64_t window_id = 0;           // fixed windows: the window's start, seconds since the epoch
  int64_t value = 0;               // fixed windows: the count in that window
  std::vector<saved_grant> grants; // rolling windows: the grants still counted, oldest first
};

// Converts between our task errors and caf::error (category "offload", code = errc, context =
// (message, retryable, backend, retry_after_ms)), so that errors can travel as CAF response errors.
// `backend` names the backend that failed, when one did.
caf::error to_caf_error(const task_error& err, std::string_view backend = {});
// Also maps CAF's own errors (request timeout, dead receiver, ...) to task errors. Stores the
// failing backend's name in `backend` when the error carries one.
task_error from_caf_error(const caf::error& err, std::string* backend = nullptr);

// What an exception an actor's exception handler caught says (its what(), or "unknown
// exception" for anything not derived from std::exception).
std::string describe_exception(const std::exception_ptr& eptr);

} // namespace offload

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::llm_request_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::route_hint)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::attempt_report)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::admin_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::pull_update)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::tool_answer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::llm_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::llm_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::task_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::batch_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::batch_spec_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::held_quota)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::bucket_verdict)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::reservation_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::counter_reservation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<offload::counter_reservation>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<offload::held_quota>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::counter_window)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::policy_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::engine_settings_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::audit_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::saved_counter)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<offload::saved_counter>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::usage_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::usage_summary)
