#include "protocol/fakellm_wire.hpp"

#include <charconv>
#include <fmt/format.h>

namespace offload::fakellm {

namespace {

// FNV-1a: stable across runs and platforms, which std::hash is not.
uint64_t fnv1a(std::string_view text, uint64_t seed) {
  uint64_t hash = 14695981039346656037ull ^ seed;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

} // namespace

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

int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string fake_digest(std::string_view text) {
  return fmt::format("{:016x}{:016x}{:016x}{:016x}", fnv1a(text, 1), fnv1a(text, 2), fnv1a(text, 3),
                     fnv1a(text, 4));
}

model_info describe_model(std::string_view name) {
  model_info info;
  info.name = std::string{name};
  info.digest = fake_digest(name);
  auto family_end = name.find_first_not_of("abcdefghijklmnopqrstuvwxyz");
  info.family = std::string{name.substr(0, family_end)};
  if (info.family.empty())
    info.family = "unknown";
  double billions = 7;
  if (auto colon = name.find(':'); colon != std::string_view::npos) {
    auto tag = name.substr(colon + 1);
    double parsed = 0;
    auto [end, ec] = std::from_chars(tag.data(), tag.data() + tag.size(), parsed);
    if (ec == std::errc{} && end != tag.data() + tag.size() && (*end == 'b' || *end == 'B'))
      billions = parsed;
  }
  info.parameter_size = fmt::format("{}B", billions);
  // A Q4_K_M quantised model takes a little over half a byte per parameter.
  info.size = static_cast<uint64_t>(billions * 0.6e9);
  return info;
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

} // namespace offload::fakellm
