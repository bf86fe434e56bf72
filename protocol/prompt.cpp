#include "protocol/prompt.hpp"

#include <fmt/format.h>

namespace offload {

std::vector<chat_message> build_messages(const task_spec& task,
                                         const std::string* previous_result) {
  std::string system =
      "You are a careful senior software engineer doing a well-defined task handed to you by "
      "another agent. Answer with the result only: no preamble, no questions.";
  if (!task.language.empty())
    system += fmt::format(" Write {} unless the task says otherwise.", task.language);
  if (!task.output_format.empty())
    system += fmt::format(" Format the answer as {}.", task.output_format);

  // The task comes first so that the model (and a person reading logs) sees the request before
  // the material it refers to.
  std::string user = task.task;
  if (!task.context.empty())
    user += fmt::format("\n\nContext:\n{}", task.context);
  if (previous_result != nullptr)
    user += fmt::format("\n\nResult of the previous step:\n{}", *previous_result);
  return {{"system", std::move(system)}, {"user", std::move(user)}};
}

std::optional<fitted_task> fit_to_context(const task_spec& task, size_t budget) {
  if (task.context.size() <= budget)
    return std::nullopt;
  auto keep_head = budget * 2 / 3;
  auto keep_tail = budget - keep_head;
  auto boundary = [&](size_t pos) {
    while (pos > 0 && pos < task.context.size() &&
           (static_cast<unsigned char>(task.context[pos]) & 0xC0) == 0x80)
      --pos;
    return pos;
  };
  auto head_end = boundary(keep_head);
  auto tail_start = boundary(task.context.size() - keep_tail);
  auto dropped = tail_start - head_end;
  fitted_task out;
  out.task = task_spec{task.task, task.language, {}, task.output_format, task.model, task.category};
  out.task.context = task.context.substr(0, head_end) +
                     fmt::format("\n\n[... {} characters omitted ...]\n\n", dropped) +
                     task.context.substr(tail_start);
  out.warning = fmt::format(
      "the content is {} characters but the model's context holds about {}: the middle {} "
      "characters were not seen by the model, so the summary does not cover them",
      task.context.size(), budget, dropped);
  return out;
}

size_t context_budget(size_t window, const task_spec& task, size_t target_chars) {
  // 512 characters of slack for the system prompt and the message framing.
  auto reserved = task.task.size() + target_chars + 512;
  return window > reserved ? window - reserved : window / 2;
}

} // namespace offload
