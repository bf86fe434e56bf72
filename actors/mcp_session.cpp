// An MCP session actor serves one connected agent: it parses JSON-RPC texts from its transport,
// runs the MCP lifecycle (initialize, ping, tools), starts one batch coordinator per tool call and
// writes every response to its output sink. It keeps a table of in-flight calls so that a
// cancellation can stop one, and so that closing waits for them.

#include "actors/policy_check.hpp"
#include "actors/spawn.hpp"
#include "protocol/jsonrpc.hpp"
#include "protocol/mcp.hpp"

#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unordered_map>

namespace offload {

namespace {

using json = nlohmann::json;

struct in_flight_call {
  uint64_t call_no = 0; // distinguishes a reused JSON-RPC id from the call it replaced
  json id;
  batch_coordinator_actor coordinator;
};

struct mcp_session_state {
  session_settings settings;
  output_sink out;
  router_actor router;
  engine_settings_ptr engine;
  // Set once initialize was answered; holds the negotiated protocol revision.
  std::string protocol_version;
  // Calls still running, keyed by the JSON-RPC id's compact text.
  std::unordered_map<std::string, in_flight_call> in_flight;
  uint64_t calls = 0;
  bool closing = false;
  policy_context policy;
  // Calls whose policy check (counter reads, reservations) has not answered yet.
  size_t pending_checks = 0;

  static constexpr const char* name = "mcp_session";
};

using session_pointer = mcp_session_actor::stateful_pointer<mcp_session_state>;

void send_result(session_pointer self, const json& id, const json& result) {
  self->state.out(jsonrpc::make_result(id, result), id.dump());
}

void send_error(session_pointer self, const json& id, int code, std::string_view message) {
  spdlog::debug("session {}: error {} for id {}: {}", self->state.settings.name, code, id.dump(),
                message);
  self->state.out(jsonrpc::make_error(id, code, message), id.is_null() ? "" : id.dump());
}

void quit_if_done(session_pointer self) {
  auto& st = self->state;
  if (st.closing && st.in_flight.empty() && st.pending_checks == 0)
    self->quit();
}

// Gives back a call's quota: it ended in a JSON-RPC error, which Intercept does not count.
void release_quota(session_pointer self, std::vector<held_quota> held) {
  if (!held.empty())
    self->send(self->state.policy.registry, release_atom_v, std::move(held));
}

void call_batch_tool(session_pointer self, const json& id, const std::string& tool,
                     const json& args, std::vector<held_quota> held) {
  auto& st = self->state;
  std::string error;
  auto spec = tool == "batch_offload" ? parse_batch_offload(args, st.engine->limits, error)
                                      : parse_offload_work(args, st.engine->limits, error);
  if (!spec) {
    // Bad arguments are a tool result the agent can read and correct (MCP 2025-11-25).
    send_result(self, id,
                mcp::tool_result(fmt::format("Invalid arguments for {}: {}", tool, error), true));
    return;
  }
  auto key = id.dump();
  if (st.in_flight.count(key) > 0) {
    send_error(self, id, jsonrpc::invalid_request,
               fmt::format("request id {} is already in use by a running call", key));
    release_quota(self, std::move(held));
    return;
  }
  auto call_no = ++st.calls;
  auto trace_id = fmt::format("{}/{}", st.settings.name, call_no);
  auto shared_spec = std::make_shared<const batch_spec>(std::move(*spec));
  auto coordinator =
      spawn_batch_coordinator(self->home_system(), shared_spec, st.router, st.engine, trace_id);
  st.in_flight.emplace(key, in_flight_call{call_no, id, coordinator});
  // The coordinator answers by its batch deadline; the monitor covers it dying without answering.
  // (A request timeout here would stay scheduled in CAF 0.17's clock long after the answer.)
  self->monitor(coordinator);
  spdlog::info("call {}: {} with {} task(s), {}", trace_id, tool, shared_spec->tasks.size(),
               shared_spec->sequential ? "sequential" : "parallel");
  // Only the first answer for this call counts; a cancelled call gets none.
  auto still_current = [self, key, call_no] {
    auto it = self->state.in_flight.find(key);
    if (it == self->state.in_flight.end() || it->second.call_no != call_no)
      return false;
    self->state.in_flight.erase(it);
    return true;
  };
  self->request(coordinator, caf::infinite, run_batch_atom_v)
      .then(
          [self, id, shared_spec, still_current](batch_result& result) {
            if (!still_current())
              return;
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
                   std::vector<held_quota> held) {
  if (name == "batch_offload" || name == "offload_work") {
    call_batch_tool(self, id, name, args, std::move(held));
    return;
  }
  send_error(self, id, jsonrpc::invalid_params,
             fmt::format("Unknown tool: {:?}. Available tools: batch_offload, offload_work", name));
  release_quota(self, std::move(held));
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
  auto& st = self->state;
  if (!st.policy.policy) {
    record_decision(self, name, args, nullptr);
    dispatch_tool(self, id, name, args, {});
    return;
  }
  ++st.pending_checks;
  check_policy(
      self, st.policy, name, args, caller_identity{st.settings.agent, st.settings.name},
      [self, id, name, args](std::vector<held_quota> held) {
        --self->state.pending_checks;
        record_decision(self, name, args, nullptr);
        dispatch_tool(self, id, name, args, std::move(held));
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
  self->send_exit(it->second.coordinator, caf::exit_reason::user_shutdown);
  st.in_flight.erase(it);
  quit_if_done(self);
}

void handle_request(session_pointer self, const jsonrpc::message& msg) {
  auto& st = self->state;
  const auto& id = msg.id;
  if (msg.method == "ping") {
    send_result(self, id, json::object());
    return;
  }
  if (msg.method == "initialize") {
    if (!st.protocol_version.empty()) {
      send_error(self, id, jsonrpc::invalid_request,
                 "initialize: the session is already "
                 "initialized");
      return;
    }
    std::string error;
    auto version = mcp::negotiate_version(msg.params, error);
    if (!version) {
      send_error(self, id, jsonrpc::invalid_params, error);
      return;
    }
    st.protocol_version = *version;
    spdlog::info("session {}: initialized with protocol {}", st.settings.name, *version);
    send_result(self, id, mcp::initialize_result(*version, st.settings.server_version));
    return;
  }
  if (st.protocol_version.empty()) {
    send_error(
        self, id, jsonrpc::invalid_request,
        fmt::format("{}: the session is not initialized; send initialize first", msg.method));
    return;
  }
  if (msg.method == "tools/list") {
    auto tools = mcp::tool_catalogue();
    if (st.policy.policy)
      tools = filter_hidden_tools(*st.policy.policy, tools);
    send_result(self, id, json{{"tools", std::move(tools)}});
  } else if (msg.method == "tools/call") {
    handle_tools_call(self, id, msg.params);
  } else {
    send_error(self, id, jsonrpc::method_not_found,
               fmt::format("Method not found: {:?}", msg.method));
  }
}

void handle_text(session_pointer self, const std::string& text) {
  auto parsed = jsonrpc::parse(text);
  if (auto* fail = std::get_if<jsonrpc::failure>(&parsed)) {
    send_error(self, fail->id, fail->code, fail->message);
    return;
  }
  if (std::holds_alternative<jsonrpc::batch>(parsed)) {
    send_error(self, json(), jsonrpc::invalid_request,
               "Invalid Request: JSON-RPC batches (arrays) are not supported; send one message "
               "per line");
    return;
  }
  auto& msg = std::get<jsonrpc::message>(parsed);
  switch (msg.type) {
  case jsonrpc::kind::request:
    handle_request(self, msg);
    break;
  case jsonrpc::kind::notification:
    if (msg.method == "notifications/cancelled")
      handle_cancel(self, msg.params);
    // notifications/initialized and others need no action.
    break;
  case jsonrpc::kind::response:
    // We send no requests to the client yet; a stray response is ignored.
    spdlog::debug("session {}: ignoring response to id {}", self->state.settings.name,
                  msg.id.dump());
    break;
  }
}

mcp_session_actor::behavior_type mcp_session(session_pointer self, session_settings settings,
                                             output_sink out, router_actor router,
                                             engine_settings_ptr engine, policy_context policy) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.out = std::move(out);
  st.router = std::move(router);
  st.engine = std::move(engine);
  st.policy = std::move(policy);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& calls = self->state.in_flight;
    auto it = std::find_if(calls.begin(), calls.end(), [&](const auto& entry) {
      return entry.second.coordinator.address() == msg.source;
    });
    if (it == calls.end())
      return; // it answered (or was cancelled) before it stopped
    auto id = it->second.id;
    calls.erase(it);
    spdlog::error("session {}: a batch coordinator stopped without answering: {}",
                  self->state.settings.name, caf::to_string(msg.reason));
    send_result(self, id,
                mcp::tool_result("offload could not finish the batch (internal error: the batch "
                                 "coordinator stopped). [FALLBACK_TO_CLOUD] Do these tasks "
                                 "yourself.",
                                 true));
    quit_if_done(self);
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Shutdown: stop every running batch with us.
    for (auto& [key, call] : self->state.in_flight)
      self->send_exit(call.coordinator, msg.reason);
    self->quit(msg.reason);
  });
  return {
      [self](mcp_in_atom, std::string& text) {
        try {
          handle_text(self, text);
        } catch (const std::exception& e) {
          // A bug must not take the session down; the client learns the call failed.
          spdlog::error("session {}: internal error: {}", self->state.settings.name, e.what());
          self->state.out(jsonrpc::make_error(nullptr, jsonrpc::internal_error,
                                              std::string{"Internal error: "} + e.what()),
                                              "");
        }
      },
      [self](new_policy_atom, policy_ptr& policy) {
        auto& st = self->state;
        if (policy && !st.policy.registry) {
          spdlog::warn("session {}: ignoring a policy reload: the daemon started without a "
                       "policy and has no counters; restart it with --policy",
                       st.settings.name);
          return;
        }
        st.policy.policy = std::move(policy);
      },
      [self](mcp_eof_atom) {
        self->state.closing = true;
        spdlog::info("session {}: client closed; {} call(s) still running",
                     self->state.settings.name, self->state.in_flight.size());
        quit_if_done(self);
      },
  };
}

} // namespace

mcp_session_actor spawn_mcp_session(caf::actor_system& sys, session_settings settings,
                                    output_sink out, router_actor router,
                                    engine_settings_ptr engine, policy_context policy) {
  return sys.spawn(mcp_session, std::move(settings), std::move(out), std::move(router),
                   std::move(engine), std::move(policy));
}

} // namespace offload
