// An MCP session actor serves one connected agent: it parses JSON-RPC texts from its transport,
// runs the MCP lifecycle (initialize, ping, logging, tools) and writes every message to its output
// sink, tagged with the request it belongs to. Tool calls live in mcp_session_tools.cpp. It keeps
// a table of in-flight calls so that a cancellation can stop one, and so that closing waits for
// them; and a table of the requests it sent to the client, so responses find their callers.

#include "actors/mcp_session_state.hpp"
#include "actors/policy_check.hpp"
#include "protocol/conformance_fixtures.hpp"
#include "protocol/mcp.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>

namespace offload {

namespace {

constexpr std::array<std::string_view, 8> log_level_names = {
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"};

std::optional<log_level> parse_log_level(std::string_view name) {
  for (size_t i = 0; i < log_level_names.size(); ++i)
    if (log_level_names[i] == name)
      return static_cast<log_level>(i);
  return std::nullopt;
}

void handle_set_level(session_pointer self, const json& id, const json& params) {
  std::optional<log_level> level;
  if (params.is_object())
    if (auto it = params.find("level"); it != params.end() && it->is_string())
      level = parse_log_level(it->get<std::string>());
  if (!level) {
    send_error(self, id, jsonrpc::invalid_params,
               "logging/setLevel: params.level must be one of debug, info, notice, warning, "
               "error, critical, alert, emergency");
    return;
  }
  self->state.client_log_level = level;
  send_result(self, id, json::object());
}

// tools/list with cursor pagination: the cursor is the index of the next tool, as a string.
void handle_tools_list(session_pointer self, const json& id, const json& params) {
  auto& st = self->state;
  auto tools = mcp::tool_catalogue();
  if (st.policy.policy)
    tools = filter_hidden_tools(*st.policy.policy, tools);
  if (conformance_profile_on(self))
    for (auto& fixture : conformance::tools())
      tools.push_back(std::move(fixture));
  size_t start = 0;
  if (params.is_object())
    if (auto cursor = params.find("cursor"); cursor != params.end() && !cursor->is_null()) {
      auto text = cursor->is_string() ? cursor->get<std::string>() : std::string{};
      char* end = nullptr;
      auto value = text.empty() ? 0 : std::strtoull(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || value > tools.size()) {
        send_error(self, id, jsonrpc::invalid_params,
                   "tools/list: invalid cursor; pass the nextCursor of the previous page, or no "
                   "cursor for the first page");
        return;
      }
      start = value;
    }
  auto page = std::max<size_t>(st.engine->tools_page_size, 1);
  auto stop = std::min(tools.size(), start + page);
  json result = {{"tools", json(tools.begin() + static_cast<std::ptrdiff_t>(start),
                                tools.begin() + static_cast<std::ptrdiff_t>(stop))}};
  if (stop < tools.size())
    result["nextCursor"] = std::to_string(stop);
  send_result(self, id, result);
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
    auto result = mcp::initialize_result(*version, st.settings.server_version);
    if (conformance_profile_on(self))
      conformance::add_capabilities(result);
    send_result(self, id, result);
    return;
  }
  if (st.protocol_version.empty()) {
    send_error(
        self, id, jsonrpc::invalid_request,
        fmt::format("{}: the session is not initialized; send initialize first", msg.method));
    return;
  }
  if (st.closing) {
    send_error(
        self, id, jsonrpc::invalid_request,
        fmt::format("{}: the server is shutting down and takes no new requests", msg.method));
    return;
  }
  if (msg.method == "tools/list")
    handle_tools_list(self, id, msg.params);
  else if (msg.method == "tools/call")
    handle_tools_call(self, id, msg.params);
  else if (msg.method == "logging/setLevel")
    handle_set_level(self, id, msg.params);
  else if (handle_conformance_request(self, msg))
    return;
  else
    send_error(self, id, jsonrpc::method_not_found,
               fmt::format("Method not found: {:?}", msg.method));
}

void handle_response(session_pointer self, const jsonrpc::message& msg) {
  auto& pending = self->state.client_requests;
  auto it = msg.id.is_null() ? pending.end() : pending.find(msg.id.dump());
  if (it == pending.end()) {
    spdlog::debug("session {}: ignoring a response to unknown id {}", self->state.settings.name,
                  msg.id.dump());
    return;
  }
  auto on_reply = std::move(it->second);
  pending.erase(it);
  on_reply(msg);
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
    handle_response(self, msg);
    break;
  }
}

mcp_session_actor::behavior_type mcp_session(session_pointer self, session_settings settings,
                                             output_sink out, router_actor router,
                                             engine_settings_ptr engine, policy_context policy,
                                             usage_context usage) {
  auto& st = self->state;
  st.usage = std::move(usage);
  st.settings = std::move(settings);
  st.out = std::move(out);
  st.router = std::move(router);
  st.engine = std::move(engine);
  st.policy = std::move(policy);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto id = forget_coordinator(self, msg.source);
    if (!id)
      return;
    spdlog::error("session {}: a batch coordinator stopped without answering: {}",
                  self->state.settings.name, caf::to_string(msg.reason));
    send_result(self, *id,
                mcp::tool_result("offload could not finish the batch (internal error: the batch "
                                 "coordinator stopped). [FALLBACK_TO_CLOUD] Do these tasks "
                                 "yourself.",
                                 true));
    quit_if_done(self);
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Killed (session deleted, fatal shutdown): stop every running batch with us, unanswered.
    for (auto& [key, call] : self->state.in_flight)
      self->send_exit(call.coordinator, msg.reason);
    count_call_ended(self, self->state.in_flight.size());
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
      [self](new_engine_atom, engine_settings_ptr& engine) {
        // Calls from now on use it; running calls keep the snapshot they started with.
        if (engine)
          self->state.engine = std::move(engine);
      },
      [self](progress_atom, uint64_t call_no, size_t done, size_t total) {
        handle_progress(self, call_no, done, total);
      },
      [self](heartbeat_atom, uint64_t generation) { handle_heartbeat(self, generation); },
      [self](tool_progress_atom, uint64_t call_no, double progress, double total,
             const std::string& message) {
        handle_tool_progress(self, call_no, progress, total, message);
      },
      [self](shutdown_atom) {
        // First time: drain (no new requests; running calls may finish within the grace
        // period). Second time, or when the grace period is over: cancel what is left; those
        // calls still answer, their unfinished tasks `cancelled`.
        auto& st = self->state;
        st.closing = true;
        if (!st.draining) {
          st.draining = true;
          if (!st.in_flight.empty()) {
            spdlog::info("session {}: draining; {} call(s) may finish within {} ms",
                         st.settings.name, st.in_flight.size(), st.engine->shutdown_grace.count());
            self->delayed_send(self, st.engine->shutdown_grace, shutdown_atom_v);
          }
        } else if (!st.in_flight.empty()) {
          spdlog::info("session {}: cancelling {} running call(s)", st.settings.name,
                       st.in_flight.size());
          cancel_all_calls(self);
        }
        quit_if_done(self);
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

void send_result(session_pointer self, const json& id, const json& result) {
  self->state.out(jsonrpc::make_result(id, result), id.dump());
}

void send_error(session_pointer self, const json& id, int code, std::string_view message) {
  spdlog::debug("session {}: error {} for id {}: {}", self->state.settings.name, code, id.dump(),
                message);
  self->state.out(jsonrpc::make_error(id, code, message), id.is_null() ? "" : id.dump());
}

void send_notification(session_pointer self, std::string_view method, const json& params,
                       const std::string& related) {
  self->state.out(jsonrpc::make_notification(method, params), related);
}

void send_log(session_pointer self, log_level level, const json& data, const std::string& related) {
  auto& wanted = self->state.client_log_level;
  if (!wanted || level < *wanted)
    return;
  send_notification(self, "notifications/message",
                    {{"level", log_level_names[static_cast<size_t>(level)]},
                     {"logger", "offload"},
                     {"data", data}},
                    related);
}

void request_client(session_pointer self, std::string_view method, const json& params,
                    const std::string& related, client_reply_fn on_reply) {
  auto& st = self->state;
  // Our ids are strings, so they can never collide with a numeric id of the client's.
  json id = fmt::format("offload-{}", st.next_client_request++);
  st.client_requests.emplace(id.dump(), std::move(on_reply));
  st.out(jsonrpc::make_request(id, method, params), related);
}

void quit_if_done(session_pointer self) {
  auto& st = self->state;
  if (st.closing && st.in_flight.empty() && st.pending_checks == 0)
    self->quit();
}

mcp_session_actor spawn_mcp_session(caf::actor_system& sys, session_settings settings,
                                    output_sink out, router_actor router,
                                    engine_settings_ptr engine, policy_context policy,
                                    usage_context usage) {
  return sys.spawn(mcp_session, std::move(settings), std::move(out), std::move(router),
                   std::move(engine), std::move(policy), std::move(usage));
}

} // namespace offload
