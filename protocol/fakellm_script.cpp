#include "protocol/fakellm_script.hpp"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <optional>

namespace offload::fakellm {

using json = nlohmann::json;

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::optional<fault> fault_from_string(std::string_view name) {
  for (auto f : injectable_faults)
    if (to_string(f) == name)
      return f;
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> parse_latency(std::string_view digits) {
  // from_chars alone would accept a leading '-'; markers are written by hand, so be strict.
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  uint64_t ms = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ms);
  if (ec != std::errc{} || end != digits.data() + digits.size())
    return std::nullopt;
  std::chrono::milliseconds latency{ms};
  if (latency > max_latency)
    return std::nullopt;
  return latency;
}

// Applies the marker text between `[[` and `]]`; returns whether it was a valid marker.
bool apply_marker(std::string_view marker, script& result) {
  auto eq = marker.find('=');
  if (eq == std::string_view::npos)
    return false;
  auto key = marker.substr(0, eq);
  auto value = marker.substr(eq + 1);
  if (key == "latency") {
    if (auto latency = parse_latency(value)) {
      result.latency = *latency;
      return true;
    }
  } else if (key == "fault") {
    if (auto f = fault_from_string(value)) {
      result.injected = *f;
      return true;
    }
  }
  return false;
}

// Streamed lines are built by hand rather than through nlohmann::json: a reply of N words makes
// N + 1 lines, and at thousands of requests per second the DOM round trip dominated.
// Input is valid UTF-8 because it came out of nlohmann's parser, so only JSON's mandatory escapes
// are needed.
void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (char c : text) {
    switch (c) {
    case '"':
      out.append("\\\"");
      break;
    case '\\':
      out.append("\\\\");
      break;
    case '\n':
      out.append("\\n");
      break;
    case '\r':
      out.append("\\r");
      break;
    case '\t':
      out.append("\\t");
      break;
    case '\b':
      out.append("\\b");
      break;
    case '\f':
      out.append("\\f");
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20)
        fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
      else
        out.push_back(c);
    }
  }
  out.push_back('"');
}

void append_message_head(std::string& out, std::string_view model, std::string_view created_at,
                         std::string_view content) {
  out.append("{\"model\":");
  append_json_string(out, model);
  out.append(",\"created_at\":");
  append_json_string(out, created_at);
  out.append(",\"message\":{\"role\":\"assistant\",\"content\":");
  append_json_string(out, content);
  out.append("},");
}

void append_done_fields(std::string& out, const usage& counts) {
  fmt::format_to(std::back_inserter(out),
                 "\"done\":true,\"done_reason\":\"stop\",\"total_duration\":{},"
                 "\"load_duration\":{},\"prompt_eval_count\":{},\"prompt_eval_duration\":{},"
                 "\"eval_count\":{},\"eval_duration\":{}}}",
                 counts.total.count(), counts.load.count(), counts.prompt_tokens,
                 counts.prompt_eval.count(), counts.reply_tokens, counts.eval.count());
}

std::string with_default_tag(std::string_view name) {
  std::string result{name};
  if (result.find(':') == std::string::npos)
    result.append(":latest");
  return result;
}

// FNV-1a: a stable stand-in for the sha256 digest Ollama reports, so listings are reproducible.
uint64_t fnv1a(std::string_view text, uint64_t seed) {
  uint64_t hash = 14695981039346656037ull ^ seed;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

json describe_model(const std::string& name) {
  auto digest = fmt::format("{:016x}{:016x}{:016x}{:016x}", fnv1a(name, 1), fnv1a(name, 2),
                            fnv1a(name, 3), fnv1a(name, 4));
  // "llama3.2:3b" -> family "llama", 3 billion parameters.
  auto family_end = name.find_first_not_of("abcdefghijklmnopqrstuvwxyz");
  auto family = name.substr(0, family_end);
  auto colon = name.find(':');
  double billions = 7;
  if (colon != std::string::npos) {
    auto tag = std::string_view{name}.substr(colon + 1);
    double parsed = 0;
    auto [end, ec] = std::from_chars(tag.data(), tag.data() + tag.size(), parsed);
    if (ec == std::errc{} && end != tag.data() + tag.size() && (*end == 'b' || *end == 'B'))
      billions = parsed;
  }
  // A Q4_K_M quantised model takes a little over half a byte per parameter.
  auto size = static_cast<uint64_t>(billions * 0.6e9);
  return {{"name", name},
          {"model", name},
          {"modified_at", "2024-01-01T00:00:00Z"},
          {"size", size},
          {"digest", digest},
          {"details",
           {{"format", "gguf"},
            {"family", family.empty() ? "unknown" : family},
            {"parameter_size", fmt::format("{}B", billions)},
            {"quantization_level", "Q4_K_M"}}}};
}

} // namespace

std::string_view to_string(fault f) {
  switch (f) {
  case fault::none:
    return "none";
  case fault::http500:
    return "http500";
  case fault::drop:
    return "drop";
  case fault::hang:
    return "hang";
  case fault::malformed:
    return "malformed";
  case fault::notfound:
    return "notfound";
  }
  return "none";
}

script parse_script(std::string_view text) {
  script result;
  size_t pos = 0;
  while ((pos = text.find("[[", pos)) != std::string_view::npos) {
    auto close = text.find("]]", pos + 2);
    if (close == std::string_view::npos)
      break;
    // After a bad marker, step one character only: in "[[[latency=5]]" the real marker starts
    // inside the span just rejected.
    pos = apply_marker(text.substr(pos + 2, close - pos - 2), result) ? close + 2 : pos + 1;
  }
  return result;
}

parsed_chat_request parse_chat_request(std::string_view body) {
  parsed_chat_request result;
  auto fail = [&](std::string error) {
    result.error = std::move(error);
    return result;
  };
  auto doc = json::parse(body.begin(), body.end(), nullptr, false);
  if (doc.is_discarded())
    return fail("invalid JSON in request body");
  if (!doc.is_object())
    return fail("request body must be a JSON object");
  auto model = doc.find("model");
  if (model == doc.end() || !model->is_string() || model->get_ref<const std::string&>().empty())
    return fail("model is required");
  result.request.model = model->get<std::string>();
  auto messages = doc.find("messages");
  if (messages == doc.end() || !messages->is_array())
    return fail("messages is required and must be an array");
  for (const auto& m : *messages) {
    if (!m.is_object())
      return fail("each message must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      return fail("each message needs a string role");
    auto content = m.find("content");
    if (content != m.end() && !content->is_string() && !content->is_null())
      return fail("message content must be a string");
    auto& added = result.request.messages.emplace_back();
    added.role = role->get<std::string>();
    if (content != m.end() && content->is_string())
      added.content = content->get<std::string>();
  }
  if (auto stream = doc.find("stream"); stream != doc.end() && !stream->is_null()) {
    if (!stream->is_boolean())
      return fail("stream must be a boolean");
    result.request.stream = stream->get<bool>();
  }
  return result;
}

bool serves_model(const std::vector<std::string>& served, std::string_view requested) {
  auto wanted = with_default_tag(requested);
  for (const auto& name : served)
    if (with_default_tag(name) == wanted)
      return true;
  return false;
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

usage make_usage(size_t prompt_words, size_t reply_words, std::chrono::nanoseconds load) {
  using namespace std::chrono_literals;
  usage counts;
  counts.prompt_tokens = prompt_words;
  counts.reply_tokens = reply_words;
  counts.load = load;
  // Rates of a small model on a laptop GPU: prompt processing is much faster than generation.
  counts.prompt_eval = static_cast<int64_t>(prompt_words) * 200us;
  counts.eval = static_cast<int64_t>(reply_words) * 20ms;
  counts.total = counts.load + counts.prompt_eval + counts.eval;
  return counts;
}

std::string format_created_at(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto day = floor<days>(t);
  year_month_day date{day};
  hh_mm_ss<nanoseconds> time{duration_cast<nanoseconds>(t - day)};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", static_cast<int>(date.year()),
                     static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                     time.hours().count(), time.minutes().count(), time.seconds().count(),
                     time.subseconds().count());
}

void append_content_line(std::string& out, std::string_view model, std::string_view created_at,
                         std::string_view piece) {
  append_message_head(out, model, created_at, piece);
  out.append("\"done\":false}\n");
}

void append_final_line(std::string& out, std::string_view model, std::string_view created_at,
                       const usage& counts) {
  append_message_head(out, model, created_at, "");
  append_done_fields(out, counts);
  out.push_back('\n');
}

std::string make_complete_body(std::string_view model, std::string_view created_at,
                               std::string_view reply, const usage& counts) {
  std::string out;
  out.reserve(reply.size() + 320);
  append_message_head(out, model, created_at, reply);
  append_done_fields(out, counts);
  return out;
}

std::string make_error_body(std::string_view message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string model_not_found_message(std::string_view model) {
  return fmt::format("model \"{}\" not found, try pulling it first", model);
}

std::string injected_fault_message(fault f) {
  return fmt::format("injected fault: {}", to_string(f));
}

std::string make_tags_body(const std::vector<std::string>& models) {
  json list = json::array();
  for (const auto& name : models)
    list.push_back(describe_model(name));
  return json{{"models", std::move(list)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string make_version_body() {
  return R"({"version":"0.0.0-offload-fakellm"})";
}

std::string make_stats_body(const stats& counters) {
  json faults = json::object();
  for (auto f : injectable_faults)
    faults[std::string{to_string(f)}] = counters.faults[static_cast<size_t>(f)];
  json body = {{"requests", counters.requests},
               {"in_flight", counters.in_flight},
               {"max_concurrent", counters.max_concurrent},
               {"waiting", counters.waiting},
               {"faults", std::move(faults)}};
  return body.dump();
}

bool slot_pool::try_acquire() {
  if (closed_ || !waiters_.empty() || (capacity_ != 0 && in_use_ >= capacity_))
    return false;
  take();
  return true;
}

slot_pool::ticket slot_pool::enqueue(std::function<void()> on_granted) {
  return waiters_.insert(waiters_.end(), std::move(on_granted));
}

void slot_pool::release() {
  assert(in_use_ > 0 && "a slot was released twice");
  --in_use_;
  if (closed_ || waiters_.empty())
    return;
  auto on_granted = std::move(waiters_.front());
  waiters_.pop_front();
  take();
  on_granted();
}

void slot_pool::close() {
  closed_ = true;
  // Moved out first: a callback's destructor may release a slot and so call back into us.
  auto waiters = std::move(waiters_);
  waiters_.clear();
}

void slot_pool::take() {
  ++in_use_;
  max_in_use_ = std::max(max_in_use_, in_use_);
}

route route_request(std::string_view method, std::string_view target) {
  auto path = target.substr(0, target.find('?'));
  struct known_path {
    std::string_view path;
    std::string_view method;
    endpoint target;
  };
  static constexpr std::array<known_path, 6> known = {{
      {"/", "GET", endpoint::root},
      {"/api/chat", "POST", endpoint::chat},
      {"/api/tags", "GET", endpoint::tags},
      {"/api/version", "GET", endpoint::version},
      {"/_fake/stats", "GET", endpoint::stats},
      {"/_fake/reset_stats", "POST", endpoint::reset_stats},
  }};
  for (const auto& k : known)
    if (k.path == path)
      return {k.target, k.method == method, k.method};
  return {};
}

} // namespace offload::fakellm
