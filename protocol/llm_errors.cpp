#include "protocol/llm_errors.hpp"

#include "runtime/defaults.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <vector>

namespace offload {

namespace {

using json = nlohmann::json;

// Longest piece of a non-JSON body quoted in a message.
constexpr size_t max_quoted_body = 200;

std::string lowercase(std::string_view text) {
  std::string out{text};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string scalar_text(const json& value) {
  if (value.is_string())
    return value.get<std::string>();
  if (value.is_null())
    return {};
  return value.dump();
}

std::string quoted_body(std::string_view body) {
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back())))
    body.remove_suffix(1);
  return std::string{body.substr(0, max_quoted_body)};
}

// What the words of an error say, whichever server wrote them.
struct error_signs {
  bool context_overflow = false;
  bool model_missing = false;
  bool model_loading = false;
  bool busy = false;
  bool no_such_path = false;
};

error_signs read_signs(const llm_error_detail& detail) {
  auto message = lowercase(detail.message);
  auto type = lowercase(detail.type);
  auto code = lowercase(detail.code);
  error_signs signs;
  // llama.cpp's type, OpenAI's code, and the wording of Ollama ("input length exceeds the
  // context length"), vLLM and OpenAI ("maximum context length") and llama.cpp ("exceeds the
  // available context size").
  signs.context_overflow =
      type == "exceed_context_size_error" || code == "context_length_exceeded" ||
      contains(message, "context length") || contains(message, "context window") ||
      contains(message, "context size") || contains(message, "too many tokens");
  // Ollama: model "x" not found, try pulling it first; vLLM/OpenAI: The model `x` does not exist.
  signs.model_missing = code == "model_not_found" ||
                        (contains(message, "model") &&
                         (contains(message, "not found") || contains(message, "does not exist")));
  signs.model_loading = contains(message, "loading model") || contains(message, "model is loading");
  // Ollama: server busy, please try again.  maximum pending requests exceeded
  signs.busy = contains(message, "server busy") || contains(message, "maximum pending requests") ||
               contains(message, "overloaded") || contains(message, "too many requests");
  // A 404 of the HTTP layer rather than of the model: Go's "404 page not found" (Ollama),
  // FastAPI's {"detail":"Not Found"} (vLLM), llama.cpp's "File Not Found".
  signs.no_such_path = !contains(message, "model") &&
                       (message == "not found" || contains(message, "page not found") ||
                        contains(message, "file not found") || type == "not_found_error");
  return signs;
}

task_error make_error(errc code, std::string message, bool retryable, int64_t retry_after_ms = 0) {
  return task_error{code, std::move(message), retryable, retry_after_ms};
}

// -- HTTP-dates
// ------------------------------------------------------------------------------------

std::optional<unsigned> month_number(std::string_view name) {
  static constexpr std::array<std::string_view, 12> months{
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  auto lower = lowercase(name);
  for (size_t i = 0; i < months.size(); ++i)
    if (lower == months[i])
      return static_cast<unsigned>(i + 1);
  return std::nullopt;
}

std::optional<int> number(std::string_view text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0)
    return std::nullopt;
  return value;
}

// "08:49:37" as seconds since midnight.
std::optional<int> time_of_day(std::string_view text) {
  if (text.size() != 8 || text[2] != ':' || text[5] != ':')
    return std::nullopt;
  auto h = number(text.substr(0, 2));
  auto m = number(text.substr(3, 2));
  auto s = number(text.substr(6, 2));
  if (!h || !m || !s || *h > 23 || *m > 59 || *s > 60)
    return std::nullopt;
  return *h * 3600 + *m * 60 + *s;
}

// The three forms RFC 9110 asks recipients to accept:
//   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
//   RFC 850      Sunday, 06-Nov-94 08:49:37 GMT
//   asctime      Sun Nov  6 08:49:37 1994
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text) {
  std::vector<std::string_view> tokens;
  size_t i = 0;
  while (i < text.size()) {
    auto is_separator = [](char c) { return c == ' ' || c == ',' || c == '-' || c == '\t'; };
    while (i < text.size() && is_separator(text[i]))
      ++i;
    size_t start = i;
    while (i < text.size() && !is_separator(text[i]))
      ++i;
    if (i > start)
      tokens.push_back(text.substr(start, i - start));
  }
  if (tokens.size() < 5)
    return std::nullopt;
  std::optional<int> day;
  std::optional<unsigned> month;
  std::optional<int> year;
  std::optional<int> seconds;
  if (month_number(tokens[1])) { // asctime
    month = month_number(tokens[1]);
    day = number(tokens[2]);
    seconds = time_of_day(tokens[3]);
    year = number(tokens[4]);
  } else {
    if (tokens.size() < 6 || lowercase(tokens[5]) != "gmt")
      return std::nullopt;
    day = number(tokens[1]);
    month = month_number(tokens[2]);
    year = number(tokens[3]);
    seconds = time_of_day(tokens[4]);
    // RFC 850's two-digit years.
    if (year && tokens[3].size() == 2)
      *year += *year < 70 ? 2000 : 1900;
  }
  if (!day || !month || !year || !seconds)
    return std::nullopt;
  using namespace std::chrono;
  year_month_day date{std::chrono::year{*year}, std::chrono::month{*month},
                      std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok())
    return std::nullopt;
  return time_point_cast<system_clock::duration>(sys_days{date} + std::chrono::seconds{*seconds});
}

} // namespace

std::optional<llm_error_detail> error_in_json(const json& value) {
  if (!value.is_object())
    return std::nullopt;
  llm_error_detail detail;
  if (auto err = value.find("error"); err != value.end() && !err->is_null()) {
    if (!err->is_object()) {
      detail.message = scalar_text(*err);
      return detail;
    }
    if (auto m = err->find("message"); m != err->end())
      detail.message = scalar_text(*m);
    else
      detail.message = err->dump();
    if (auto t = err->find("type"); t != err->end())
      detail.type = scalar_text(*t);
    if (auto c = err->find("code"); c != err->end())
      detail.code = scalar_text(*c);
    return detail;
  }
  if (auto object = value.find("object"); object != value.end() && *object == "error") {
    if (auto m = value.find("message"); m != value.end())
      detail.message = scalar_text(*m);
    if (auto t = value.find("type"); t != value.end())
      detail.type = scalar_text(*t);
    if (auto c = value.find("code"); c != value.end())
      detail.code = scalar_text(*c);
    return detail;
  }
  return std::nullopt;
}

llm_error_detail parse_error_body(std::string_view body) {
  try {
    auto value = json::parse(body.begin(), body.end());
    if (auto detail = error_in_json(value); detail && !detail->message.empty())
      return *detail;
    // FastAPI's default errors (vLLM's unknown routes) and other servers' plain shapes.
    if (value.is_object()) {
      for (const char* key : {"detail", "message"}) {
        if (auto v = value.find(key); v != value.end() && v->is_string())
          return {v->get<std::string>(), {}, {}};
      }
    }
  } catch (const json::exception&) {
    // Not JSON: the text itself is the best description there is.
  }
  return {quoted_body(body), {}, {}};
}

task_error classify_http_error(unsigned status, const llm_error_detail& detail,
                               int64_t retry_after_ms) {
  auto message = fmt::format("HTTP {} from the LLM server: {}", status, detail.message);
  auto signs = read_signs(detail);
  switch (status) {
  case 499: // Ollama: the request was cancelled (by us, or by whoever closed the connection)
    return make_error(errc::cancelled, std::move(message), false);
  case 429:
    return make_error(errc::backend_overloaded, std::move(message), true, retry_after_ms);
  case 503:
    if (signs.model_loading)
      return make_error(errc::model_loading, std::move(message), true, retry_after_ms);
    return make_error(errc::backend_overloaded, std::move(message), true, retry_after_ms);
  default:
    break;
  }
  if (signs.context_overflow)
    return make_error(errc::context_too_long, std::move(message), false);
  if (status == 404 && signs.no_such_path)
    return make_error(errc::backend_http_error,
                      message + " (the server does not know this API path: is the backend's "
                                "kind or URL wrong?)",
                      false);
  if (status == 404 || (status / 100 == 4 && signs.model_missing))
    return make_error(errc::model_not_found, std::move(message), false);
  // A timeout or a server-side failure may pass; other 4xx mean the request itself is wrong.
  bool retryable = status == 408 || status >= 500;
  return make_error(errc::backend_http_error, std::move(message), retryable, retry_after_ms);
}

task_error classify_stream_error(const llm_error_detail& detail) {
  auto message = fmt::format("the LLM server reported: {}", detail.message);
  auto signs = read_signs(detail);
  if (signs.context_overflow)
    return make_error(errc::context_too_long, std::move(message), false);
  if (signs.model_missing)
    return make_error(errc::model_not_found, std::move(message), false);
  if (signs.model_loading)
    return make_error(errc::model_loading, std::move(message), true);
  if (signs.busy)
    return make_error(errc::backend_overloaded, std::move(message), true);
  return make_error(errc::backend_error, std::move(message), false);
}

int64_t parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
  using std::chrono::milliseconds;
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front())))
    value.remove_prefix(1);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
    value.remove_suffix(1);
  if (value.empty())
    return 0;
  const int64_t cap = std::chrono::duration_cast<milliseconds>(defaults::max_retry_after).count();
  if (std::isdigit(static_cast<unsigned char>(value.front()))) {
    // delta-seconds; a fraction is not in the standard but costs nothing to honour.
    auto dot = value.find('.');
    auto whole = value.substr(0, dot);
    if (whole.find_first_not_of("0123456789") != std::string_view::npos)
      return 0;
    if (whole.size() > 9) // more than 30 years: far past the cap, and safe from overflow
      return cap;
    int64_t ms = *number(whole) * int64_t{1000};
    if (dot != std::string_view::npos) {
      auto fraction = value.substr(dot + 1);
      if (fraction.empty() || fraction.find_first_not_of("0123456789") != std::string_view::npos)
        return 0;
      int64_t scale = 100;
      for (size_t i = 0; i < fraction.size() && scale > 0; ++i, scale /= 10)
        ms += (fraction[i] - '0') * scale;
    }
    return std::min(ms, cap);
  }
  auto when = parse_http_date(value);
  if (!when)
    return 0;
  auto wait = std::chrono::duration_cast<milliseconds>(*when - now).count();
  return std::clamp<int64_t>(wait, 0, cap);
}

} // namespace offload
