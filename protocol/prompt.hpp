#pragma once
// Turns a task into chat messages for a local LLM. Pure functions.

#include "protocol/batch.hpp"

#include <optional>
#include <string>
#include <vector>

namespace offload {

struct chat_message {
  std::string role; // "system" | "user" | "assistant"
  std::string content;
};

// Builds the conversation for one task. `previous_result` is the answer of the previous task in
// a sequential batch (nullptr for the first task or in parallel mode).
std::vector<chat_message> build_messages(const task_spec& task, const std::string* previous_result);

// compress_context's input cut to fit `budget` characters: content longer than that loses its
// middle (the start and the end usually carry the most), cut on UTF-8 character boundaries, and
// `warning` says what the model did not see. Nothing when the content fits (no copy is made).
struct fitted_task {
  task_spec task;
  std::string warning;
};
std::optional<fitted_task> fit_to_context(const task_spec& task, size_t budget);

// How much of a compress_context's content fits a model window of `window` characters, leaving
// room for the instructions and for a summary of `target_chars`.
size_t context_budget(size_t window, const task_spec& task, size_t target_chars);

} // namespace offload
