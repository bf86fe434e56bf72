// The `conformance` profile of an MCP session: the official conformance suite's test tools,
// resources, prompts and completions (protocol/conformance_fixtures), served through the same
// session actor, output sink and transport as the production tools. Off unless the operator
// starts the daemon with `--profile conformance`.

#include "actors/mcp_session_state.hpp"
#include "protocol/conformance_fixtures.hpp"
#include "protocol/mcp.hpp"

#include <fmt/format.h>

namespace offload {

namespace {

std::string uri_param(const json& params) {
  if (params.is_object())
    if (auto it = params.find("uri"); it != params.end() && it->is_string())
      return it->get<std::string>();
  return {};
}

void read_resource(session_pointer self, const json& id, const json& params) {
  auto uri = uri_param(params);
  if (auto contents = conformance::read_resource(uri)) {
    send_result(self, id, *contents);
    return;
  }
  // -32002: the code the MCP specification gives for an unknown resource.
  send_error(self, id, -32002, fmt::format("Resource not found: {:?}", uri));
}

void change_subscription(session_pointer self, const json& id, const json& params, bool subscribe) {
  auto uri = uri_param(params);
  if (!conformance::is_resource(uri)) {
    send_error(self, id, jsonrpc::invalid_params, fmt::format("Resource not found: {:?}", uri));
    return;
  }
  auto& subscribed = self->state.subscriptions;
  if (subscribe)
    subscribed.insert(uri);
  else
    subscribed.erase(uri);
  send_result(self, id, json::object());
}

void get_prompt(session_pointer self, const json& id, const json& params) {
  std::string name;
  json args = json::object();
  if (params.is_object()) {
    name = params.value("name", "");
    if (auto it = params.find("arguments"); it != params.end() && it->is_object())
      args = *it;
  }
  std::string error;
  if (auto prompt = conformance::get_prompt(name, args, error))
    send_result(self, id, *prompt);
  else
    send_error(self, id, jsonrpc::invalid_params, error);
}

// Sends `method` to the client and answers the tool call with what `render` makes of the
// client's result, or with a tool error when the client failed.
void ask_client(session_pointer self, const json& id, std::string_view method, json params,
                std::function<std::string(const json& result)> render) {
  request_client(self, method, params, id.dump(),
                 [self, id, method = std::string{method},
                  render = std::move(render)](const jsonrpc::message& response) {
                   if (response.is_error) {
                     send_result(self, id,
                                 mcp::tool_result(fmt::format("{} failed: {}", method,
                                                              response.result.value("message", "")),
                                                  true));
                     return;
                   }
                   send_result(self, id, mcp::tool_result(render(response.result), false));
                 });
}

std::string elicitation_summary(const json& result) {
  return fmt::format("Elicitation completed: action={}, content={}", result.value("action", ""),
                     result.contains("content") ? result["content"].dump() : "{}");
}

} // namespace

bool conformance_profile_on(session_pointer self) {
  return self->state.engine->profile == conformance::profile_name;
}

bool handle_conformance_request(session_pointer self, const jsonrpc::message& msg) {
  if (!conformance_profile_on(self))
    return false;
  const auto& id = msg.id;
  const auto& method = msg.method;
  if (method == "resources/list")
    send_result(self, id, conformance::resource_list());
  else if (method == "resources/templates/list")
    send_result(self, id, conformance::resource_template_list());
  else if (method == "resources/read")
    read_resource(self, id, msg.params);
  else if (method == "resources/subscribe" || method == "resources/unsubscribe")
    change_subscription(self, id, msg.params, method == "resources/subscribe");
  else if (method == "prompts/list")
    send_result(self, id, conformance::prompt_list());
  else if (method == "prompts/get")
    get_prompt(self, id, msg.params);
  else if (method == "completion/complete")
    send_result(self, id, conformance::complete(msg.params));
  else
    return false;
  return true;
}

bool call_conformance_tool(session_pointer self, const json& id, const std::string& name,
                           const json& args, const json& progress_token) {
  if (!conformance_profile_on(self) || !conformance::is_tool(name))
    return false;
  auto related = id.dump();
  if (name == "test_tool_with_logging") {
    for (auto text : {"Tool execution started", "Tool processing data", "Tool execution completed"})
      send_log(self, log_level::info, text, related);
    send_result(self, id, mcp::tool_result("Logging test completed", false));
  } else if (name == "test_tool_with_progress") {
    if (!progress_token.is_null())
      for (int step = 0; step <= 100; step += 50)
        send_notification(self, "notifications/progress",
                          {{"progressToken", progress_token},
                           {"progress", step},
                           {"total", 100},
                           {"message", fmt::format("{}% done", step)}},
                          related);
    send_result(self, id, mcp::tool_result("Progress test completed", false));
  } else if (name == "test_sampling") {
    ask_client(self, id, "sampling/createMessage", conformance::sampling_request(args),
               [](const json& result) {
                 std::string text;
                 if (auto c = result.find("content"); c != result.end() && c->is_object())
                   text = c->value("text", "");
                 return "LLM response: " + text;
               });
  } else if (name == "test_elicitation") {
    ask_client(self, id, "elicitation/create", conformance::elicitation_request(args),
               [](const json& result) {
                 return fmt::format("User response: action={}, content={}",
                                    result.value("action", ""),
                                    result.contains("content") ? result["content"].dump() : "{}");
               });
  } else if (name == "test_elicitation_sep1034_defaults") {
    ask_client(self, id, "elicitation/create", conformance::elicitation_defaults_request(),
               elicitation_summary);
  } else if (name == "test_elicitation_sep1330_enums") {
    ask_client(self, id, "elicitation/create", conformance::elicitation_enums_request(),
               elicitation_summary);
  } else if (auto result = conformance::static_tool_result(name)) {
    send_result(self, id, *result);
  }
  return true;
}

} // namespace offload
