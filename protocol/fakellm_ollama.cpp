#include "protocol/fakellm_ollama.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace offload::fakellm {

// Ordered, so that fields come in the order the real server writes them.
using json = nlohmann::ordered_json;

namespace {

std::string dump(const json& doc) {
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

void append_head(std::string& out, std::string_view model, std::string_view created_at) {
  out.append("{\"model\":");
  append_json_string(out, model);
  out.append(",\"created_at\":");
  append_json_string(out, created_at);
  out.push_back(',');
}

void append_text(std::string& out, std::string_view text, ollama_shape shape) {
  if (shape == ollama_shape::chat) {
    out.append("\"message\":{\"role\":\"assistant\",\"content\":");
    append_json_string(out, text);
    out.append("},");
  } else {
    out.append("\"response\":");
    append_json_string(out, text);
    out.push_back(',');
  }
}

void append_done_fields(std::string& out, const usage& counts) {
  fmt::format_to(std::back_inserter(out),
                 "\"done\":true,\"done_reason\":\"stop\",\"total_duration\":{},"
                 "\"load_duration\":{},\"prompt_eval_count\":{},\"prompt_eval_duration\":{},"
                 "\"eval_count\":{},\"eval_duration\":{}}}",
                 counts.total.count(), counts.load.count(), counts.prompt_tokens,
                 counts.prompt_eval.count(), counts.reply_tokens, counts.eval.count());
}

json model_entry(const model_info& info) {
  return {{"name", info.name},
          {"model", info.name},
          {"modified_at", "2024-01-01T00:00:00Z"},
          {"size", info.size},
          {"digest", info.digest},
          {"details",
           {{"parent_model", ""},
            {"format", "gguf"},
            {"family", info.family},
            {"families", json::array({info.family})},
            {"parameter_size", info.parameter_size},
            {"quantization_level", "Q4_K_M"}}}};
}

// The layers of a model's manifest: the weights and a few small files, as Ollama pulls them.
struct layer {
  std::string digest;
  uint64_t size;
};

std::vector<layer> layers_of(std::string_view model) {
  auto info = describe_model(model);
  return {{fake_digest(fmt::format("{}#weights", model)), info.size},
          {fake_digest(fmt::format("{}#template", model)), 1'482},
          {fake_digest(fmt::format("{}#license", model)), 11'343},
          {fake_digest(fmt::format("{}#params", model)), 148}};
}

} // namespace

void append_content_line(std::string& out, std::string_view model, std::string_view created_at,
                         std::string_view piece, ollama_shape shape) {
  append_head(out, model, created_at);
  append_text(out, piece, shape);
  out.append("\"done\":false}\n");
}

void append_final_line(std::string& out, std::string_view model, std::string_view created_at,
                       const usage& counts, ollama_shape shape) {
  append_head(out, model, created_at);
  append_text(out, "", shape);
  append_done_fields(out, counts);
  out.push_back('\n');
}

std::string make_complete_body(std::string_view model, std::string_view created_at,
                               std::string_view reply, const usage& counts, ollama_shape shape) {
  std::string out;
  out.reserve(reply.size() + 320);
  append_head(out, model, created_at);
  append_text(out, reply, shape);
  append_done_fields(out, counts);
  return out;
}

std::string make_load_body(std::string_view model, std::string_view created_at, bool unload,
                           ollama_shape shape) {
  std::string out;
  append_head(out, model, created_at);
  append_text(out, "", shape);
  out.append(unload ? "\"done_reason\":\"unload\",\"done\":true}"
                    : "\"done_reason\":\"load\",\"done\":true}");
  return out;
}

std::string make_error_body(std::string_view message) {
  return dump(json{{"error", message}});
}

void append_error_line(std::string& out, std::string_view message) {
  out.append(make_error_body(message));
  out.push_back('\n');
}

std::string model_not_found_message(std::string_view model) {
  return fmt::format("model \"{}\" not found, try pulling it first", model);
}

std::string injected_fault_message(std::string_view fault_name) {
  return fmt::format("injected fault: {}", fault_name);
}

std::string make_tags_body(const std::vector<std::string>& models) {
  json list = json::array();
  for (const auto& name : models)
    list.push_back(model_entry(describe_model(name)));
  return dump(json{{"models", std::move(list)}});
}

std::string make_ps_body(const std::vector<running_model>& models) {
  json list = json::array();
  for (const auto& running : models) {
    auto info = describe_model(running.name);
    auto entry = model_entry(info);
    entry.erase("modified_at");
    entry["expires_at"] = format_created_at(running.expires_at);
    // The whole model on the GPU: the fake has no CPU spill-over to report.
    entry["size_vram"] = info.size;
    entry["context_length"] = fake_context_size;
    list.push_back(std::move(entry));
  }
  return dump(json{{"models", std::move(list)}});
}

std::string make_version_body() {
  return R"({"version":"0.0.0-offload-fakellm"})";
}

std::vector<std::string> make_pull_lines(std::string_view model) {
  std::vector<std::string> lines;
  lines.emplace_back(pull_manifest_line);
  // Four steps per layer: enough for a client to show progress, few enough to stay small.
  constexpr uint64_t steps = 4;
  for (const auto& l : layers_of(model)) {
    for (uint64_t step = 1; step <= steps; ++step) {
      json line = {{"status", fmt::format("pulling {}", l.digest.substr(0, 12))},
                   {"digest", "sha256:" + l.digest},
                   {"total", l.size},
                   {"completed", l.size * step / steps}};
      lines.push_back(dump(line) + "\n");
    }
  }
  lines.emplace_back("{\"status\":\"verifying sha256 digest\"}\n");
  lines.emplace_back("{\"status\":\"writing manifest\"}\n");
  lines.emplace_back("{\"status\":\"success\"}\n");
  return lines;
}

} // namespace offload::fakellm
