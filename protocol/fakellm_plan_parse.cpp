// Reading fault plans from YAML. Every rejection names the source, the line and the reason, so
// that a typo in a plan fails the test run at once instead of silently injecting nothing.

#include "protocol/fakellm_plan.hpp"

#include <fmt/format.h>
#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <cmath>
#include <set>

namespace offload::fakellm {

namespace {

// Thrown inside the parser, caught at its entry; `line` is 1-based.
struct plan_error {
  int line;
  std::string reason;
};

int line_of(const YAML::Node& node, int fallback) {
  return node.Mark().line >= 0 ? node.Mark().line + 1 : fallback;
}

// A mapping's values with the line of each key: a value error points at its key, because
// yaml-cpp marks an empty value on the line after it.
struct mapping {
  struct entry {
    YAML::Node value;
    int line;
  };
  std::vector<std::pair<std::string, entry>> entries;
  int line = 0;

  const entry* find(std::string_view key) const {
    for (const auto& [name, e] : entries)
      if (name == key)
        return &e;
    return nullptr;
  }
};

mapping read_mapping(const YAML::Node& node, int line, std::string_view what,
                     std::initializer_list<std::string_view> known) {
  if (!node.IsMap())
    throw plan_error{line_of(node, line), fmt::format("{} must be a mapping", what)};
  mapping result;
  result.line = line_of(node, line);
  for (const auto& item : node) {
    auto key = item.first.as<std::string>();
    auto key_line = line_of(item.first, result.line);
    if (std::find(known.begin(), known.end(), key) == known.end())
      throw plan_error{key_line, fmt::format("unknown key \"{}\" in {} (known keys: {})", key, what,
                                             fmt::join(known, ", "))};
    if (result.find(key))
      throw plan_error{key_line, fmt::format("key \"{}\" appears twice in {}", key, what)};
    result.entries.push_back({key, {item.second, key_line}});
  }
  return result;
}

std::string scalar_text(const YAML::Node& node) {
  return node.IsScalar() ? node.Scalar() : std::string{"(not a scalar)"};
}

int64_t integer(const mapping::entry& e, std::string_view key, int64_t min, int64_t max) {
  int64_t value = 0;
  if (!e.value.IsScalar() || !YAML::convert<int64_t>::decode(e.value, value))
    throw plan_error{
        e.line, fmt::format("{} must be a whole number, got \"{}\"", key, scalar_text(e.value))};
  if (value < min || value > max)
    throw plan_error{e.line,
                     fmt::format("{} must be between {} and {}, got {}", key, min, max, value)};
  return value;
}

double number(const YAML::Node& node, int line, std::string_view key) {
  double value = 0;
  if (!node.IsScalar() || !YAML::convert<double>::decode(node, value) || !std::isfinite(value))
    throw plan_error{line, fmt::format("{} must be a number, got \"{}\"", key, scalar_text(node))};
  return value;
}

bool boolean(const mapping::entry& e, std::string_view key) {
  bool value = false;
  if (!e.value.IsScalar() || !YAML::convert<bool>::decode(e.value, value))
    throw plan_error{
        e.line, fmt::format("{} must be true or false, got \"{}\"", key, scalar_text(e.value))};
  return value;
}

std::string text(const mapping::entry& e, std::string_view key) {
  if (!e.value.IsScalar())
    throw plan_error{e.line, fmt::format("{} must be a string", key)};
  return e.value.Scalar();
}

// A scalar or a list of scalars, each read by `one`.
template <class T, class Read>
std::vector<T> one_or_many(const mapping::entry& e, Read one) {
  std::vector<T> result;
  if (e.value.IsSequence()) {
    for (const auto& item : e.value)
      result.push_back(one(mapping::entry{item, line_of(item, e.line)}));
    if (result.empty())
      throw plan_error{e.line, "an empty list matches nothing; leave the key out to match any"};
  } else {
    result.push_back(one(e));
  }
  return result;
}

constexpr double max_millis = static_cast<double>(max_latency.count());

// `250`, `{uniform: [100, 300]}` or `{normal: {mean: 200, stddev: 50}}`.
millis_distribution distribution(const mapping::entry& e, std::string_view key) {
  millis_distribution d;
  auto check = [&](double value, int line, std::string_view what) {
    if (value < 0 || value > max_millis)
      throw plan_error{line, fmt::format("{} must be between 0 and {} ms, got {}", what,
                                         max_latency.count(), value)};
    return value;
  };
  if (e.value.IsScalar()) {
    d.first = check(number(e.value, e.line, key), e.line, key);
    return d;
  }
  auto m = read_mapping(e.value, e.line, key, {"uniform", "normal"});
  if (m.entries.size() != 1)
    throw plan_error{e.line, fmt::format("{} takes one of uniform or normal", key)};
  const auto& [kind, spec] = m.entries.front();
  if (kind == "uniform") {
    if (!spec.value.IsSequence() || spec.value.size() != 2)
      throw plan_error{spec.line, fmt::format("{}.uniform must be [low, high]", key)};
    d.kind = millis_distribution::shape::uniform;
    d.first = check(number(spec.value[0], spec.line, key), spec.line, key);
    d.second = check(number(spec.value[1], spec.line, key), spec.line, key);
    if (d.first > d.second)
      throw plan_error{spec.line,
                       fmt::format("{}.uniform: low {} is above high {}", key, d.first, d.second)};
  } else {
    auto n = read_mapping(spec.value, spec.line, fmt::format("{}.normal", key), {"mean", "stddev"});
    auto mean = n.find("mean");
    auto stddev = n.find("stddev");
    if (!mean || !stddev)
      throw plan_error{spec.line, fmt::format("{}.normal needs mean and stddev", key)};
    d.kind = millis_distribution::shape::normal;
    d.first = check(number(mean->value, mean->line, "mean"), mean->line, "mean");
    d.second = check(number(stddev->value, stddev->line, "stddev"), stddev->line, "stddev");
  }
  return d;
}

constexpr std::array<std::pair<std::string_view, error_kind>, 7> error_names = {{
    {"bad_request", error_kind::bad_request},
    {"model_not_found", error_kind::model_not_found},
    {"internal", error_kind::internal},
    {"busy", error_kind::busy},
    {"loading", error_kind::loading},
    {"rate_limited", error_kind::rate_limited},
    {"context_too_long", error_kind::context_too_long},
}};

endpoint endpoint_named(const mapping::entry& e) {
  auto path = text(e, "endpoint");
  for (size_t i = 0; i + 1 < endpoint_count; ++i) {
    auto candidate = static_cast<endpoint>(i);
    if (to_string(candidate) == path) {
      if (is_control(candidate))
        throw plan_error{e.line, fmt::format("endpoint {} is the fake's own; plans cannot "
                                             "break it",
                                             path)};
      return candidate;
    }
  }
  throw plan_error{e.line, fmt::format("unknown endpoint \"{}\" (known: /, /api/chat, "
                                       "/api/generate, /api/tags, /api/version, /api/ps, "
                                       "/api/pull, /v1/chat/completions, /v1/models, /health)",
                                       path)};
}

api_family api_of(endpoint e) {
  return e == endpoint::completions || e == endpoint::models || e == endpoint::health
             ? api_family::openai
             : api_family::ollama;
}

bool is_generation(endpoint e) {
  return e == endpoint::chat || e == endpoint::generate || e == endpoint::completions;
}

plan_match read_match(const YAML::Node& node, int line) {
  auto m = read_mapping(node, line, "a match",
                        {"api", "endpoint", "model", "prompt", "min_prompt_tokens", "attempt",
                         "nth", "every", "after", "probability"});
  plan_match result;
  auto count = [](std::string_view key) {
    return [key](const mapping::entry& e) {
      return static_cast<uint64_t>(integer(e, key, 1, 1'000'000'000));
    };
  };
  for (const auto& [key, e] : m.entries) {
    if (key == "api") {
      auto name = text(e, key);
      if (name != "ollama" && name != "openai")
        throw plan_error{e.line, fmt::format("api must be ollama or openai, got \"{}\"", name)};
      result.api = name == "ollama" ? api_family::ollama : api_family::openai;
    } else if (key == "endpoint") {
      result.endpoints = one_or_many<endpoint>(e, endpoint_named);
    } else if (key == "model") {
      result.models = one_or_many<std::string>(
          e, [](const mapping::entry& item) { return text(item, "model"); });
    } else if (key == "prompt") {
      auto pattern = text(e, key);
      auto compiled = std::make_shared<const re2::RE2>(pattern, re2::RE2::Quiet);
      if (!compiled->ok())
        throw plan_error{e.line, fmt::format("prompt: invalid regular expression \"{}\": {}",
                                             pattern, compiled->error())};
      result.prompt = std::move(compiled);
    } else if (key == "min_prompt_tokens") {
      result.min_prompt_tokens = count("min_prompt_tokens")(e);
    } else if (key == "attempt") {
      result.attempts = one_or_many<uint64_t>(e, count("attempt"));
    } else if (key == "nth") {
      result.nth = one_or_many<uint64_t>(e, count("nth"));
    } else if (key == "every") {
      result.every = count("every")(e);
    } else if (key == "after") {
      result.after = count("after")(e);
    } else if (key == "probability") {
      result.probability = number(e.value, e.line, key);
      if (result.probability < 0 || result.probability > 1)
        throw plan_error{
            e.line, fmt::format("probability must be between 0 and 1, got {}", result.probability)};
    }
  }
  for (auto target : result.endpoints)
    if (result.api && api_of(target) != *result.api)
      throw plan_error{m.line,
                       fmt::format("endpoint {} belongs to the other API than api: {}, "
                                   "so the rule could never match",
                                   to_string(target),
                                   *result.api == api_family::ollama ? "ollama" : "openai")};
  return result;
}

// The keys that decide the shape of the response; an action may have one.
constexpr std::array<std::string_view, 8> shape_keys = {"status",
                                                        "error",
                                                        "hang",
                                                        "drop_after",
                                                        "truncate_after",
                                                        "malformed",
                                                        "midstream_error_after",
                                                        "loading_ms"};

plan_action read_action(const YAML::Node& node, int line, const std::vector<endpoint>& endpoints) {
  auto m = read_mapping(node, line, "an action",
                        {"status", "error", "message", "retry_after_s", "latency_ms",
                         "first_token_delay_ms", "token_delay_ms", "hang", "drop_after",
                         "truncate_after", "malformed", "midstream_error_after", "loading_ms"});
  plan_action result;
  std::string shape; // the key that set the response's shape
  auto set_shape = [&](const std::string& key, int key_line, response_kind kind) {
    // `status` and `error` together describe one error response.
    bool both_error =
        (shape == "status" && key == "error") || (shape == "error" && key == "status");
    if (!shape.empty() && !both_error)
      throw plan_error{key_line, fmt::format("an action has one response shape, but this one has "
                                             "both {} and {}",
                                             shape, key)};
    if (shape.empty())
      shape = key;
    result.response = kind;
  };
  auto chunks = [&](const mapping::entry& e, const std::string& key) {
    return static_cast<size_t>(integer(e, key, 0, 1'000'000));
  };
  bool has_status = false;
  for (const auto& [key, e] : m.entries) {
    if (key == "status") {
      set_shape(key, e.line, response_kind::error);
      result.status = static_cast<uint16_t>(integer(e, key, 400, 599));
      has_status = true;
    } else if (key == "error") {
      set_shape(key, e.line, response_kind::error);
      auto name = text(e, key);
      auto found = std::find_if(error_names.begin(), error_names.end(),
                                [&](const auto& entry) { return entry.first == name; });
      if (found == error_names.end())
        throw plan_error{e.line, fmt::format("unknown error \"{}\" (known: bad_request, "
                                             "model_not_found, internal, busy, loading, "
                                             "rate_limited, context_too_long)",
                                             name)};
      result.error = found->second;
    } else if (key == "message") {
      result.message = text(e, key);
    } else if (key == "retry_after_s") {
      result.retry_after = std::chrono::seconds{integer(e, key, 0, max_retry_after.count())};
    } else if (key == "latency_ms") {
      result.latency = distribution(e, key);
    } else if (key == "first_token_delay_ms") {
      result.first_token_delay = distribution(e, key);
    } else if (key == "token_delay_ms") {
      result.token_delay = distribution(e, key);
    } else if (key == "hang" || key == "malformed") {
      if (boolean(e, key))
        set_shape(key, e.line, key == "hang" ? response_kind::hang : response_kind::malformed);
    } else if (key == "drop_after" || key == "truncate_after" || key == "midstream_error_after") {
      set_shape(key, e.line,
                key == "drop_after"       ? response_kind::drop
                : key == "truncate_after" ? response_kind::truncate
                                          : response_kind::midstream_error);
      result.chunks_before_break = chunks(e, key);
    } else if (key == "loading_ms") {
      set_shape(key, e.line, response_kind::error);
      result.loading = std::chrono::milliseconds{integer(e, key, 1, max_latency.count())};
    }
  }
  if (result.response == response_kind::error) {
    auto from_error = m.find("error") != nullptr;
    if (!has_status)
      result.status = default_status(result.error);
    else if (!from_error)
      result.error = error_kind_for_status(result.status);
  }
  auto reject = [&](std::string_view key, std::string_view why) {
    if (auto e = m.find(key))
      throw plan_error{e->line, fmt::format("{} {}", key, why)};
  };
  bool errors = result.response == response_kind::error;
  if (!errors && result.response != response_kind::midstream_error)
    reject("message", "only words an error (status, error, loading_ms, midstream_error_after)");
  if (!errors)
    reject("retry_after_s", "only goes with an error response (status, error or loading_ms)");
  if (errors || result.response == response_kind::hang) {
    reject("first_token_delay_ms", "slows a stream; it has no effect on this response");
    reject("token_delay_ms", "slows a stream; it has no effect on this response");
  }
  // The fixed answers of the other endpoints have no stream to break.
  bool fixed_only =
      !endpoints.empty() && std::none_of(endpoints.begin(), endpoints.end(), is_generation);
  if (fixed_only && !errors && result.response != response_kind::hang &&
      result.response != response_kind::answer)
    throw plan_error{m.find(shape)->line,
                     fmt::format("{} needs a generation endpoint (/api/chat, /api/generate, "
                                 "/v1/chat/completions)",
                                 shape)};
  if (fixed_only) {
    reject("first_token_delay_ms", "needs a generation endpoint");
    reject("token_delay_ms", "needs a generation endpoint");
  }
  return result;
}

plan_rule read_rule(const YAML::Node& node, size_t index, int fallback_line) {
  auto m = read_mapping(node, fallback_line, fmt::format("rule {}", index + 1),
                        {"name", "match", "action"});
  plan_rule rule;
  rule.line = m.line;
  rule.name = fmt::format("rule {}", index + 1);
  if (auto name = m.find("name"))
    rule.name = text(*name, "name");
  if (auto match = m.find("match"); match && !match->value.IsNull())
    rule.match = read_match(match->value, match->line);
  auto action = m.find("action");
  if (!action)
    throw plan_error{m.line, fmt::format("{} needs an action", rule.name)};
  if (!action->value.IsNull())
    rule.action = read_action(action->value, action->line, rule.match.endpoints);
  return rule;
}

fault_plan read_plan(const YAML::Node& root, std::string_view source) {
  if (!root.IsDefined() || root.IsNull())
    throw plan_error{1, "the plan is empty; it needs \"rules\" (a list, possibly empty)"};
  auto m = read_mapping(root, 1, "the plan", {"description", "rules"});
  fault_plan plan;
  plan.source = std::string{source};
  if (auto description = m.find("description"))
    plan.description = text(*description, "description");
  auto rules = m.find("rules");
  if (!rules)
    throw plan_error{m.line, "the plan needs \"rules\" (a list, possibly empty)"};
  if (!rules->value.IsNull()) {
    if (!rules->value.IsSequence())
      throw plan_error{rules->line, "rules must be a list"};
    std::set<std::string> names;
    for (const auto& node : rules->value) {
      auto rule = read_rule(node, plan.rules.size(), rules->line);
      if (!names.insert(rule.name).second)
        throw plan_error{rule.line, fmt::format("two rules are named \"{}\"", rule.name)};
      plan.rules.push_back(std::move(rule));
    }
  }
  return plan;
}

} // namespace

plan_parse_result parse_fault_plan(std::string_view text, std::string_view source) {
  plan_parse_result result;
  try {
    result.plan = read_plan(YAML::Load(std::string{text}), source);
  } catch (const plan_error& e) {
    result.error = fmt::format("{}:{}: {}", source, e.line, e.reason);
  } catch (const YAML::Exception& e) {
    result.error = e.mark.line >= 0 ? fmt::format("{}:{}: {}", source, e.mark.line + 1, e.msg)
                                    : fmt::format("{}: {}", source, e.msg);
  }
  return result;
}

} // namespace offload::fakellm
