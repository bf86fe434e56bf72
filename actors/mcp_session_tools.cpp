// tools/call for an MCP session: the policy step, one batch coordinator per call, progress
// notifications (task completions plus a heartbeat while tasks generate), and cancellation.

#include "actors/mcp_session_state.hpp"
#include "actors/policy_check.hpp"
#include "protocol/mcp.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace offload {

namespace {

std::optional<batch_spec> parse_tool_args(session_pointer self, const std::string& tool,
                                          const json& args, std::string& error) {
  const auto& limits = self->state.engine->limits;
  if (tool == "batch_offload")
    return parse_batch_offload(args, limits, error);
  if (tool == "compress_context")
    return parse_compress_context(args, limits, error);
  return parse_offload_work(args, limits, error);
}

void send_progress(session_pointer self, in_flight_call& call, double progress,
                   std::string message) {
  if (call.progress_token.is_null() || progress <= call.last_progress)
    return; // progress values must strictly increase
  call.last_progress = progress;
  send_notification(self, "notifications/progress",
                    {{"progressToken", call.progress_token},
                     {"progress", progress},
                     {"total", call.total},
                     {"message", std::move(message)}},
                    call.id.dump());
}

void start_heartbeat(session_pointer self) {
  auto& st = self->state;
  if (st.heartbeat_running)
    return;
  st.heartbeat_running = true;
  self->delayed_send(self, st.engine->progress_heartbeat, heartbeat_atom_v,
                     ++st.heartbeat_generation);
}

void call_batch_tool(session_pointer self, const json& id, const std::string& tool,
                     const json& args, const json& progress_token, std::vector<held_quota> held) {
  auto& st = self->state;
  std::string error;
  auto spec = parse_tool_args(self, tool, args, error);
  if (!spec) {
    send_invalid_arguments(self, id, tool, error);
    return;
  }
  if (reject_reused_id(self, id, held))
    return;
  auto key = id.dump();
  auto call_no = ++st.calls;
  auto trace_id = fmt::format("{}/{}", st.settings.name, call_no);
  spec->owner = st.settings.name;
  auto shared_spec = std::make_shared<const batch_spec>(std::move(*spec));
  progress_fn progress;
  if (!progress_token.is_null()) {
    auto session = caf::actor_cast<mcp_session_actor>(self);
    progress = [session, call_no](size_t done, size_t total) {
      caf::anon_send(session, progress_atom_v, call_no, done, total);
    };
  }
  auto coordinator = spawn_batch_coordinator(
      self->home_system(), shared_spec, st.router, st.engine, trace_id, std::move(progress),
      call_usage{st.usage, st.settings.name, st.settings.agent, call_no});
  in_flight_call call;
  call.call_no = call_no;
  call.id = id;
  call.tool = tool;
  call.coordinator = coordinator;
  call.progress_token = progress_token;
  call.total = shared_spec->tasks.size();
  call.started = self->clock().now();
  track_call(self, std::move(call));
  if (!progress_token.is_null())
    start_heartbeat(self);
  // The coordinator answers by its batch deadline; the monitor covers it dying without answering.
  // (A request timeout here would stay scheduled in CAF 0.17's clock long after the answer.)
  self->monitor(coordinator);
  spdlog::info("call {}: {} with {} task(s), {}", trace_id, tool, shared_spec->tasks.size(),
               shared_spec->sequential ? "sequential" : "parallel");
  send_log(self, log_level::info,
           {{"event", "call_started"}, {"tool", tool}, {"tasks", shared_spec->tasks.size()}}, key);
  // Only the first answer for this call counts; a cancelled call gets none.
  auto still_current = [self, key, call_no] {
    auto it = self->state.in_flight.find(key);
    if (it == self->state.in_flight.end() || it->second.call_no != call_no)
      return false;
    self->state.in_flight.erase(it);
    count_call_ended(self);
    return true;
  };
  self->request(coordinator, caf::infinite, run_batch_atom_v)
      .then(
          [self, id, key, call_no, shared_spec, still_current](batch_result& result) {
            // The final progress goes out before the result (the coordinator's last report may
            // still be in the mailbox behind this answer): after the response, none may follow.
            if (auto it = self->state.in_flight.find(key);
                it != self->state.in_flight.end() && it->second.call_no == call_no) {
              auto& call = it->second;
              call.done = call.total = result.tasks.size();
              send_progress(self, call, static_cast<double>(call.total),
                            fmt::format("{} of {} tasks done", call.total, call.total));
            }
            if (!still_current())
              return;
            size_t ok = 0;
            for (const auto& task : result.tasks)
              ok += task.status == task_status::ok ? 1 : 0;
            send_log(self, ok == result.tasks.size() ? log_level::info : log_level::warning,
                     {{"event", "call_finished"},
                      {"ok", ok},
                      {"tasks", result.tasks.size()},
                      {"duration_ms", result.duration_ms}},
                     key);
            auto text = render_text(*shared_spec, result);
            auto structured = render_structured(result);
            send_result(
                self, id,
                mcp::tool_result(std::move(text), all_failed(result), std::move(structured)));
            quit_if_done(self);
          },
          [self, id, trace_id, still_current](caf::error& err) {
            if (!still_current())
              return;
            auto failure = from_caf_error(err);
            spdlog::error("call {}: coordinator failed: {}", trace_id, failure.message);
            send_result(self, id,
                        mcp::tool_result(fmt::format("offload could not run the batch ({}): {}. "
                                                     "[FALLBACK_TO_CLOUD] Do these tasks yourself.",
                                                     to_string(failure.code), failure.message),
                                         true));
            quit_if_done(self);
          });
}

// Writes one audit record when an audit log is configured. `denial` is the denial's
// structuredContent ({rule, message, ...}), or null when the call was allowed.
void record_decision(session_pointer self, const std::string& tool, const json& args,
                     const json* denial) {
  auto& st = self->state;
  if (!st.policy.audit)
    return;
  audit_record record;
  record.time = st.policy.now ? st.policy.now() : std::chrono::system_clock::now();
  record.session = st.settings.name;
  record.agent = st.settings.agent;
  record.tool = tool;
  record.allowed = denial == nullptr;
  if (denial != nullptr) {
    record.rule = denial->value("rule", "");
    record.message = denial->value("message", "");
  }
  record.args_hash = sha256_hex(args.dump(-1, ' ', false, json::error_handler_t::replace));
  self->send(st.policy.audit, audit_atom_v, std::move(record));
}

// Runs an allowed call. `held` is the quota the policy took for it.
void dispatch_tool(session_pointer self, const json& id, const std::string& name, const json& args,
                   const json& progress_token, std::vector<held_quota> held) {
  if (name == "batch_offload" || name == "offload_work" || name == "compress_context") {
    call_batch_tool(self, id, name, args, progress_token, std::move(held));
    return;
  }
  if (is_usage_tool(name)) {
    call_usage_tool(self, id, name, args);
    return;
  }
  if (model_tools::is_model_tool(name)) {
    call_model_tool(self, id, name, args, progress_token, std::move(held));
    return;
  }
  if (call_conformance_tool(self, id, name, args, progress_token))
    return;
  send_error(self, id, jsonrpc::invalid_params,
             fmt::format("Unknown tool: {:?}. Available tools: batch_offload, offload_work, "
                         "compress_context, cost_dashboard, get_metrics, list_loaded_models, "
                         "preload_model, pull_model",
                         name));
  release_quota(self, std::move(held));
}

} // namespace

// Gives back a call's quota: it ended in a JSON-RPC error, which Intercept does not count.
void release_quota(session_pointer self, std::vector<held_quota> held) {
  if (!held.empty())
    self->send(self->state.policy.registry, release_atom_v, std::move(held));
}

void send_invalid_arguments(session_pointer self, const json& id, const std::string& tool,
                            const std::string& error) {
  // Bad arguments are a tool result the agent can read and correct (MCP 2025-11-25).
  send_result(self, id,
              mcp::tool_result(fmt::format("Invalid arguments for {}: {}", tool, error), true));
}

bool reject_reused_id(session_pointer self, const json& id, std::vector<held_quota>& held) {
  auto key = id.dump();
  if (self->state.in_flight.count(key) == 0)
    return false;
  send_error(self, id, jsonrpc::invalid_request,
             fmt::format("request id {} is already in use by a running call", key));
  release_quota(self, std::move(held));
  return true;
}

void track_call(session_pointer self, in_flight_call call) {
  auto& st = self->state;
  st.in_flight.emplace(call.id.dump(), std::move(call));
  if (st.engine->metrics)
    st.engine->metrics->inflight_calls().add();
}

void count_call_ended(session_pointer self, size_t calls) {
  if (self->state.engine->metrics)
    self->state.engine->metrics->inflight_calls().sub(static_cast<int64_t>(calls));
}

void handle_tools_call(session_pointer self, const json& id, const json& params) {
  if (!params.is_object() || !params.contains("name") || !params["name"].is_string()) {
    send_error(self, id, jsonrpc::invalid_params,
               "tools/call: params.name must be the name of a tool (see tools/list)");
    return;
  }
  auto name = params["name"].get<std::string>();
  json args = json::object();
  if (auto it = params.find("arguments"); it != params.end() && !it->is_null())
    args = *it;
  json progress_token;
  if (auto meta = params.find("_meta"); meta != params.end() && meta->is_object())
    if (auto token = meta->find("progressToken");
        token != meta->end() && (token->is_string() || token->is_number_integer()))
      progress_token = *token;
  auto& st = self->state;
  if (!st.policy.policy) {
    record_decision(self, name, args, nullptr);
    dispatch_tool(self, id, name, args, progress_token, {});
    return;
  }
  ++st.pending_checks;
  check_policy(
      self, st.policy, name, args, caller_identity{st.settings.agent, st.settings.name},
      [self, id, name, args, progress_token](std::vector<held_quota> held) {
        --self->state.pending_checks;
        record_decision(self, name, args, nullptr);
        dispatch_tool(self, id, name, args, progress_token, std::move(held));
        quit_if_done(self);
      },
      [self, id, name, args](json denial) {
        --self->state.pending_checks;
        record_decision(self, name, args, &denial["structuredContent"]);
        spdlog::info("session {}: {} denied by policy: {}", self->state.settings.name, name,
                     denial["structuredContent"].value("message", ""));
        // Our tools declare an outputSchema, and clients check structuredContent against it even
        // for errors: the denial goes in its "policy" member of an otherwise empty batch result.
        auto structured = render_structured(batch_result{});
        structured["policy"] = std::move(denial["structuredContent"]);
        denial["structuredContent"] = std::move(structured);
        send_result(self, id, denial);
        quit_if_done(self);
      });
}

void handle_cancel(session_pointer self, const json& params) {
  if (!params.is_object() || !params.contains("requestId"))
    return; // a notification gets no reply, not even an error
  auto& st = self->state;
  auto it = st.in_flight.find(params["requestId"].dump());
  if (it == st.in_flight.end())
    return; // unknown or already finished: ignore, as the spec says
  spdlog::info("session {}: call {} cancelled by the client", st.settings.name, it->first);
  // No response is sent for a cancelled request: stopping the coordinator stops its tasks, and
  // their backends abort the HTTP requests (queued ones never start).
  self->send_exit(it->second.coordinator, caf::exit_reason::user_shutdown);
  self->send_exit(it->second.model_tool, caf::exit_reason::user_shutdown);
  st.in_flight.erase(it);
  count_call_ended(self);
  quit_if_done(self);
}

void handle_progress(session_pointer self, uint64_t call_no, size_t done, size_t total) {
  for (auto& [key, call] : self->state.in_flight) {
    if (call.call_no != call_no)
      continue;
    call.done = done;
    call.total = total;
    call.heartbeats = 0;
    send_progress(self, call, static_cast<double>(done),
                  fmt::format("{} of {} tasks done", done, total));
    return;
  }
}

void handle_heartbeat(session_pointer self, uint64_t generation) {
  auto& st = self->state;
  if (generation != st.heartbeat_generation)
    return;
  st.heartbeat_running = false;
  bool wanted = false;
  auto now = self->clock().now();
  for (auto& [key, call] : st.in_flight) {
    if (call.progress_token.is_null() || call.done >= call.total)
      continue;
    wanted = true;
    // Between `done` and `done + 1`, closer to the next whole number with every beat, so the
    // values keep increasing without ever claiming a task that has not finished.
    ++call.heartbeats;
    auto fraction = 1.0 - 1.0 / (call.heartbeats + 1.0);
    auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(now - call.started);
    send_progress(self, call, static_cast<double>(call.done) + fraction,
                  fmt::format("{} of {} tasks done; still generating ({} s)", call.done, call.total,
                              elapsed.count()));
  }
  if (wanted)
    start_heartbeat(self);
}

void cancel_all_calls(session_pointer self) {
  for (auto& [key, call] : self->state.in_flight) {
    self->send(call.coordinator, cancel_atom_v);
    self->send(call.model_tool, cancel_atom_v);
  }
}

std::optional<json> forget_coordinator(session_pointer self, const caf::actor_addr& source) {
  auto& calls = self->state.in_flight;
  auto it = std::find_if(calls.begin(), calls.end(), [&](const auto& entry) {
    return entry.second.coordinator.address() == source;
  });
  if (it == calls.end())
    return std::nullopt; // it answered (or was cancelled) before it stopped
  auto id = it->second.id;
  calls.erase(it);
  count_call_ended(self);
  return id;
}

} // namespace offload
