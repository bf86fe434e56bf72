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

// Reads an optional boolean field.
bool read_bool(const json& obj, const char* key, bool& out, std::string& error) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null())
    return true;
  if (!it->is_boolean()) {
    error = fmt::format("{}: must be true or false, got {}", key, it->type_name());
    return false;
  }
  out = it->get<bool>();
  return true;
}

// Reads an optional positive integer no larger than `max`.
bool read_bounded(const json& obj, const char* key, int64_t max, int64_t& out, std::string& error) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null())
    return true;
  if (!it->is_number_integer() && !it->is_number_unsigned()) {
    error = fmt::format("{}: must be a whole number, got {}", key, it->type_name());
    return false;
  }
  // Read as double first so that huge values are reported, not wrapped.
  auto value = it->get<double>();
  if (value < 1) {
    error = fmt::format("{}: must be at least 1, got {}", key, it->dump());
    return false;
  }
  if (value > static_cast<double>(max)) {
    error = fmt::format("{}: {} is more than the configured maximum of {}", key, it->dump(), max);
    return false;
  }
  out = it->get<int64_t>();
  return true;
}

// The per-call deadline overrides shared by the task tools.
bool read_deadlines(const json& args, const batch_limits& limits, deadline_overrides& out,
                    std::string& error) {
  return read_bounded(args, "task_timeout_ms", limits.max_task_timeout_ms, out.task_timeout_ms,
                      error) &&
         read_bounded(args, "batch_timeout_ms", limits.max_batch_timeout_ms, out.batch_timeout_ms,
                      error) &&
         read_bounded(args, "first_token_timeout_ms", limits.max_first_token_timeout_ms,
                      out.first_token_timeout_ms, error) &&
         read_bounded(args, "idle_timeout_ms", limits.max_idle_timeout_ms, out.idle_timeout_ms,
                      error);
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
  if (!read_bool(args, "sequential", spec.sequential, error) ||
      !read_bool(args, "stop_on_error", spec.stop_on_error, error) ||
      !read_deadlines(args, limits, spec.deadlines, error))
    return std::nullopt;
  if (spec.stop_on_error && !spec.sequential) {
    error = "stop_on_error: only applies to sequential batches (parallel tasks all start at once); "
            "set \"sequential\": true or drop it";
    return std::nullopt;
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
  if (!read_deadlines(args, limits, spec.deadlines, error))
    return std::nullopt;
  spec.tasks.push_back(std::move(*task));
  return spec;
}

std::optional<batch_spec> parse_compress_context(const json& args, const batch_limits& limits,
                                                 std::string& error) {
  if (!args.is_object()) {
    error = fmt::format("arguments: must be an object with a \"content\" string, got {}",
                        args.type_name());
    return std::nullopt;
  }
  auto content = args.find("content");
  if (content == args.end() || content->is_null()) {
    error = "content: required field is missing; pass the text to summarise";
    return std::nullopt;
  }
  task_spec task;
  if (!read_string(args, "content", "", limits.max_compress_chars, task.context, error))
    return std::nullopt;
  if (task.context.find_first_not_of(" \t\r\n") == std::string::npos) {
    error = "content: must not be empty";
    return std::nullopt;
  }
  std::string focus;
  if (!read_string(args, "focus", "", limits.max_task_chars, focus, error) ||
      !read_string(args, "model", "", limits.max_field_chars, task.model, error))
    return std::nullopt;
  int64_t target = static_cast<int64_t>(limits.default_target_chars);
  if (!read_bounded(args, "target_length", static_cast<int64_t>(limits.max_compress_chars), target,
                    error))
    return std::nullopt;
  batch_spec spec;
  spec.tool = "compress_context";
  spec.target_chars = static_cast<size_t>(target);
  if (!read_deadlines(args, limits, spec.deadlines, error))
    return std::nullopt;
  task.category = "summarization";
  task.task = fmt::format(
      "Summarise the context below in at most {} characters. Keep every fact a programmer needs "
      "to keep working with it: names of files, functions, types and variables, error messages, "
      "numbers, decisions and open questions. Leave out repetition and boilerplate.{}{}",
      target, focus.empty() ? "" : " Focus on: ", focus);
  spec.tasks.push_back(std::move(task));
  return spec;
}

} // namespace offload
