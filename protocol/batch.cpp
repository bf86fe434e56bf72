#include "protocol/batch.hpp"

#include <fmt/format.h>

namespace offload {

namespace {

// Reads an optional string field with a length limit. Returns false and sets `error` when the
// field is present but not a string, or too long.
bool read_string(const json& obj, const char* key, const std::string& where, size_t max_chars,
                 std::string& out, std::string& error) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null())
    return true;
  if (!it->is_string()) {
    error = fmt::format("{}{}: must be a string, got {}", where, key, it->type_name());
    return false;
  }
  const auto& value = it->get_ref<const std::string&>();
  if (value.size() > max_chars) {
    error = fmt::format("{}{}: is {} characters long; the limit is {}", where, key, value.size(),
                        max_chars);
    return false;
  }
  out = value;
  return true;
}

std::optional<task_spec> parse_task(const json& obj, const std::string& where,
                                    const batch_limits& limits, std::string& error) {
  if (!obj.is_object()) {
    error = fmt::format("{}: must be an object like {{\"task\": \"...\"}}, got {}",
                        where.empty() ? "arguments" : where.substr(0, where.size() - 1),
                        obj.type_name());
    return std::nullopt;
  }
  task_spec spec;
  auto task = obj.find("task");
  if (task == obj.end()) {
    error = fmt::format("{}task: required field is missing", where);
    return std::nullopt;
  }
  if (!read_string(obj, "task", where, limits.max_task_chars, spec.task, error))
    return std::nullopt;
  if (spec.task.find_first_not_of(" \t\r\n") == std::string::npos) {
    error = fmt::format("{}task: must not be empty", where);
    return std::nullopt;
  }
  if (!read_string(obj, "context", where, limits.max_context_chars, spec.context, error) ||
      !read_string(obj, "language", where, limits.max_field_chars, spec.language, error) ||
      !read_string(obj, "output_format", where, limits.max_field_chars, spec.output_format,
                   error) ||
      !read_string(obj, "model", where, limits.max_field_chars, spec.model, error) ||
      !read_string(obj, "category", where, limits.max_field_chars, spec.category, error))
    return std::nullopt;
  return spec;
}

std::string_view status_name(task_status status) {
  return status == task_status::ok ? "ok" : "error";
}

} // namespace

std::optional<batch_spec> parse_batch_offload(const json& args, const batch_limits& limits,
                                              std::string& error) {
  if (!args.is_object()) {
    error = fmt::format("arguments: must be an object with a \"tasks\" array, got {}",
                        args.type_name());
    return std::nullopt;
  }
  auto tasks = args.find("tasks");
  if (tasks == args.end()) {
    error = "tasks: required field is missing; pass an array of {\"task\": \"...\"} objects";
    return std::nullopt;
  }
  if (!tasks->is_array()) {
    error = fmt::format("tasks: must be an array of task objects, got {}", tasks->type_name());
    return std::nullopt;
  }
  if (tasks->empty()) {
    error = "tasks: the batch is empty; give at least 1 task";
    return std::nullopt;
  }
  if (tasks->size() > limits.max_tasks) {
    error = fmt::format("tasks: {} tasks given; the limit is {} per batch, so split the work "
                        "into several batches",
                        tasks->size(), limits.max_tasks);
    return std::nullopt;
  }
  batch_spec spec;
  spec.tool = "batch_offload";
  if (auto seq = args.find("sequential"); seq != args.end() && !seq->is_null()) {
    if (!seq->is_boolean()) {
      error = fmt::format("sequential: must be true or false, got {}", seq->type_name());
      return std::nullopt;
    }
    spec.sequential = seq->get<bool>();
  }
  spec.tasks.reserve(tasks->size());
  for (size_t i = 0; i < tasks->size(); ++i) {
    auto task = parse_task((*tasks)[i], fmt::format("tasks[{}].", i), limits, error);
    if (!task)
      return std::nullopt;
    spec.tasks.push_back(std::move(*task));
  }
  return spec;
}

std::optional<batch_spec> parse_offload_work(const json& args, const batch_limits& limits,
                                             std::string& error) {
  auto task = parse_task(args, "", limits, error);
  if (!task)
    return std::nullopt;
  batch_spec spec;
  spec.tool = "offload_work";
  spec.tasks.push_back(std::move(*task));
  return spec;
}

bool all_failed(const batch_result& result) {
  for (const auto& task : result.tasks)
    if (task.status == task_status::ok)
      return false;
  return !result.tasks.empty();
}

std::string render_text(const batch_spec& spec, const batch_result& result) {
  size_t ok = 0;
  std::string out;
  for (const auto& task : result.tasks) {
    if (task.status == task_status::ok)
      ++ok;
    // A single offload_work result is just the answer, as in the original server.
    if (spec.tool == "offload_work" && result.tasks.size() == 1 && task.status == task_status::ok)
      return task.text;
    out += fmt::format("## Task {} — {}", task.index + 1, status_name(task.status));
    if (!task.backend.empty())
      out += fmt::format(" ({} on {}, {} ms)", task.model, task.backend, task.duration_ms);
    else if (!task.model.empty())
      out += fmt::format(" ({}, {} ms)", task.model, task.duration_ms);
    out += '\n';
    if (task.status == task_status::ok) {
      out += task.text;
    } else {
      out += fmt::format("[{}] {}", to_string(task.error.code), task.error.message);
      // Tell the calling agent what to do next: the local LLM could not help with this one.
      out += task.error.retryable ? "\n[FALLBACK_TO_CLOUD] The local LLM failed on this task "
                                    "(it may work if retried later); do this task yourself."
                                  : "\n[FALLBACK_TO_CLOUD] The local LLM cannot do this task; "
                                    "do it yourself.";
    }
    out += "\n\n";
  }
  out += fmt::format("Summary: {} of {} tasks succeeded, {} failed ({} mode, {} ms).", ok,
                     result.tasks.size(), result.tasks.size() - ok,
                     spec.sequential ? "sequential" : "parallel", result.duration_ms);
  return out;
}

json render_structured(const batch_result& result) {
  json tasks = json::array();
  size_t ok = 0;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  for (const auto& task : result.tasks) {
    json item = {
        {"index", task.index},
        {"status", status_name(task.status)},
        {"model", task.model},
        {"backend", task.backend},
        {"tokens_in", task.tokens_in},
        {"tokens_out", task.tokens_out},
        {"duration_ms", task.duration_ms},
    };
    if (task.status == task_status::ok) {
      ++ok;
      item["text"] = task.text;
    } else {
      item["error"] = {{"code", to_string(task.error.code)},
                       {"message", task.error.message},
                       {"retryable", task.error.retryable}};
    }
    tokens_in += task.tokens_in;
    tokens_out += task.tokens_out;
    tasks.push_back(std::move(item));
  }
  return {
      {"tasks", std::move(tasks)},
      {"totals",
       {{"tasks", result.tasks.size()},
        {"ok", ok},
        {"failed", result.tasks.size() - ok},
        {"tokens_in", tokens_in},
        {"tokens_out", tokens_out},
        {"duration_ms", result.duration_ms}}},
  };
}

json batch_output_schema() {
  json error = {
      {"type", "object"},
      {"properties",
       {{"code", {{"type", "string"}}},
        {"message", {{"type", "string"}}},
        {"retryable", {{"type", "boolean"}}}}},
      {"required", {"code", "message", "retryable"}},
  };
  json task = {
      {"type", "object"},
      {"properties",
       {{"index", {{"type", "integer"}, {"minimum", 0}}},
        {"status", {{"type", "string"}, {"enum", {"ok", "error"}}}},
        {"text", {{"type", "string"}}},
        {"error", error},
        {"model", {{"type", "string"}}},
        {"backend", {{"type", "string"}}},
        {"tokens_in", {{"type", "integer"}}},
        {"tokens_out", {{"type", "integer"}}},
        {"duration_ms", {{"type", "integer"}}}}},
      {"required",
       {"index", "status", "model", "backend", "tokens_in", "tokens_out", "duration_ms"}},
  };
  json totals = {
      {"type", "object"},
      {"properties",
       {{"tasks", {{"type", "integer"}}},
        {"ok", {{"type", "integer"}}},
        {"failed", {{"type", "integer"}}},
        {"tokens_in", {{"type", "integer"}}},
        {"tokens_out", {{"type", "integer"}}},
        {"duration_ms", {{"type", "integer"}}}}},
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
          {"properties",
           {{"rule", {{"type", "string"}}},
            {"message", {{"type", "string"}}},
            {"retry_after_seconds", {{"type", "integer"}}}}},
          {"required", {"rule", "message"}}}}}},
      {"required", {"tasks", "totals"}},
  };
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
