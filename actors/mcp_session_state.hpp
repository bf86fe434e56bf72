#pragma once
// The state of an mcp_session actor and the functions its source files share (mcp_session.cpp:
// lifecycle and dispatch; mcp_session_tools.cpp: tools/call, progress, cancellation). Internal to
// actors/.

#include "actors/spawn.hpp"
#include "protocol/jsonrpc.hpp"

#include <caf/stateful_actor.hpp>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>

namespace offload {

using json = nlohmann::json;

// MCP log levels (RFC 5424 severities), least severe first.
enum class log_level : uint8_t { debug, info, notice, warning, error, critical, alert, emergency };

struct in_flight_call {
  uint64_t call_no = 0; // distinguishes a reused JSON-RPC id from the call it replaced
  json id;
  std::string tool;
  batch_coordinator_actor coordinator; // batch tools
  model_tool_actor model_tool;         // model tools

  // Progress: the client's token (null: it asked for none), tasks done and in total, the last
  // value sent (values must strictly increase) and heartbeats sent since the last task finished.
  json progress_token;
  size_t done = 0;
  size_t total = 0;
  double last_progress = -1;
  uint32_t heartbeats = 0;
  caf::actor_clock::time_point started;
};

// A request we sent to the client (sampling, elicitation), waiting for its response.
using client_reply_fn = std::function<void(const jsonrpc::message& response)>;

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
  // Shutting down: waiting for running calls until the grace period ends (then they are
  // cancelled).
  bool draining = false;
  policy_context policy;
  // Where finished tasks are recorded, and what cost_dashboard and get_metrics read.
  usage_context usage;
  // Calls whose policy check (counter reads, reservations) or ledger query has not answered yet.
  size_t pending_checks = 0;
  // Least severe level sent as notifications/message (logging/setLevel); none until set.
  std::optional<log_level> client_log_level;
  // Requests we sent to the client, by id, with what to do with the response.
  std::map<std::string, client_reply_fn> client_requests;
  uint64_t next_client_request = 1;
  // The heartbeat loop runs while a call wants progress; stale ticks carry an old generation.
  bool heartbeat_running = false;
  uint64_t heartbeat_generation = 0;
  // Resource URIs the client subscribed to (conformance profile only).
  std::set<std::string> subscriptions;

  static constexpr const char* name = "mcp_session";
};

using session_pointer = mcp_session_actor::stateful_pointer<mcp_session_state>;

// -- output (mcp_session.cpp) --------------------------------------------------------------------

void send_result(session_pointer self, const json& id, const json& result);
void send_error(session_pointer self, const json& id, int code, std::string_view message);
// A notification; `related` is the id text of the request it belongs to, or empty.
void send_notification(session_pointer self, std::string_view method, const json& params,
                       const std::string& related);
// notifications/message at `level`, if the client asked for that level or a lower one.
void send_log(session_pointer self, log_level level, const json& data, const std::string& related);
// Sends a request to the client; `on_reply` runs when its response arrives.
void request_client(session_pointer self, std::string_view method, const json& params,
                    const std::string& related, client_reply_fn on_reply);
void quit_if_done(session_pointer self);

// -- tools (mcp_session_tools.cpp) ---------------------------------------------------------------

void handle_tools_call(session_pointer self, const json& id, const json& params);
// Gives back a call's quota: it ended in a JSON-RPC error, which Intercept does not count.
void release_quota(session_pointer self, std::vector<held_quota> held);
// Answers a call whose arguments are wrong with an isError tool result naming the problem.
void send_invalid_arguments(session_pointer self, const json& id, const std::string& tool,
                            const std::string& error);
// Refuses a call whose JSON-RPC id belongs to a running call (and gives its quota back); true
// when it did.
bool reject_reused_id(session_pointer self, const json& id, std::vector<held_quota>& held);
// Adds a call to the in-flight table (and the in-flight metric).
void track_call(session_pointer self, in_flight_call call);
// Counts `calls` calls as no longer in flight (metrics).
void count_call_ended(session_pointer self, size_t calls = 1);
void handle_cancel(session_pointer self, const json& params);
// Progress from call `call_no`'s coordinator.
void handle_progress(session_pointer self, uint64_t call_no, size_t done, size_t total);
void handle_heartbeat(session_pointer self, uint64_t generation);
// The daemon is stopping: every running call is cancelled and answers with what it has.
void cancel_all_calls(session_pointer self);
// Removes the in-flight entry of a coordinator that stopped; returns the call's id, if found.
std::optional<json> forget_coordinator(session_pointer self, const caf::actor_addr& source);

// -- usage tools (mcp_session_usage.cpp) ---------------------------------------------------------

// Whether `tool` reads the usage ledger (cost_dashboard, get_metrics).
bool is_usage_tool(const std::string& tool);
// Answers a call of cost_dashboard or get_metrics from the ledger.
void call_usage_tool(session_pointer self, const json& id, const std::string& tool,
                     const json& args);
// -- model tools (mcp_session_models.cpp) --------------------------------------------------------

// Runs an allowed list_loaded_models, preload_model or pull_model call. `held` is its quota.
void call_model_tool(session_pointer self, const json& id, const std::string& tool,
                     const json& args, const json& progress_token, std::vector<held_quota> held);
// Progress of a model tool call, relayed when the call asked for progress.
void handle_tool_progress(session_pointer self, uint64_t call_no, double progress, double total,
                          const std::string& message);
// -- conformance profile (conformance_profile.cpp) -----------------------------------------------

bool conformance_profile_on(session_pointer self);
// resources/*, prompts/* and completion/complete under the profile; false when not one of them
// or the profile is off.
bool handle_conformance_request(session_pointer self, const jsonrpc::message& msg);
// A call of one of the suite's test tools; false when `name` is no test tool or the profile is
// off.
bool call_conformance_tool(session_pointer self, const json& id, const std::string& name,
                           const json& args, const json& progress_token);

} // namespace offload
