// tools/call for the model tools (list_loaded_models, preload_model, pull_model): the session
// validates the arguments, hands the call to a model_tool actor, keeps it in the in-flight table
// (so that cancellation, shutdown and closing treat it like any other call) and relays a pull's
// progress as notifications/progress when the call asked for it.

#include "actors/mcp_session_state.hpp"
#include "protocol/mcp.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace offload {

void call_model_tool(session_pointer self, const json& id, const std::string& tool,
                     const json& args, const json& progress_token, std::vector<held_quota> held) {
  auto& st = self->state;
  std::string error;
  auto parsed = model_tools::parse_args(tool, args, error);
  if (!parsed) {
    send_invalid_arguments(self, id, tool, error);
    return;
  }
  if (reject_reused_id(self, id, held))
    return;
  auto key = id.dump();
  auto call_no = ++st.calls;
  auto session = caf::actor_cast<mcp_session_actor>(self);
  auto worker = spawn_model_tool(self->home_system(), st.router, std::move(*parsed),
                                 progress_token.is_null() ? mcp_session_actor{} : session, call_no);
  in_flight_call call;
  call.call_no = call_no;
  call.id = id;
  call.tool = tool;
  call.model_tool = worker;
  call.progress_token = progress_token;
  call.started = self->clock().now();
  track_call(self, std::move(call));
  spdlog::info("call {}/{}: {}", st.settings.name, call_no, tool);
  // The worker always answers (or is cancelled, and then no answer is wanted): its backends'
  // requests have deadlines or monitors.
  self->request(worker, caf::infinite, run_tool_atom_v)
      .then(
          [self, id, key, call_no](tool_answer& answer) {
            auto it = self->state.in_flight.find(key);
            if (it == self->state.in_flight.end() || it->second.call_no != call_no)
              return; // cancelled meanwhile
            self->state.in_flight.erase(it);
            count_call_ended(self);
            send_result(self, id, answer.result);
            quit_if_done(self);
          },
          [self, id, key, call_no, tool](caf::error& err) {
            auto it = self->state.in_flight.find(key);
            if (it == self->state.in_flight.end() || it->second.call_no != call_no)
              return;
            self->state.in_flight.erase(it);
            count_call_ended(self);
            auto failure = from_caf_error(err);
            spdlog::error("session {}: {} failed: {}", self->state.settings.name, tool,
                          failure.message);
            send_result(self, id, model_tools::render_failure(tool, failure));
            quit_if_done(self);
          });
}

void handle_tool_progress(session_pointer self, uint64_t call_no, double progress, double total,
                          const std::string& message) {
  for (auto& [key, call] : self->state.in_flight) {
    if (call.call_no != call_no)
      continue;
    // Progress values must strictly increase; a status change without new bytes waits.
    if (call.progress_token.is_null() || progress <= call.last_progress)
      return;
    call.last_progress = progress;
    json params = {
        {"progressToken", call.progress_token}, {"progress", progress}, {"message", message}};
    if (total > 0)
      params["total"] = total;
    send_notification(self, "notifications/progress", params, call.id.dump());
    return;
  }
}

} // namespace offload
