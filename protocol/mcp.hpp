#pragma once
// MCP messages that do not depend on runtime state: version negotiation, the initialize result,
// the tool catalogue and tool results. Pure functions.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace offload::mcp {

using json = nlohmann::json;

inline constexpr std::string_view latest_version = "2025-11-25";

// Whether we speak this protocol revision.
bool is_supported_version(std::string_view version);

// The revision to answer an initialize request with: the client's when we support it, else our
// latest (the client then decides whether to disconnect). nullopt when params are malformed, with
// `error` naming the field.
std::optional<std::string> negotiate_version(const json& params, std::string& error);

json initialize_result(std::string_view version, std::string_view server_version);

// The `tools` array of tools/list.
json tool_catalogue();

// A tool result with one text block; `structured` becomes `structuredContent` when not null.
json tool_result(std::string text, bool is_error, json structured = json());

} // namespace offload::mcp
