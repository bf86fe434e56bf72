#pragma once
// Turns a task into chat messages for a local LLM. Pure functions.

#include "protocol/batch.hpp"

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

} // namespace offload
