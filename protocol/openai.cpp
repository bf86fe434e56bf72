#include "protocol/openai.hpp"

#include "protocol/llm_errors.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace offload::openai {

namespace {

using json = nlohmann::json;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string shown(std::string_view text) {
  return std::string{text.substr(0, 80)};
}

const json* member(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

} // namespace

std::string make_chat_body(const std::string& model, const std::vector<chat_message>& messages,
                           bool stream) {
  json msgs = json::array();
  for (const auto& m : messages)
    msgs.push_back({{"role", m.role}, {"content", m.content}});
  json body = {{"model", model}, {"messages", std::move(msgs)}, {"stream", stream}};
  if (stream)
    body["stream_options"] = {{"include_usage", true}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string api_path(std::string_view base_path, std::string_view endpoint) {
  constexpr std::string_view v1 = "/v1";
  bool has_v1 = base_path.size() >= v1.size() && base_path.substr(base_path.size() - 3) == v1;
  return fmt::format("{}{}/{}", base_path, has_v1 ? "" : "/v1", endpoint);
}

// -- response stream
// -------------------------------------------------------------------------------

void chat_stream_parser::feed(std::string_view bytes) {
  if (failed() || done_)
    return;
  size_t i = 0;
  if (mode_ == body_mode::unknown) {
    while (i < bytes.size() && is_space(bytes[i]))
      ++i;
    if (i == bytes.size())
      return;
    mode_ = bytes[i] == '{' ? body_mode::whole : body_mode::events;
  }
  if (mode_ == body_mode::whole) {
    body_.append(bytes.substr(i));
    return;
  }
  while (i < bytes.size()) {
    if (skip_lf_) {
      skip_lf_ = false;
      if (bytes[i] == '\n') {
        ++i;
        continue;
      }
    }
    auto end = bytes.find_first_of("\r\n", i);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(i));
      return;
    }
    skip_lf_ = bytes[end] == '\r';
    if (line_.empty()) {
      take_line(bytes.substr(i, end - i));
    } else {
      line_.append(bytes.substr(i, end - i));
      std::string line = std::move(line_);
      line_.clear();
      take_line(line);
    }
    if (failed() || done_)
      return;
    i = end + 1;
  }
}

void chat_stream_parser::finish() {
  if (failed() || done_)
    return;
  if (mode_ == body_mode::whole) {
    finish_whole_body();
    return;
  }
  if (!line_.empty()) {
    std::string line = std::move(line_);
    line_.clear();
    take_line(line);
  }
  if (!failed() && !done_)
    dispatch(true);
  if (failed() || done_)
    return;
  // Some servers close the stream after the last chunk without sending [DONE].
  if (finished_) {
    done_ = true;
    return;
  }
  fail(errc::connection_dropped,
       fmt::format("the LLM server ended the response after {} chunks without a finish_reason "
                   "or \"data: [DONE]\"",
                   chunks_));
}

void chat_stream_parser::take_line(std::string_view line) {
  if (line.empty()) {
    dispatch(false);
    return;
  }
  if (line.front() == ':') // a comment; servers send them as keep-alive pings
    return;
  auto colon = line.find(':');
  auto field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
  }
  if (field == "data" || field == "error") {
    // llama.cpp used to send errors as a non-standard `error:` field.
    if (field == "error")
      event_ = "error";
    if (has_data_)
      data_ += '\n';
    data_.append(value);
    has_data_ = true;
    return;
  }
  if (field == "event") {
    event_ = std::string{value};
    return;
  }
  if (field == "id" || field == "retry")
    return;
  fail(
      errc::malformed_stream,
      fmt::format("the LLM server sent a line that is not a server-sent event: {:?}", shown(line)));
}

void chat_stream_parser::dispatch(bool at_end) {
  if (!has_data_) {
    event_.clear();
    return;
  }
  bool error_event = event_ == "error";
  std::string data = std::move(data_);
  data_.clear();
  event_.clear();
  has_data_ = false;
  if (!error_event && data == "[DONE]") {
    done_ = true;
    return;
  }
  json chunk;
  try {
    chunk = json::parse(data);
  } catch (const json::exception&) {
    if (error_event)
      fail(classify_stream_error({data, {}, {}}));
    else if (at_end) // the body stopped in the middle of an event
      fail(errc::connection_dropped,
           fmt::format("the LLM server ended the response in the middle of an event after {} "
                       "chunks",
                       chunks_));
    else
      fail(errc::malformed_stream,
           fmt::format("the LLM server sent an event whose data is not JSON: {:?}", shown(data)));
    return;
  }
  if (error_event) {
    auto detail = error_in_json(chunk);
    if (!detail) // the field held the error object itself
      detail = error_in_json(json{{"error", chunk}});
    fail(classify_stream_error(*detail));
    return;
  }
  take_chunk(chunk);
}

void chat_stream_parser::take_chunk(const json& chunk) {
  if (!chunk.is_object()) {
    fail(errc::malformed_stream, "the LLM server sent a JSON value that is not an object");
    return;
  }
  if (auto err = error_in_json(chunk)) {
    fail(classify_stream_error(*err));
    return;
  }
  if (!chunk.contains("choices") && !chunk.contains("usage")) {
    fail(errc::malformed_stream,
         fmt::format("the LLM server sent an object that is not a chat completion: {:?}",
                     shown(chunk.dump())));
    return;
  }
  if (const json* model = member(chunk, "model"); model && model->is_string())
    model_ = model->get<std::string>();
  // We ask for one choice (n = 1), so the first one is the answer.
  if (const json* choices = member(chunk, "choices");
      choices && choices->is_array() && !choices->empty() && (*choices)[0].is_object()) {
    const json& choice = (*choices)[0];
    for (const char* key : {"delta", "message"}) {
      const json* part = member(choice, key);
      if (!part || !part->is_object())
        continue;
      if (const json* content = member(*part, "content"); content && content->is_string()) {
        text_ += content->get_ref<const std::string&>();
        ++chunks_;
      } else if (const json* thinking = member(*part, "reasoning_content");
                 thinking && thinking->is_string()) {
        ++chunks_; // a reasoning model's first tokens: the server is generating
      }
    }
    if (const json* reason = member(choice, "finish_reason"); reason && reason->is_string()) {
      done_reason_ = reason->get<std::string>();
      finished_ = true;
    }
  }
  if (const json* usage = member(chunk, "usage"); usage && usage->is_object()) {
    has_usage_ = true;
    if (const json* v = member(*usage, "prompt_tokens"); v && v->is_number_integer())
      tokens_in_ = v->get<int64_t>();
    if (const json* v = member(*usage, "completion_tokens"); v && v->is_number_integer())
      tokens_out_ = v->get<int64_t>();
  } else if (const json* timings = member(chunk, "timings");
             timings && timings->is_object() && !has_usage_) {
    // llama.cpp's own figures, for servers that send no usage.
    if (const json* v = member(*timings, "prompt_n"); v && v->is_number_integer())
      tokens_in_ = v->get<int64_t>();
    if (const json* v = member(*timings, "predicted_n"); v && v->is_number_integer())
      tokens_out_ = v->get<int64_t>();
  }
}

void chat_stream_parser::finish_whole_body() {
  json whole;
  try {
    whole = json::parse(body_);
  } catch (const json::exception&) {
    fail(errc::malformed_stream,
         fmt::format("the LLM server's answer is not JSON: {:?}", shown(body_)));
    return;
  }
  take_chunk(whole);
  if (failed())
    return;
  if (chunks_ == 0 && !finished_) {
    fail(errc::malformed_stream, "the LLM server's answer has no choice with a message");
    return;
  }
  done_ = true;
}

// -- errors and models
// -----------------------------------------------------------------------------

task_error error_from_status(unsigned status, std::string_view body, int64_t retry_after_ms) {
  return classify_http_error(status, parse_error_body(body), retry_after_ms);
}

std::optional<std::vector<std::string>> parse_models(std::string_view body, std::string& error) {
  json list;
  try {
    list = json::parse(body.begin(), body.end());
  } catch (const json::exception&) {
    error = "the /v1/models answer is not JSON";
    return std::nullopt;
  }
  if (!list.is_object()) {
    error = "the /v1/models answer is not a JSON object";
    return std::nullopt;
  }
  const json* data = member(list, "data");
  if (!data || !data->is_array()) {
    error = "the /v1/models answer has no \"data\" list";
    return std::nullopt;
  }
  std::vector<std::string> ids;
  for (const auto& entry : *data) {
    if (!entry.is_object())
      continue;
    if (const json* id = member(entry, "id");
        id && id->is_string() && !id->get_ref<const std::string&>().empty())
      ids.push_back(id->get<std::string>());
  }
  return ids;
}

} // namespace offload::openai
