#pragma once
// The fixtures of the `conformance` profile: the test tools, resources, prompts and completions
// that the official MCP conformance suite (@modelcontextprotocol/conformance) calls by name. They
// exist only so the suite can exercise the real transport and dispatcher; production sessions
// never see them. Pure functions.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace offload::conformance {

using json = nlohmann::json;

// The value of the `profile` setting that turns the fixtures on.
inline constexpr std::string_view profile_name = "conformance";

// Adds the resources, prompts and completions capabilities to an initialize result.
void add_capabilities(json& initialize_result);

// The test tools, for tools/list (after the production tools).
json tools();
bool is_tool(std::string_view name);

// The result of a test tool that needs nothing from the client (no sampling, elicitation,
// logging or progress); nullopt for the other tools.
std::optional<json> static_tool_result(std::string_view name);

// Server-to-client request params of the interactive test tools.
json sampling_request(const json& args);
json elicitation_request(const json& args);
json elicitation_defaults_request();
json elicitation_enums_request();

// resources/list, resources/templates/list and resources/read (nullopt: no such resource).
json resource_list();
json resource_template_list();
std::optional<json> read_resource(std::string_view uri);
// Whether resources/subscribe may name this URI.
bool is_resource(std::string_view uri);

// prompts/list and prompts/get (nullopt with `error` set: unknown prompt or missing argument).
json prompt_list();
std::optional<json> get_prompt(std::string_view name, const json& args, std::string& error);

// completion/complete: suggestions for a prompt argument (possibly none).
json complete(const json& params);

} // namespace offload::conformance
