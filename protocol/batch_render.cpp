// How batch results are shown to agents: readable text, structuredContent, and the JSON Schemas
// the tools declare.

#include "protocol/batch.hpp"

#include <fmt/format.h>

namespace offload {

std::string_view to_string(task_status status) {
  switch (status) {
  case task_status::ok:
    return "ok";
  case task_status::error:
    return "error";
  case task_status::skipped:
    return "skipped";
  case task_status::cancelled:
    return "cancelled";
  }
  return "error";
}

bool all_failed(const batch_result& result) {
  for (const auto& task : result.tasks)
    if (task.status == task_status::ok)
      return false;
  return !result.tasks.empty();
}

namespace {

// What the calling agent should do about a task that produced no answer. Every hint that hands
// the work back carries the original server's [FALLBACK_TO_CLOUD] marker, which agents look for.
std::string next_step(const task_result& task) {
  switch (task.error.code) {
  case errc::skipped:
    return "Not run because an earlier task of this chain failed (stop_on_error). Redo the "
           "failed task, then this one; or do them yourself.";
  case errc::cancelled:
    return "[FALLBACK_TO_CLOUD] The task was cancelled before it finished; do it yourself or "
           "send it again.";
  case errc::context_too_long:
    return "[FALLBACK_TO_CLOUD] The input does not fit the local model's context window; split "
           "it into smaller tasks or do this task yourself.";
  case errc::model_not_found:
    return "[FALLBACK_TO_CLOUD] The model is not installed on the local LLM server (pull_model "
           "can fetch it); do this task yourself meanwhile.";
  case errc::prompt_injection:
    return "[FALLBACK_TO_CLOUD] The input looks like a prompt injection, so it was not sent to "
           "the local LLM; review it and do the task yourself.";
  case errc::task_killed:
    return "[FALLBACK_TO_CLOUD] Chaos testing is on and stopped this task on purpose; send it "
           "again, or do it yourself.";
  case errc::invalid_argument:
    return "Correct the task's arguments and send it again.";
  default:
    return task.error.retryable ? "[FALLBACK_TO_CLOUD] The local LLM failed on this task (it may "
                                  "work if retried later); do this task yourself."
                                : "[FALLBACK_TO_CLOUD] The local LLM cannot do this task; do it "
                                  "yourself.";
  }
}

struct status_counts {
  size_t ok = 0, failed = 0, skipped = 0, cancelled = 0;
};

status_counts count(const batch_result& result) {
  status_counts c;
  for (const auto& task : result.tasks) {
    switch (task.status) {
    case task_status::ok:
      ++c.ok;
      break;
    case task_status::error:
      ++c.failed;
      break;
    case task_status::skipped:
      ++c.skipped;
      break;
    case task_status::cancelled:
      ++c.cancelled;
      break;
    }
  }
  return c;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

// The guard's remarks on a task, or nothing when there are none.
std::string guard_notes(const task_result& task) {
  std::string out;
  if (task.guard.injection == "warned")
    out += fmt::format("\n[GUARD] possible prompt injection in the input ({}); the task ran "
                       "anyway (mode warn).",
                       join(task.guard.injection_findings));
  if (task.guard.redactions > 0)
    out += fmt::format("\n[GUARD] {} secret(s) removed from the answer ({}).",
                       task.guard.redactions, join(task.guard.redacted_kinds));
  return out;
}

} // namespace

std::string render_text(const batch_spec& spec, const batch_result& result) {
  // A single successful answer is just the answer (plus any warnings), as in the original.
  if (spec.tool != "batch_offload" && result.tasks.size() == 1 &&
      result.tasks[0].status == task_status::ok) {
    const auto& task = result.tasks[0];
    std::string out = task.text;
    for (const auto& warning : task.warnings)
      out += "\n\n[WARNING] " + warning;
    return out + guard_notes(task);
  }
  std::string out;
  for (const auto& task : result.tasks) {
    out += fmt::format("## Task {} — {}", task.index + 1, to_string(task.status));
    if (!task.backend.empty())
      out += fmt::format(" ({} on {}, {} ms", task.model, task.backend, task.duration_ms);
    else if (!task.model.empty())
      out += fmt::format(" ({}, {} ms", task.model, task.duration_ms);
    if (!task.model.empty() || !task.backend.empty())
      out += task.attempts > 1 ? fmt::format(", {} attempts)", task.attempts) : ")";
    out += '\n';
    if (task.status == task_status::ok)
      out += task.text;
    else
      out += fmt::format("[{}] {}\n{}", to_string(task.error.code), task.error.message,
                         next_step(task));
    for (const auto& warning : task.warnings)
      out += "\n[WARNING] " + warning;
    out += guard_notes(task);
    out += "\n\n";
  }
  auto c = count(result);
  out += fmt::format("Summary: {} of {} tasks succeeded, {} failed", c.ok, result.tasks.size(),
                     c.failed);
  if (c.skipped > 0)
    out += fmt::format(", {} skipped", c.skipped);
  if (c.cancelled > 0)
    out += fmt::format(", {} cancelled", c.cancelled);
  out += fmt::format(" ({} mode, {} ms).", spec.sequential ? "sequential" : "parallel",
                     result.duration_ms);
  return out;
}

json render_structured(const batch_result& result) {
  json tasks = json::array();
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  for (const auto& task : result.tasks) {
    json item = {
        {"index", task.index},
        {"status", to_string(task.status)},
        {"model", task.model},
        {"backend", task.backend},
        {"tokens_in", task.tokens_in},
        {"tokens_out", task.tokens_out},
        {"duration_ms", task.duration_ms},
        {"attempts", task.attempts},
        {"guard",
         {{"injection", task.guard.injection},
          {"injection_findings", task.guard.injection_findings},
          {"redactions", task.guard.redactions},
          {"redacted_kinds", task.guard.redacted_kinds}}},
    };
    if (task.status == task_status::ok)
      item["text"] = task.text;
    else
      item["error"] = {{"code", to_string(task.error.code)},
                       {"message", task.error.message},
                       {"retryable", task.error.retryable}};
    if (!task.warnings.empty())
      item["warnings"] = task.warnings;
    tokens_in += task.tokens_in;
    tokens_out += task.tokens_out;
    tasks.push_back(std::move(item));
  }
  auto c = count(result);
  return {
      {"tasks", std::move(tasks)},
      {"totals",
       {{"tasks", result.tasks.size()},
        {"ok", c.ok},
        {"failed", c.failed},
        {"skipped", c.skipped},
        {"cancelled", c.cancelled},
        {"tokens_in", tokens_in},
        {"tokens_out", tokens_out},
        {"duration_ms", result.duration_ms}}},
  };
}

json batch_output_schema() {
  json integer = {{"type", "integer"}};
  json string = {{"type", "string"}};
  json strings = {{"type", "array"}, {"items", string}};
  json error = {
      {"type", "object"},
      {"properties", {{"code", string}, {"message", string}, {"retryable", {{"type", "boolean"}}}}},
      {"required", {"code", "message", "retryable"}},
  };
  json guard = {
      {"type", "object"},
      {"properties",
       {{"injection", {{"type", "string"}, {"enum", {"off", "clean", "warned", "blocked"}}}},
        {"injection_findings", strings},
        {"redactions", integer},
        {"redacted_kinds", strings}}},
      {"required", {"injection", "redactions"}},
  };
  json task = {
      {"type", "object"},
      {"properties",
       {{"index", {{"type", "integer"}, {"minimum", 0}}},
        {"status", {{"type", "string"}, {"enum", {"ok", "error", "skipped", "cancelled"}}}},
        {"text", string},
        {"error", error},
        {"model", string},
        {"backend", string},
        {"tokens_in", integer},
        {"tokens_out", integer},
        {"duration_ms", integer},
        {"attempts", integer},
        {"guard", guard},
        {"warnings", strings}}},
      {"required",
       {"index", "status", "model", "backend", "tokens_in", "tokens_out", "duration_ms",
        "attempts"}},
  };
  json totals = {
      {"type", "object"},
      {"properties",
       {{"tasks", integer},
        {"ok", integer},
        {"failed", integer},
        {"skipped", integer},
        {"cancelled", integer},
        {"tokens_in", integer},
        {"tokens_out", integer},
        {"duration_ms", integer}}},
      {"required", {"tasks", "ok", "failed", "tokens_in", "tokens_out", "duration_ms"}},
  };
  return {
      {"type", "object"},
      {"properties",
       {{"tasks", {{"type", "array"}, {"items", task}}},
        {"totals", totals},
        // Present only when the policy refused the call (then `tasks` is empty).
        {"policy",
         {{"type", "object"},
          {"properties", {{"rule", string}, {"message", string}, {"retry_after_seconds", integer}}},
          {"required", {"rule", "message"}}}}}},
      {"required", {"tasks", "totals"}},
  };
}

json deadline_properties_schema() {
  auto ms = [](const char* what) {
    return json{{"type", "integer"},
                {"minimum", 1},
                {"description", std::string{what} + " in milliseconds, within the server's "
                                                    "configured maximum (optional)."}};
  };
  return {
      {"task_timeout_ms", ms("How long each task may take, queueing included,")},
      {"batch_timeout_ms", ms("How long the whole call may take")},
      {"first_token_timeout_ms", ms("How long to wait for the model's first token (covers a "
                                    "cold model load)")},
      {"idle_timeout_ms", ms("How long the model may pause between tokens")},
  };
}

json compress_context_input_schema() {
  json props = {
      {"content", {{"type", "string"}, {"description", "The text or code to summarise."}}},
      {"target_length",
       {{"type", "integer"},
        {"minimum", 1},
        {"description", "Target length of the summary in characters (default 2000)."}}},
      {"focus", {{"type", "string"}, {"description", "What the summary must keep (optional)."}}},
      {"model", {{"type", "string"}, {"description", "Model to use instead of the default."}}},
  };
  props.update(deadline_properties_schema());
  return {{"type", "object"}, {"properties", std::move(props)}, {"required", {"content"}}};
}

json task_properties_schema() {
  return {
      {"task", {{"type", "string"}, {"description", "What the local LLM should do."}}},
      {"language", {{"type", "string"}, {"description", "Programming language, e.g. python."}}},
      {"context",
       {{"type", "string"}, {"description", "Code or text the task is about (optional)."}}},
      {"output_format",
       {{"type", "string"},
        {"description", "Desired form of the answer, e.g. code, markdown, json (optional)."}}},
      {"model", {{"type", "string"}, {"description", "Model to use instead of the default."}}},
      {"category",
       {{"type", "string"},
        {"description", "Kind of work, e.g. code_generation, documentation (optional)."}}},
  };
}

} // namespace offload
