#pragma once
// Test doubles shared by the actor tests: a router that answers from the prompt text alone.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>

#include <string>
#include <vector>

namespace offload::test {

// The last user message of a request: where the task text (and its markers) lives.
inline const std::string& user_text(const llm_request& request) {
  for (auto it = request.messages.rbegin(); it != request.messages.rend(); ++it)
    if (it->role == "user")
      return it->content;
  static const std::string none;
  return none;
}

struct scripted_router_state {
  // The user text of every request, in arrival order.
  std::shared_ptr<std::vector<std::string>> seen;
  // Replies that were never delivered ("hang"), kept so that the requester waits forever.
  std::vector<caf::typed_response_promise<llm_reply>> hanging;
  static constexpr const char* name = "scripted_router";
};

// Answers "echo:<user text>" unless the text contains "fail" (HTTP 500 error) or "hang" (never
// answers).
inline router_actor::behavior_type
scripted_router(router_actor::stateful_pointer<scripted_router_state> self,
                std::shared_ptr<std::vector<std::string>> seen) {
  self->state.seen = std::move(seen);
  return {
      [self](generate_atom, llm_request_ptr& request) -> caf::result<llm_reply> {
        const auto& text = user_text(*request);
        self->state.seen->push_back(text);
        if (text.find("fail") != std::string::npos)
          return to_caf_error({errc::backend_http_error, "HTTP 500 from the LLM server", true});
        if (text.find("hang") != std::string::npos) {
          auto promise = self->make_response_promise<llm_reply>();
          self->state.hanging.push_back(promise);
          return promise;
        }
        llm_reply reply;
        reply.text = "echo:" + text;
        reply.model = request->model;
        reply.backend = "scripted";
        reply.tokens_in = 1;
        reply.tokens_out = 2;
        return reply;
      },
  };
}

inline engine_settings_ptr test_settings(std::chrono::milliseconds task_timeout,
                                         std::chrono::milliseconds batch_timeout) {
  auto settings = std::make_shared<engine_settings>();
  settings->default_model = "test-model";
  settings->task_timeout = task_timeout;
  settings->batch_timeout = batch_timeout;
  return settings;
}

inline batch_spec_ptr make_spec(std::vector<std::string> tasks, bool sequential = false) {
  auto spec = std::make_shared<batch_spec>();
  spec->tool = "batch_offload";
  spec->sequential = sequential;
  for (auto& t : tasks)
    spec->tasks.push_back(task_spec{std::move(t), "", "", "", "", ""});
  return spec;
}

} // namespace offload::test
