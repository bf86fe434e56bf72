#include "protocol/mcp.hpp"

#include "protocol/batch.hpp"
#include "protocol/ledger.hpp"
#include "protocol/model_tools.hpp"

#include <array>

namespace offload::mcp {

namespace {

constexpr std::array<std::string_view, 3> supported_versions = {"2025-11-25", "2025-06-18",
                                                                "2025-03-26"};

} // namespace

bool is_supported_version(std::string_view version) {
  for (auto v : supported_versions)
    if (v == version)
      return true;
  return false;
}

std::optional<std::string> negotiate_version(const json& params, std::string& error) {
  if (!params.is_object()) {
    error = "initialize: params must be an object with \"protocolVersion\", \"capabilities\" "
            "and \"clientInfo\"";
    return std::nullopt;
  }
  auto version = params.find("protocolVersion");
  if (version == params.end() || !version->is_string()) {
    error = "initialize: params.protocolVersion must be a string such as \"2025-11-25\"";
    return std::nullopt;
  }
  auto requested = version->get<std::string>();
  if (is_supported_version(requested))
    return requested;
  return std::string{latest_version};
}

json initialize_result(std::string_view version, std::string_view server_version) {
  return {
      {"protocolVersion", version},
      {"capabilities", {{"tools", {{"listChanged", false}}}, {"logging", json::object()}}},
      {"serverInfo",
       {{"name", "offload"},
        {"title", "offload: local LLM work offloading"},
        {"version", server_version}}},
      {"instructions",
       "Hand routine coding tasks to local LLMs. Use batch_offload for several independent tasks "
       "(they run in parallel) or a chain (sequential: true). Every task returns its own result "
       "or its own error; redo failed tasks yourself."},
  };
}

json tool_catalogue() {
  auto task_props = task_properties_schema();
  json task_item = {{"type", "object"}, {"properties", task_props}, {"required", {"task"}}};
  json batch_props = {
      {"tasks",
       {{"type", "array"},
        {"minItems", 1},
        {"items", task_item},
        {"description", "The tasks to run; each returns its own result or error."}}},
      {"sequential",
       {{"type", "boolean"},
        {"default", false},
        {"description", "Run the tasks one after another, each seeing the previous result."}}},
      {"stop_on_error",
       {{"type", "boolean"},
        {"default", false},
        {"description", "Sequential only: stop the chain at the first failed task and mark the "
                        "rest skipped."}}},
  };
  batch_props.update(deadline_properties_schema());
  auto work_props = task_props;
  work_props.update(deadline_properties_schema());
  auto output = batch_output_schema();
  auto tools = json::array({
      {
          {"name", "batch_offload"},
          {"title", "Offload a batch of coding tasks"},
          {"description",
           "Run several routine coding tasks on local LLMs, in parallel (default) or as a chain "
           "(sequential). One task's failure never fails the others."},
          {"inputSchema",
           {{"type", "object"}, {"properties", batch_props}, {"required", {"tasks"}}}},
          {"outputSchema", output},
      },
      {
          {"name", "offload_work"},
          {"title", "Offload one coding task"},
          {"description", "Run one routine coding task (boilerplate, docs, tests, simple "
                          "refactors) on a local LLM."},
          {"inputSchema", {{"type", "object"}, {"properties", work_props}, {"required", {"task"}}}},
          {"outputSchema", output},
      },
      {
          {"name", "compress_context"},
          {"title", "Summarise large content"},
          {"description",
           "Summarise a large text or source file on a local LLM down to a target length, so it "
           "costs fewer tokens to keep in context. Content longer than the model's context window "
           "is cut, and the result says so."},
          {"inputSchema", compress_context_input_schema()},
          {"outputSchema", output},
      },
      // The read tools declare no outputSchema: like the original's, their text is the answer,
      // and structuredContent carries the same figures as JSON.
      {
          {"name", "cost_dashboard"},
          {"title", "Usage and estimated savings"},
          {"description",
           "Show what was offloaded: tasks, outcomes, tokens and the estimated cloud cost saved "
           "(successful tasks' tokens at cloud list prices), in total and per agent, model, tool, "
           "backend and UTC day. Reading it costs nothing and runs no task."},
          {"inputSchema", cost_dashboard_input_schema()},
          {"annotations", {{"readOnlyHint", true}, {"openWorldHint", false}}},
      },
      {
          {"name", "get_metrics"},
          {"title", "Usage metrics"},
          {"description",
           "Usage metrics of every recorded task as JSON or in the Prometheus text format: tasks "
           "by tool and outcome, errors by code, tokens, estimated savings, durations."},
          {"inputSchema", get_metrics_input_schema()},
          {"annotations", {{"readOnlyHint", true}, {"openWorldHint", false}}},
      },
  });
  for (auto& tool : model_tools::definitions())
    tools.push_back(std::move(tool));
  return tools;
}

json tool_result(std::string text, bool is_error, json structured) {
  json result = {
      {"content", json::array({{{"type", "text"}, {"text", std::move(text)}}})},
      {"isError", is_error},
  };
  if (!structured.is_null())
    result["structuredContent"] = std::move(structured);
  return result;
}

} // namespace offload::mcp
