#include "protocol/ollama.hpp"

#include "protocol/llm_errors.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace offload::ollama {

namespace {

using json = nlohmann::json;

std::string dump(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Ollama reads a JSON number as seconds but a string as a Go duration, in which "-1" or "300"
// (no unit) is an error; so plain integers go out as numbers.
json keep_alive_value(const std::string& keep_alive) {
  auto digits = std::string_view{keep_alive};
  if (!digits.empty() && digits.front() == '-')
    digits.remove_prefix(1);
  if (!digits.empty() && digits.size() <= 12 &&
      digits.find_first_not_of("0123456789") == std::string_view::npos)
    return std::stoll(keep_alive);
  return keep_alive;
}

// Hands every complete line of `bytes` (with what `pending` held of it) to `on_line`, and keeps
// the incomplete tail in `pending`. Stops early when `stop()` becomes true.
template <class OnLine, class Stop>
void split_lines(std::string& pending, std::string_view bytes, OnLine on_line, Stop stop) {
  size_t start = 0;
  for (;;) {
    auto nl = bytes.find('\n', start);
    if (nl == std::string_view::npos)
      break;
    auto piece = bytes.substr(start, nl - start);
    if (pending.empty()) {
      on_line(piece);
    } else {
      pending.append(piece);
      std::string line = std::move(pending);
      pending.clear();
      on_line(line);
    }
    if (stop())
      return;
    start = nl + 1;
  }
  pending.append(bytes.substr(start));
}

// At the end of the body: a last line without its newline still counts.
template <class OnLine>
void flush_last_line(std::string& pending, OnLine on_line) {
  if (pending.empty())
    return;
  std::string line = std::move(pending);
  pending.clear();
  on_line(line);
}

std::string_view trim_line_end(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
    line.remove_suffix(1);
  return line;
}

// Parses one NDJSON line into an object; on failure returns nullopt and sets `why`.
std::optional<json> parse_object_line(std::string_view line, std::string& why) {
  json obj;
  try {
    obj = json::parse(line.begin(), line.end());
  } catch (const json::exception&) {
    why = fmt::format("the LLM server sent a line that is not JSON: {:?}",
                      std::string{line.substr(0, 80)});
    return std::nullopt;
  }
  if (!obj.is_object()) {
    why = "the LLM server sent a JSON value that is not an object";
    return std::nullopt;
  }
  return obj;
}

int64_t integer_at(const json& obj, const char* key) {
  auto v = obj.find(key);
  return v != obj.end() && v->is_number_integer() ? v->get<int64_t>() : 0;
}

std::string string_at(const json& obj, const char* key) {
  auto v = obj.find(key);
  return v != obj.end() && v->is_string() ? v->get<std::string>() : std::string{};
}

// The `models` array of /api/tags and /api/ps answers.
const json* models_array(std::string_view body, std::string_view endpoint, std::string& error,
                         json& storage) {
  try {
    storage = json::parse(body.begin(), body.end());
  } catch (const json::exception&) {
    error = fmt::format("the {} answer is not JSON", endpoint);
    return nullptr;
  }
  if (!storage.is_object()) {
    error = fmt::format("the {} answer is not a JSON object", endpoint);
    return nullptr;
  }
  auto models = storage.find("models");
  if (models == storage.end() || !(models->is_array() || models->is_null())) {
    error = fmt::format("the {} answer has no \"models\" list", endpoint);
    return nullptr;
  }
  return &*models;
}

std::string model_name(const json& entry) {
  auto name = string_at(entry, "name");
  return name.empty() ? string_at(entry, "model") : name;
}

} // namespace

std::string make_chat_body(const std::string& model, const std::vector<chat_message>& messages,
                           bool stream, const chat_options& options) {
  json msgs = json::array();
  for (const auto& m : messages)
    msgs.push_back({{"role", m.role}, {"content", m.content}});
  json body = {{"model", model}, {"messages", std::move(msgs)}, {"stream", stream}};
  if (!options.keep_alive.empty())
    body["keep_alive"] = keep_alive_value(options.keep_alive);
  if (options.num_ctx > 0)
    body["options"] = {{"num_ctx", options.num_ctx}};
  return dump(body);
}

chat_options options_for(const std::map<std::string, chat_options>& configured,
                         const std::string& model) {
  if (auto it = configured.find(model); it != configured.end())
    return it->second;
  constexpr std::string_view latest = ":latest";
  std::string other;
  if (model.size() > latest.size() &&
      model.compare(model.size() - latest.size(), latest.size(), latest) == 0)
    other = model.substr(0, model.size() - latest.size());
  else if (model.find(':') == std::string::npos)
    other = model + std::string{latest};
  if (!other.empty())
    if (auto it = configured.find(other); it != configured.end())
      return it->second;
  return {};
}

std::string make_preload_body(const std::string& model, const std::string& keep_alive,
                              int64_t num_ctx) {
  json body = {{"model", model}, {"messages", json::array()}, {"stream", false}};
  if (!keep_alive.empty())
    body["keep_alive"] = keep_alive_value(keep_alive);
  if (num_ctx > 0)
    body["options"] = {{"num_ctx", num_ctx}};
  return dump(body);
}

void chat_stream_parser::feed(std::string_view bytes) {
  if (failed() || done_)
    return;
  split_lines(
      pending_, bytes, [this](std::string_view line) { parse_line(line); },
      [this] { return failed() || done_; });
}

void chat_stream_parser::finish() {
  if (failed() || done_)
    return;
  flush_last_line(pending_, [this](std::string_view line) { parse_line(line); });
  if (!failed() && !done_)
    fail(errc::connection_dropped,
         fmt::format("the LLM server ended the response after {} chunks without the final "
                     "\"done\" message",
                     chunks_));
}

void chat_stream_parser::parse_line(std::string_view line) {
  line = trim_line_end(line);
  if (line.empty())
    return;
  std::string why;
  auto parsed = parse_object_line(line, why);
  if (!parsed) {
    fail(errc::malformed_stream, std::move(why));
    return;
  }
  const json& obj = *parsed;
  // Ollama reports failures during generation as an error line inside a 200 stream.
  if (auto err = error_in_json(obj)) {
    fail(classify_stream_error(*err));
    return;
  }
  if (auto model = obj.find("model"); model != obj.end() && model->is_string())
    model_ = model->get<std::string>();
  if (auto msg = obj.find("message"); msg != obj.end() && msg->is_object()) {
    if (auto content = msg->find("content"); content != msg->end() && content->is_string()) {
      text_ += content->get_ref<const std::string&>();
      ++chunks_;
    }
  }
  auto done = obj.find("done");
  if (done == obj.end() || !done->is_boolean()) {
    fail(errc::malformed_stream, "the LLM server sent a chunk without a boolean \"done\" field");
    return;
  }
  if (done->get<bool>()) {
    done_ = true;
    tokens_in_ = integer_at(obj, "prompt_eval_count");
    tokens_out_ = integer_at(obj, "eval_count");
    done_reason_ = string_at(obj, "done_reason");
  }
}

task_error error_from_status(unsigned status, std::string_view body, int64_t retry_after_ms) {
  return classify_http_error(status, parse_error_body(body), retry_after_ms);
}

// -- model management
// ------------------------------------------------------------------------------

std::optional<std::vector<std::string>> parse_tags(std::string_view body, std::string& error) {
  json storage;
  const json* models = models_array(body, "/api/tags", error, storage);
  if (models == nullptr)
    return std::nullopt;
  std::vector<std::string> names;
  if (models->is_array()) {
    for (const auto& entry : *models) {
      if (!entry.is_object())
        continue;
      if (auto name = model_name(entry); !name.empty())
        names.push_back(std::move(name));
    }
  }
  return names;
}

std::optional<std::vector<loaded_model>> parse_ps(std::string_view body, std::string& error) {
  json storage;
  const json* models = models_array(body, "/api/ps", error, storage);
  if (models == nullptr)
    return std::nullopt;
  std::vector<loaded_model> loaded;
  if (models->is_array()) {
    for (const auto& entry : *models) {
      if (!entry.is_object())
        continue;
      loaded_model m;
      m.name = model_name(entry);
      if (m.name.empty())
        continue;
      m.size = integer_at(entry, "size");
      m.size_vram = integer_at(entry, "size_vram");
      m.expires_at = string_at(entry, "expires_at");
      m.context_length = integer_at(entry, "context_length");
      loaded.push_back(std::move(m));
    }
  }
  return loaded;
}

std::string make_pull_body(const std::string& model) {
  return dump(json{{"model", model}, {"stream", true}});
}

void pull_progress_parser::feed(std::string_view bytes) {
  if (failed() || done_)
    return;
  split_lines(
      pending_, bytes, [this](std::string_view line) { parse_line(line); },
      [this] { return failed() || done_; });
}

void pull_progress_parser::finish() {
  if (failed() || done_)
    return;
  flush_last_line(pending_, [this](std::string_view line) { parse_line(line); });
  if (!failed() && !done_)
    error_ = {errc::connection_dropped,
              fmt::format("the LLM server ended the pull after {} updates without \"success\" "
                          "(last status: {:?})",
                          updates_, latest_.status),
              true};
}

void pull_progress_parser::parse_line(std::string_view line) {
  line = trim_line_end(line);
  if (line.empty())
    return;
  std::string why;
  auto parsed = parse_object_line(line, why);
  if (!parsed) {
    error_ = {errc::malformed_stream, std::move(why), false};
    return;
  }
  const json& obj = *parsed;
  // e.g. "pull model manifest: file does not exist" for a name the registry does not know.
  if (auto err = error_in_json(obj)) {
    error_ = classify_stream_error(*err);
    return;
  }
  auto status = obj.find("status");
  if (status == obj.end() || !status->is_string()) {
    error_ = {errc::malformed_stream, "the LLM server sent a pull update without a \"status\"",
              false};
    return;
  }
  latest_ = pull_status{status->get<std::string>(), string_at(obj, "digest"),
                        integer_at(obj, "total"), integer_at(obj, "completed")};
  ++updates_;
  if (!latest_.digest.empty())
    layers_[latest_.digest] = latest_;
  if (latest_.status == "success")
    done_ = true;
}

int64_t pull_progress_parser::total_bytes() const {
  int64_t sum = 0;
  for (const auto& [digest, layer] : layers_)
    sum += layer.total;
  return sum;
}

int64_t pull_progress_parser::completed_bytes() const {
  int64_t sum = 0;
  for (const auto& [digest, layer] : layers_)
    sum += layer.completed;
  return sum;
}

} // namespace offload::ollama
