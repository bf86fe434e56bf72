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

} // namespace offload
