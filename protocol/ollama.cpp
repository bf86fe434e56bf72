#include "protocol/ollama.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace offload::ollama {

using json = nlohmann::json;

std::string make_chat_body(const std::string& model, const std::vector<chat_message>& messages,
                           bool stream) {
  json msgs = json::array();
  for (const auto& m : messages)
    msgs.push_back({{"role", m.role}, {"content", m.content}});
  json body = {{"model", model}, {"messages", std::move(msgs)}, {"stream", stream}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

void chat_stream_parser::feed(std::string_view bytes) {
  if (failed() || done_)
    return;
  size_t start = 0;
  for (;;) {
    auto nl = bytes.find('\n', start);
    if (nl == std::string_view::npos)
      break;
    auto piece = bytes.substr(start, nl - start);
    if (pending_.empty()) {
      parse_line(piece);
    } else {
      pending_.append(piece);
      std::string line = std::move(pending_);
      pending_.clear();
      parse_line(line);
    }
    if (failed() || done_)
      return;
    start = nl + 1;
  }
  pending_.append(bytes.substr(start));
}

void chat_stream_parser::finish() {
  if (failed() || done_)
    return;
  if (!pending_.empty()) {
    std::string line = std::move(pending_);
    pending_.clear();
    parse_line(line);
  }
  if (!failed() && !done_)
    fail(errc::connection_dropped,
         fmt::format("the LLM server ended the response after {} chunks without the final "
                     "\"done\" message",
                     chunks_));
}

void chat_stream_parser::parse_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
    line.remove_suffix(1);
  if (line.empty())
    return;
  json obj;
  try {
    obj = json::parse(line.begin(), line.end());
  } catch (const json::exception&) {
    auto shown = line.substr(0, 80);
    fail(errc::malformed_stream,
         fmt::format("the LLM server sent a line that is not JSON: {:?}", std::string{shown}));
    return;
  }
  if (!obj.is_object()) {
    fail(errc::malformed_stream, "the LLM server sent a JSON value that is not an object");
    return;
  }
  if (auto err = obj.find("error"); err != obj.end()) {
    // Ollama reports failures during generation as an error line inside a 200 stream.
    fail(errc::backend_error,
         fmt::format("the LLM server reported: {}",
                     err->is_string() ? err->get<std::string>() : err->dump()));
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
    if (auto v = obj.find("prompt_eval_count"); v != obj.end() && v->is_number_integer())
      tokens_in_ = v->get<int64_t>();
    if (auto v = obj.find("eval_count"); v != obj.end() && v->is_number_integer())
      tokens_out_ = v->get<int64_t>();
    if (auto v = obj.find("done_reason"); v != obj.end() && v->is_string())
      done_reason_ = v->get<std::string>();
  }
}

void chat_stream_parser::fail(errc code, std::string message) {
  error_ = task_error{code, std::move(message), is_retryable(code)};
}

task_error error_from_status(unsigned status, std::string_view body) {
  std::string detail;
  try {
    auto obj = json::parse(body.begin(), body.end());
    if (obj.is_object()) {
      if (auto err = obj.find("error"); err != obj.end())
        detail = err->is_string() ? err->get<std::string>() : err->dump();
    }
  } catch (const json::exception&) {
    // Not JSON: fall back to the raw body, cut short.
  }
  if (detail.empty())
    detail = std::string{body.substr(0, 200)};
  if (status == 404)
    return {errc::model_not_found, fmt::format("HTTP 404 from the LLM server: {}", detail), false};
  // 408, 429 and 5xx may pass; other 4xx mean the request itself is wrong.
  bool retryable = status == 408 || status == 429 || status >= 500;
  return {errc::backend_http_error, fmt::format("HTTP {} from the LLM server: {}", status, detail),
          retryable};
}

} // namespace offload::ollama
