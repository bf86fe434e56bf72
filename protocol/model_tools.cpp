#include "protocol/model_tools.hpp"

#include "protocol/mcp.hpp"

#include <fmt/format.h>

#include <array>

namespace offload::model_tools {

namespace {

constexpr std::array<std::string_view, 3> names = {"list_loaded_models", "preload_model",
                                                   "pull_model"};

// Model names are short identifiers ("qwen2.5-coder:7b", "hf.co/org/repo:Q4_K_M"); anything
// longer or with control characters is a mistake, and would end up in URLs and logs.
constexpr size_t max_name_chars = 256;

bool has_control_chars(std::string_view text) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f)
      return true;
  return false;
}

std::optional<std::string> name_field(const json& args, const char* key, bool required,
                                      std::string& error) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) {
    if (required)
      error = fmt::format("{}: required field is missing; pass a model name such as "
                          "\"qwen2.5-coder:7b\"",
                          key);
    return required ? std::nullopt : std::optional<std::string>{std::string{}};
  }
  if (!it->is_string()) {
    error = fmt::format("{}: must be a string, got {}", key, it->type_name());
    return std::nullopt;
  }
  auto value = it->get<std::string>();
  if (value.empty() && required) {
    error = fmt::format("{}: must not be empty", key);
    return std::nullopt;
  }
  if (value.size() > max_name_chars) {
    error = fmt::format("{}: is {} characters long; the limit is {}", key, value.size(),
                        max_name_chars);
    return std::nullopt;
  }
  if (has_control_chars(value)) {
    error = fmt::format("{}: must not contain control characters", key);
    return std::nullopt;
  }
  return value;
}

} // namespace

bool valid_keep_alive(std::string_view text) {
  if (!text.empty() && text.front() == '-')
    text.remove_prefix(1);
  if (text.empty())
    return false;
  if (text.find_first_not_of("0123456789") == std::string_view::npos)
    return text.size() <= 12;
  while (!text.empty()) {
    auto digits = text.find_first_not_of("0123456789.");
    if (digits == 0 || digits == std::string_view::npos)
      return false;
    text.remove_prefix(digits);
    auto unit_end = text.find_first_of("0123456789.");
    auto unit = text.substr(0, unit_end);
    if (unit != "ns" && unit != "us" && unit != "ms" && unit != "s" && unit != "m" && unit != "h")
      return false;
    text.remove_prefix(unit.size());
  }
  return true;
}

namespace {

json string_schema(std::string description) {
  return {{"type", "string"}, {"description", std::move(description)}};
}

json backend_property() {
  return string_schema("Only this backend (by name, as shown by list_loaded_models). Default: "
                       "the backends that serve the model.");
}

// A denial by the policy answers every tool with the batch tools' structuredContent plus
// "policy", so the output schemas below require nothing at the top level and allow that member.
json policy_property() {
  return {{"type", "object"},
          {"properties",
           {{"rule", {{"type", "string"}}},
            {"message", {{"type", "string"}}},
            {"retry_after_seconds", {{"type", "integer"}}}}}};
}

json loaded_output_schema() {
  json model = {{"type", "object"},
                {"properties",
                 {{"name", {{"type", "string"}}},
                  {"backend", {{"type", "string"}}},
                  {"size", {{"type", "integer"}}},
                  {"size_vram", {{"type", "integer"}}},
                  {"expires_at", {{"type", "string"}}},
                  {"context_length", {{"type", "integer"}}}}},
                {"required", {"name", "backend"}}};
  json backend = {{"type", "object"},
                  {"properties",
                   {{"name", {{"type", "string"}}},
                    {"kind", {{"type", "string"}}},
                    {"ok", {{"type", "boolean"}}},
                    {"error", {{"type", "string"}}},
                    {"note", {{"type", "string"}}}}},
                  {"required", {"name", "kind", "ok"}}};
  return {{"type", "object"},
          {"properties",
           {{"models", {{"type", "array"}, {"items", model}}},
            {"backends", {{"type", "array"}, {"items", backend}}},
            {"policy", policy_property()}}}};
}

json preload_output_schema() {
  json backend = {{"type", "object"},
                  {"properties",
                   {{"name", {{"type", "string"}}},
                    {"ok", {{"type", "boolean"}}},
                    {"error", {{"type", "string"}}},
                    {"note", {{"type", "string"}}}}},
                  {"required", {"name", "ok"}}};
  return {{"type", "object"},
          {"properties",
           {{"model", {{"type", "string"}}},
            {"keep_alive", {{"type", "string"}}},
            {"backends", {{"type", "array"}, {"items", backend}}},
            {"policy", policy_property()}}}};
}

json pull_output_schema() {
  return {{"type", "object"},
          {"properties",
           {{"model", {{"type", "string"}}},
            {"backend", {{"type", "string"}}},
            {"status", {{"type", "string"}}},
            {"completed_bytes", {{"type", "integer"}}},
            {"total_bytes", {{"type", "integer"}}},
            {"duration_ms", {{"type", "integer"}}},
            {"policy", policy_property()}}}};
}

} // namespace

bool is_model_tool(std::string_view name) {
  for (auto n : names)
    if (n == name)
      return true;
  return false;
}

std::optional<model_tool_args> parse_args(const std::string& tool, const json& args,
                                          std::string& error) {
  if (!args.is_object()) {
    error = fmt::format("arguments: must be an object, got {}", args.type_name());
    return std::nullopt;
  }
  model_tool_args out;
  out.tool = tool;
  auto backend = name_field(args, "backend", false, error);
  if (!backend)
    return std::nullopt;
  out.backend = std::move(*backend);
  if (tool == "list_loaded_models")
    return out;
  auto model = name_field(args, "model", true, error);
  if (!model)
    return std::nullopt;
  out.model = std::move(*model);
  if (tool != "preload_model")
    return out;
  if (auto keep = args.find("keep_alive"); keep != args.end() && !keep->is_null()) {
    if (keep->is_number_integer()) {
      out.keep_alive = std::to_string(keep->get<int64_t>());
    } else if (keep->is_string() && valid_keep_alive(keep->get_ref<const std::string&>())) {
      out.keep_alive = keep->get<std::string>();
    } else {
      error = fmt::format("keep_alive: must be a duration such as \"5m\", \"1h\" or \"-1\" "
                          "(forever), or a number of seconds; got {}",
                          keep->dump());
      return std::nullopt;
    }
  }
  return out;
}

json definitions() {
  json loaded_props = {{"backend", backend_property()}};
  json preload_props = {
      {"model", string_schema("The model to load, e.g. \"qwen2.5-coder:7b\" (or an alias).")},
      {"keep_alive",
       string_schema("How long it stays loaded: \"5m\", \"1h\", \"-1\" for ever (default: the "
                     "configured value for the model, else \"-1\").")},
      {"backend", backend_property()},
  };
  json pull_props = {
      {"model", string_schema("The model to download, e.g. \"llama3.2:3b\".")},
      {"backend", string_schema("The Ollama backend to download to (by name). Default: the "
                                "first healthy Ollama backend.")},
  };
  return json::array({
      {
          {"name", "list_loaded_models"},
          {"title", "List the models loaded in memory"},
          {"description", "List the models each local LLM server has in memory (VRAM), with "
                          "their size and when they will be unloaded."},
          {"inputSchema", {{"type", "object"}, {"properties", loaded_props}}},
          {"outputSchema", loaded_output_schema()},
      },
      {
          {"name", "preload_model"},
          {"title", "Load a model into memory"},
          {"description", "Load a model on the Ollama servers that have it, so that the next "
                          "tasks do not wait for it to load, and keep it loaded for keep_alive."},
          {"inputSchema",
           {{"type", "object"}, {"properties", preload_props}, {"required", {"model"}}}},
          {"outputSchema", preload_output_schema()},
      },
      {
          {"name", "pull_model"},
          {"title", "Download a model"},
          {"description", "Download a model to an Ollama server from its registry. Reports "
                          "progress while it downloads when the call asks for progress."},
          {"inputSchema",
           {{"type", "object"}, {"properties", pull_props}, {"required", {"model"}}}},
          {"outputSchema", pull_output_schema()},
      },
  });
}

std::string format_bytes(int64_t bytes) {
  constexpr double gb = 1024.0 * 1024 * 1024;
  constexpr double mb = 1024.0 * 1024;
  if (bytes >= static_cast<int64_t>(gb))
    return fmt::format("{:.1f} GB", static_cast<double>(bytes) / gb);
  if (bytes >= static_cast<int64_t>(mb))
    return fmt::format("{:.0f} MB", static_cast<double>(bytes) / mb);
  return fmt::format("{} bytes", bytes);
}

json render_loaded(const std::vector<backend_loaded>& backends) {
  json models = json::array();
  json listed = json::array();
  std::string table;
  size_t answered = 0;
  std::string problems;
  for (const auto& b : backends) {
    json entry = {{"name", b.backend}, {"kind", b.kind}, {"ok", b.ok}};
    if (!b.ok) {
      entry["error"] = b.error;
      problems += fmt::format("\n- {}: {}", b.backend, b.error);
    } else {
      ++answered;
    }
    if (!b.note.empty())
      entry["note"] = b.note;
    listed.push_back(std::move(entry));
    for (const auto& m : b.models) {
      json model = {{"name", m.name}, {"backend", b.backend}};
      if (m.size > 0)
        model["size"] = m.size;
      if (m.size_vram > 0)
        model["size_vram"] = m.size_vram;
      if (!m.expires_at.empty())
        model["expires_at"] = m.expires_at;
      if (m.context_length > 0)
        model["context_length"] = m.context_length;
      models.push_back(std::move(model));
      table += fmt::format("| {} | {} | {} | {} | {} |\n", m.name, b.backend,
                           m.size_vram > 0 ? format_bytes(m.size_vram) : "-",
                           m.size > 0 ? format_bytes(m.size) : "-",
                           m.expires_at.empty() ? "-" : m.expires_at);
    }
  }
  json structured = {{"models", std::move(models)}, {"backends", std::move(listed)}};
  if (answered == 0) {
    auto text = fmt::format("No LLM server answered, so the loaded models are unknown:{}",
                            problems.empty() ? "\n- no backend is configured" : problems);
    return mcp::tool_result(std::move(text), true, std::move(structured));
  }
  std::string text = "## Loaded models\n\n";
  if (table.empty())
    text += "No models are loaded in memory.\n";
  else
    text += "| Model | Backend | VRAM | Size | Unloads at |\n|---|---|---|---|---|\n" + table;
  for (const auto& b : backends)
    if (b.ok && !b.note.empty())
      text += fmt::format("\nNote on {}: {}", b.backend, b.note);
  if (!problems.empty())
    text += "\n\nThese backends did not answer:" + problems;
  return mcp::tool_result(std::move(text), false, std::move(structured));
}

json render_preload(const std::string& model, const std::string& keep_alive,
                    const std::vector<backend_preloaded>& backends) {
  json listed = json::array();
  size_t loaded = 0;
  std::string lines;
  for (const auto& b : backends) {
    json entry = {{"name", b.backend}, {"ok", b.ok}};
    if (!b.error.empty())
      entry["error"] = b.error;
    if (!b.note.empty())
      entry["note"] = b.note;
    listed.push_back(std::move(entry));
    loaded += b.ok ? 1 : 0;
    lines += fmt::format("\n- {}: {}", b.backend,
                         b.ok ? (b.note.empty() ? "loaded" : b.note) : "failed: " + b.error);
  }
  json structured = {{"model", model}, {"keep_alive", keep_alive}, {"backends", std::move(listed)}};
  if (loaded == 0)
    return mcp::tool_result(fmt::format("Could not preload {}:{}", model, lines), true,
                            std::move(structured));
  auto kept = keep_alive == "-1" ? std::string{"until the server restarts"}
                                 : fmt::format("for {}", keep_alive);
  return mcp::tool_result(fmt::format("Preloaded {} (kept loaded {}):{}", model, kept, lines),
                          false, std::move(structured));
}

json render_pull(const pull_outcome& outcome) {
  json structured = {{"model", outcome.model},
                     {"backend", outcome.backend},
                     {"status", outcome.ok ? outcome.status : std::string{"error"}},
                     {"completed_bytes", outcome.completed_bytes},
                     {"total_bytes", outcome.total_bytes},
                     {"duration_ms", outcome.duration_ms}};
  if (!outcome.ok)
    return mcp::tool_result(fmt::format("Pulling {} on {} failed ({}): {}", outcome.model,
                                        outcome.backend, to_string(outcome.error.code),
                                        outcome.error.message),
                            true, std::move(structured));
  return mcp::tool_result(fmt::format("Pulled {} on {} ({}, {:.1f} s). It is ready; use "
                                      "preload_model to load it into memory now.",
                                      outcome.model, outcome.backend,
                                      format_bytes(outcome.total_bytes),
                                      static_cast<double>(outcome.duration_ms) / 1000.0),
                          false, std::move(structured));
}

json render_failure(const std::string& tool, const task_error& error) {
  return mcp::tool_result(
      fmt::format("{} failed ({}): {}", tool, to_string(error.code), error.message), true);
}

} // namespace offload::model_tools
