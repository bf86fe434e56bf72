// A task actor runs one task of a batch: it builds the prompt, asks the router for a completion
// under the task's deadline, reports the outcome to its coordinator and quits. Whatever goes wrong
// (an error reply, a timeout, an exception) becomes that task's result, never the batch's.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace offload {

namespace {

struct task_state {
  // The coordinator that receives this task's one and only report.
  batch_coordinator_actor coordinator;
  // When the task started, by the actor clock (deterministic in tests).
  caf::actor_clock::time_point started;
  size_t index = 0;
  std::string model;

  static constexpr const char* name = "task";
};

using task_pointer = caf::stateful_actor<task_state>*;

void report(task_pointer self, task_result result) {
  auto& st = self->state;
  result.index = st.index;
  if (result.model.empty())
    result.model = st.model;
  auto elapsed = self->clock().now() - st.started;
  result.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
  self->send(st.coordinator, task_done_atom_v, std::move(result));
  self->quit();
}

caf::behavior task_behavior(task_pointer self, batch_coordinator_actor coordinator,
                            batch_spec_ptr spec, size_t index,
                            std::shared_ptr<const std::string> previous, router_actor router,
                            engine_settings_ptr settings, task_deadline deadline,
                            std::string trace_id) {
  auto& st = self->state;
  st.coordinator = std::move(coordinator);
  st.started = self->clock().now();
  st.index = index;
  const auto& task = spec->tasks.at(index);
  st.model = task.model.empty() ? settings->default_model : task.model;

  auto request = std::make_shared<llm_request>();
  request->model = st.model;
  request->messages = build_messages(task, previous.get());
  request->trace_id = std::move(trace_id);

  // The request's timeout is the task's deadline: one mechanism covers a slow backend, a full
  // queue and a lost reply.
  self->request(router, deadline.timeout, generate_atom_v, llm_request_ptr{request})
    .then(
      [self](llm_reply& reply) {
        task_result result;
        result.status = task_status::ok;
        result.text = std::move(reply.text);
        result.model = std::move(reply.model);
        result.backend = std::move(reply.backend);
        result.tokens_in = reply.tokens_in;
        result.tokens_out = reply.tokens_out;
        report(self, std::move(result));
      },
      [self, deadline](caf::error& err) {
        task_result result;
        result.status = task_status::error;
        if (err == caf::sec::request_timeout) {
          result.error = {errc::timeout,
                          fmt::format("the task did not finish within {} ms ({}); the local LLM "
                                      "may be overloaded or still loading the model",
                                      deadline.timeout.count(),
                                      deadline.set_by_batch ? "what was left of the batch deadline"
                                                            : "the task timeout"),
                          true};
        } else {
          result.error = from_caf_error(err, &result.backend);
        }
        report(self, std::move(result));
      });
  // No handlers of its own: the actor lives until the response (or its timeout) arrives.
  return {};
}

} // namespace

caf::actor spawn_task(caf::actor_system& sys, batch_coordinator_actor coordinator,
                      batch_spec_ptr spec, size_t index,
                      std::shared_ptr<const std::string> previous, router_actor router,
                      engine_settings_ptr settings, task_deadline deadline,
                      std::string trace_id) {
  return sys.spawn(task_behavior, std::move(coordinator), std::move(spec), index,
                   std::move(previous), std::move(router), std::move(settings), deadline,
                   std::move(trace_id));
}

} // namespace offload
