#include "protocol/fakellm_request.hpp"

#include <cmath>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace offload::fakellm {

using json = nlohmann::json;

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// One unit of a Go duration, in nanoseconds.
std::optional<double> unit_nanos(std::string_view unit) {
  if (unit == "ns")
    return 1;
  if (unit == "us" || unit == "\u00b5s" || unit == "\u03bcs")
    return 1e3;
  if (unit == "ms")
    return 1e6;
  if (unit == "s")
    return 1e9;
  if (unit == "m")
    return 60e9;
  if (unit == "h")
    return 3600e9;
  return std::nullopt;
}

// "12", "1.5", ".5" or "5.", as Go's durations take them.
std::optional<double> parse_decimal(std::string_view number) {
  auto dot = number.find('.');
  auto whole = number.substr(0, dot);
  auto fraction = dot == std::string_view::npos ? std::string_view{} : number.substr(dot + 1);
  if (whole.empty() && fraction.empty())
    return std::nullopt;
  double value = 0;
  for (char c : whole) {
    if (c < '0' || c > '9')
      return std::nullopt;
    value = value * 10 + (c - '0');
  }
  double scale = 0.1;
  for (char c : fraction) {
    if (c < '0' || c > '9')
      return std::nullopt;
    value += (c - '0') * scale;
    scale /= 10;
  }
  return value;
}

// Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, or "0".
std::optional<double> parse_go_duration_nanos(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text == "0")
    return 0.0;
  if (text.empty())
    return std::nullopt;
  double total = 0;
  while (!text.empty()) {
    auto number_end = text.find_first_not_of("0123456789.");
    auto value = parse_decimal(text.substr(0, number_end));
    if (!value)
      return std::nullopt;
    if (number_end == std::string_view::npos)
      return std::nullopt; // Go: missing unit
    text.remove_prefix(number_end);
    auto unit_end = text.find_first_of("0123456789.");
    auto nanos = unit_nanos(text.substr(0, unit_end));
    if (!nanos)
      return std::nullopt;
    total += *value * *nanos;
    text.remove_prefix(unit_end == std::string_view::npos ? text.size() : unit_end);
  }
  // Go rejects what does not fit an int64 of nanoseconds.
  if (total > 9.2e18)
    return std::nullopt;
  return negative ? -total : total;
}

// Negative keep_alive means "forever"; -1 ms stands for it.
std::chrono::milliseconds keep_alive_from_nanos(double nanos) {
  if (nanos < 0)
    return std::chrono::milliseconds{-1};
  return std::chrono::milliseconds{static_cast<int64_t>(nanos / 1e6)};
}

// Reads the fields every Ollama generation request shares. Returns an error text, or "".
std::string read_ollama_common(const json& doc, chat_request& out) {
  auto model = doc.find("model");
  if (model == doc.end() || !model->is_string() || model->get_ref<const std::string&>().empty())
    return "model is required";
  out.model = model->get<std::string>();
  if (auto stream = doc.find("stream"); stream != doc.end() && !stream->is_null()) {
    if (!stream->is_boolean())
      return "stream must be a boolean";
    out.stream = stream->get<bool>();
  }
  if (auto keep = doc.find("keep_alive"); keep != doc.end() && !keep->is_null()) {
    if (keep->is_number()) {
      // Ollama takes a JSON number as whole seconds.
      auto seconds = keep->get<double>();
      if (!std::isfinite(seconds) || seconds > 9.2e9)
        return "keep_alive is out of range";
      out.keep_alive = seconds < 0
                           ? std::chrono::milliseconds{-1}
                           : std::chrono::milliseconds{static_cast<int64_t>(seconds) * 1000};
    } else if (keep->is_string()) {
      auto parsed = parse_keep_alive(keep->get_ref<const std::string&>());
      if (!parsed)
        return fmt::format("invalid duration in keep_alive: {:?}",
                           keep->get_ref<const std::string&>());
      out.keep_alive = *parsed;
    } else {
      return "keep_alive must be a duration string or a number of seconds";
    }
  }
  return {};
}

json parse_object(std::string_view body, std::string& error) {
  auto doc = json::parse(body.begin(), body.end(), nullptr, false);
  if (doc.is_discarded())
    error = "invalid JSON in request body";
  else if (!doc.is_object())
    error = "request body must be a JSON object";
  return doc;
}

std::string with_default_tag(std::string_view name) {
  std::string result{name};
  if (result.find(':') == std::string::npos)
    result.append(":latest");
  return result;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool is_name_part(std::string_view part) {
  if (part.empty() || part.size() > 128 || !is_name_char(part.front()) || part.front() == '.' ||
      part.front() == '-')
    return false;
  for (char c : part)
    if (!is_name_char(c))
      return false;
  return true;
}

} // namespace

std::optional<std::chrono::milliseconds> parse_keep_alive(std::string_view text) {
  auto nanos = parse_go_duration_nanos(text);
  if (!nanos)
    return std::nullopt;
  return keep_alive_from_nanos(*nanos);
}

parsed_chat_request parse_chat_request(std::string_view body) {
  parsed_chat_request result;
  auto doc = parse_object(body, result.error);
  if (!result.ok())
    return result;
  result.error = read_ollama_common(doc, result.request);
  if (!result.ok())
    return result;
  auto messages = doc.find("messages");
  if (messages == doc.end() || messages->is_null() || (messages->is_array() && messages->empty())) {
    result.request.preload = true;
    return result;
  }
  if (!messages->is_array()) {
    result.error = "messages must be an array";
    return result;
  }
  for (const auto& m : *messages) {
    if (!m.is_object()) {
      result.error = "each message must be an object";
      return result;
    }
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      result.error = "each message needs a string role";
      return result;
    }
    auto content = m.find("content");
    if (content != m.end() && !content->is_string() && !content->is_null()) {
      result.error = "message content must be a string";
      return result;
    }
    auto& added = result.request.messages.emplace_back();
    added.role = role->get<std::string>();
    if (content != m.end() && content->is_string())
      added.content = content->get<std::string>();
  }
  return result;
}

parsed_chat_request parse_generate_request(std::string_view body) {
  parsed_chat_request result;
  auto doc = parse_object(body, result.error);
  if (!result.ok())
    return result;
  result.error = read_ollama_common(doc, result.request);
  if (!result.ok())
    return result;
  std::string texts[2];
  const char* fields[2] = {"system", "prompt"};
  for (int i = 0; i < 2; ++i) {
    auto field = doc.find(fields[i]);
    if (field == doc.end() || field->is_null())
      continue;
    if (!field->is_string()) {
      result.error = fmt::format("{} must be a string", fields[i]);
      return result;
    }
    texts[i] = field->get<std::string>();
  }
  if (texts[0].empty() && texts[1].empty()) {
    result.request.preload = true;
    return result;
  }
  if (!texts[0].empty())
    result.request.messages.push_back({"system", std::move(texts[0])});
  result.request.messages.push_back({"user", std::move(texts[1])});
  return result;
}

parsed_chat_request parse_openai_chat_request(std::string_view body) {
  parsed_chat_request result;
  result.request.stream = false;
  auto doc = parse_object(body, result.error);
  auto fail = [&](std::string error) {
    result.error = std::move(error);
    return result;
  };
  if (!result.ok())
    return result;
  auto model = doc.find("model");
  if (model == doc.end() || !model->is_string() || model->get_ref<const std::string&>().empty())
    return fail("'model' is required");
  result.request.model = model->get<std::string>();
  auto messages = doc.find("messages");
  if (messages == doc.end() || !messages->is_array() || messages->empty())
    return fail("'messages' is required and must be a non-empty array");
  for (const auto& m : *messages) {
    if (!m.is_object())
      return fail("each message must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      return fail("each message needs a string 'role'");
    auto& added = result.request.messages.emplace_back();
    added.role = role->get<std::string>();
    auto content = m.find("content");
    if (content == m.end() || content->is_null())
      continue;
    if (content->is_string()) {
      added.content = content->get<std::string>();
    } else if (content->is_array()) {
      // Text parts are joined; images and other parts say nothing to an echo.
      for (const auto& part : *content) {
        if (!part.is_object())
          return fail("each content part must be an object");
        auto type = part.find("type");
        auto text = part.find("text");
        if (type != part.end() && *type == "text" && text != part.end() && text->is_string())
          added.content.append(text->get_ref<const std::string&>());
      }
    } else {
      return fail("message 'content' must be a string or an array of parts");
    }
  }
  if (auto stream = doc.find("stream"); stream != doc.end() && !stream->is_null()) {
    if (!stream->is_boolean())
      return fail("'stream' must be a boolean");
    result.request.stream = stream->get<bool>();
  }
  if (auto options = doc.find("stream_options"); options != doc.end() && !options->is_null()) {
    if (!options->is_object())
      return fail("'stream_options' must be an object");
    if (auto usage = options->find("include_usage"); usage != options->end() && !usage->is_null()) {
      if (!usage->is_boolean())
        return fail("'stream_options.include_usage' must be a boolean");
      result.request.include_usage = usage->get<bool>();
    }
  }
  return result;
}

parsed_pull_request parse_pull_request(std::string_view body) {
  parsed_pull_request result;
  auto doc = parse_object(body, result.error);
  if (!result.ok())
    return result;
  auto model = doc.find("model");
  if (model == doc.end() || model->is_null())
    model = doc.find("name");
  if (model == doc.end() || !model->is_string() || model->get_ref<const std::string&>().empty()) {
    result.error = "model is required";
    return result;
  }
  result.request.model = model->get<std::string>();
  if (auto stream = doc.find("stream"); stream != doc.end() && !stream->is_null()) {
    if (!stream->is_boolean()) {
      result.error = "stream must be a boolean";
      return result;
    }
    result.request.stream = stream->get<bool>();
  }
  return result;
}

bool is_valid_model_name(std::string_view name) {
  auto slash = name.rfind('/');
  auto colon = name.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    if (!is_name_part(name.substr(colon + 1)))
      return false;
    name = name.substr(0, colon);
  }
  size_t parts = 0;
  size_t start = 0;
  while (true) {
    auto end = name.find('/', start);
    if (!is_name_part(name.substr(start, end == std::string_view::npos ? end : end - start)))
      return false;
    if (++parts > 3)
      return false;
    if (end == std::string_view::npos)
      return true;
    start = end + 1;
  }
}

std::optional<std::string> find_served_model(const std::vector<std::string>& served,
                                             std::string_view requested) {
  auto wanted = with_default_tag(requested);
  for (const auto& name : served)
    if (with_default_tag(name) == wanted)
      return name;
  return std::nullopt;
}

bool serves_model(const std::vector<std::string>& served, std::string_view requested) {
  return find_served_model(served, requested).has_value();
}

std::string_view reply_to(const chat_request& request) {
  for (auto it = request.messages.rbegin(); it != request.messages.rend(); ++it)
    if (it->role == "user")
      return it->content;
  return {};
}

size_t count_words(std::string_view text) {
  size_t words = 0;
  bool in_word = false;
  for (char c : text) {
    bool space = is_space(c);
    if (!space && !in_word)
      ++words;
    in_word = !space;
  }
  return words;
}

size_t count_prompt_words(const std::vector<message>& messages) {
  size_t words = 0;
  for (const auto& m : messages)
    words += count_words(m.content);
  return words;
}

std::vector<std::string_view> split_pieces(std::string_view reply) {
  std::vector<std::string_view> pieces;
  size_t start = 0;
  size_t i = 0;
  while (i < reply.size() && is_space(reply[i]))
    ++i;
  while (i < reply.size()) {
    while (i < reply.size() && !is_space(reply[i]))
      ++i;
    while (i < reply.size() && is_space(reply[i]))
      ++i;
    pieces.push_back(reply.substr(start, i - start));
    start = i;
  }
  // A reply of nothing but whitespace has no word to attach it to.
  if (start < reply.size())
    pieces.push_back(reply.substr(start));
  return pieces;
}

} // namespace offload::fakellm
