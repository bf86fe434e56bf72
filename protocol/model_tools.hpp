#pragma once
// The model-management tools of the original server — list_loaded_models, preload_model and
// pull_model — as MCP sees them: their definitions for tools/list, argument validation, and the
// rendering of their results (a Markdown text block plus structuredContent). Pure functions.

#include "protocol/errors.hpp"
#include "protocol/ollama.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload {

// A validated model-tool call.
struct model_tool_args {
  std::string tool;       // list_loaded_models, preload_model or pull_model
  std::string model;      // preload_model, pull_model
  std::string keep_alive; // preload_model; empty: the configured or default value
  std::string backend;    // optional: only this backend (by name)
};

namespace model_tools {

using json = nlohmann::json;

bool is_model_tool(std::string_view name);

// Whether `text` is a keep_alive Ollama accepts: a Go duration ("5m", "1h30m", "-1m") or a whole
// number of seconds ("300", "-1"). Checked up front, so that a typo is reported to whoever made
// it rather than as an HTTP 400 later.
bool valid_keep_alive(std::string_view text);

// Validates the arguments of `tool` (one of the three). On failure returns nullopt and sets
// `error` to a message naming the field.
std::optional<model_tool_args> parse_args(const std::string& tool, const json& args,
                                          std::string& error);

// The three tools' entries for tools/list (name, title, description, inputSchema, outputSchema).
json definitions();

// What one backend answered to list_loaded_models.
struct backend_loaded {
  std::string backend;
  std::string kind;
  bool ok = false;
  std::string error;                        // when not ok
  std::string note;                         // e.g. what an OpenAI-compatible server can tell
  std::vector<ollama::loaded_model> models; // when ok
};

// The tools/call result of list_loaded_models; an error when no backend answered.
json render_loaded(const std::vector<backend_loaded>& backends);

// What one backend answered to preload_model (or a note on why it was not asked).
struct backend_preloaded {
  std::string backend;
  bool ok = false;
  std::string error; // when not ok
  std::string note;
};

// The tools/call result of preload_model; an error when no backend loaded the model.
json render_preload(const std::string& model, const std::string& keep_alive,
                    const std::vector<backend_preloaded>& backends);

// How a pull ended.
struct pull_outcome {
  std::string model;
  std::string backend;
  bool ok = false;
  task_error error;   // when not ok
  std::string status; // the last status Ollama reported ("success")
  int64_t completed_bytes = 0;
  int64_t total_bytes = 0;
  int64_t duration_ms = 0;
};

json render_pull(const pull_outcome& outcome);

// A failed call that reached no backend (e.g. an unknown model): isError, with the code.
json render_failure(const std::string& tool, const task_error& error);

// Human-readable byte counts: "812 MB", "4.7 GB".
std::string format_bytes(int64_t bytes);

} // namespace model_tools

} // namespace offload
