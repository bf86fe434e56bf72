// Parsing and validation of policy files (see policy.hpp for the two forms). Validation follows
// Intercept v1.1.0's checks and wording so an operator moving a file between the two tools reads
// the same complaints; every message also carries the line it is about.

#include "protocol/policy.hpp"

#include <fmt/format.h>
#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace offload {

namespace {

// yaml-cpp marks are 0-based and -1 when unknown; messages use 1-based lines.
int line_of(const YAML::Node& node, int fallback) {
  return node.Mark().line >= 0 ? node.Mark().line + 1 : fallback;
}

// A YAML mapping being read: its values by key with the key's line (errors about a value point
// at its key, because yaml-cpp puts an empty value on the following line), and where it sits.
struct mapping {
  struct entry {
    YAML::Node value;
    int line = 0;
  };
  std::map<std::string, entry, std::less<>> entries;
  std::string where; // e.g. "tools.t.rules[0]", for messages
  int line = 0;

  bool contains(std::string_view key) const { return entries.find(key) != entries.end(); }
  bool has(std::string_view key) const { return contains(key) && !value(key).IsNull(); }
  const YAML::Node& value(std::string_view key) const { return entries.find(key)->second.value; }
  int line_of(std::string_view key) const {
    return contains(key) ? entries.find(key)->second.line : line;
  }
};

template <class T>
std::optional<T> named(std::string_view text,
                       std::initializer_list<std::pair<std::string_view, T>> names) {
  for (auto [name, value] : names)
    if (name == text)
      return value;
  return std::nullopt;
}

std::optional<fixed_window> fixed_window_named(std::string_view text) {
  return named<fixed_window>(
      text,
      {{"minute", fixed_window::minute}, {"hour", fixed_window::hour}, {"day", fixed_window::day}});
}

std::vector<std::string> split_path(std::string_view text) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot; (dot = text.find('.', start)) != std::string_view::npos; start = dot + 1)
    parts.emplace_back(text.substr(start, dot - start));
  parts.emplace_back(text.substr(start));
  return parts;
}

// Scalars are typed the way yaml.v3 types them when decoding into Go's `any`: quoted and block
// scalars and explicit !!str stay strings; plain ones become booleans (YAML 1.2 spellings only,
// so `yes` stays a string), integers, floats (.inf and .nan included), else strings. yaml-cpp's
// number conversions match yaml.v3's except that `1_000` and `0o17` stay strings.
json to_json(const YAML::Node& node) {
  if (node.IsScalar()) {
    const auto& text = node.Scalar();
    if (node.Tag() == "!" || node.Tag().ends_with(":str"))
      return text;
    if (auto boolean = named<bool>(text, {{"true", true},
                                          {"True", true},
                                          {"TRUE", true},
                                          {"false", false},
                                          {"False", false},
                                          {"FALSE", false}}))
      return *boolean;
    int64_t integer = 0;
    double number = 0;
    if (YAML::convert<int64_t>::decode(node, integer))
      return integer;
    if (YAML::convert<double>::decode(node, number))
      return number;
    return text;
  }
  json out = node.IsSequence() ? json::array() : node.IsMap() ? json::object() : json{};
  for (const auto& item : node) {
    if (node.IsSequence())
      out.push_back(to_json(item));
    else
      out[item.first.Scalar()] = to_json(item.second);
  }
  return out;
}

// How a rolling window reads in the default denial message.
std::string window_words(std::chrono::seconds length) {
  auto word = named<std::string_view>(
      std::to_string(length.count()),
      {{"1", "second"}, {"60", "minute"}, {"3600", "hour"}, {"86400", "day"}});
  return word ? std::string{*word} : fmt::format("{} seconds", length.count());
}

// Go's int64(float64) truncates toward zero; clamp so absurd limits cannot overflow.
int64_t truncate_to_int64(const json& number) {
  if (number.is_number_integer())
    return number.get<int64_t>();
  double value = number.get<double>();
  constexpr double bound = 9.2e18;
  return std::isnan(value) ? 0 : static_cast<int64_t>(std::clamp(std::trunc(value), -bound, bound));
}

constexpr auto needs_version = "is Intercept syntax, but this file has no version; add "
                               "version: \"1\" at the top to use it";

class policy_parser {
public:
  explicit policy_parser(std::string_view source)
      : source_(source) {}

  policy_parse_result run(std::string_view text) {
    try {
      parse_document(YAML::Load(std::string{text}));
    } catch (const YAML::Exception& e) {
      fail(e.mark.line >= 0 ? e.mark.line + 1 : 1, "", "YAML syntax error: {}", e.msg);
    }
    policy_parse_result out;
    if (errors_.empty())
      out.value = std::make_shared<const policy>(std::move(policy_));
    // Problems are found rule by rule, then across rules; people read them top to bottom.
    for (auto [from, to] : {std::pair{&errors_, &out.errors}, {&warnings_, &out.warnings}}) {
      std::stable_sort(from->begin(), from->end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [line, text] : *from)
        to->push_back(std::move(text));
    }
    return out;
  }

private:
  // "<source>:<line>: <where>: <reason>"; `where` names the spot, e.g. "tools.t.rules[0]".
  template <class... Ts>
  void fail(int line, std::string_view where, fmt::format_string<Ts...> reason, Ts&&... args) {
    errors_.emplace_back(line, fmt::format("{}:{}: {}{}{}", source_, line, where,
                                           where.empty() ? "" : ": ",
                                           fmt::format(reason, std::forward<Ts>(args)...)));
  }

  template <class... Ts>
  void warn(int line, std::string_view where, fmt::format_string<Ts...> reason, Ts&&... args) {
    warnings_.emplace_back(line, fmt::format("{}:{}: warning: {}: {}", source_, line, where,
                                             fmt::format(reason, std::forward<Ts>(args)...)));
  }

  // Duplicate keys are errors (yaml.v3 rejects them too); keys outside `known` are ignored as
  // Intercept does, with a warning so typos get noticed.
  mapping read(const YAML::Node& node, std::string where,
               std::initializer_list<std::string_view> known, bool warn_unknown = true) {
    mapping out{{}, std::move(where), line_of(node, 1)};
    for (const auto& kv : node) {
      int line = line_of(kv.first, out.line);
      const std::string& key = kv.first.Scalar();
      auto [it, inserted] = out.entries.try_emplace(key, mapping::entry{kv.second, line});
      if (!inserted)
        fail(line, out.where, "key \"{}\" appears twice (first at line {})", key, it->second.line);
      else if (warn_unknown && std::find(known.begin(), known.end(), key) == known.end())
        warn(line, out.where, "unknown key \"{}\" is ignored", key);
    }
    return out;
  }

  // A string field; absent or null reads as "" (as in Go), a list or mapping is an error.
  std::string text(const mapping& m, std::string_view key) {
    if (!m.has(key))
      return {};
    if (m.value(key).IsScalar())
      return m.value(key).Scalar();
    fail(m.line_of(key), m.where, "{} must be a string", key);
    return {};
  }

  void parse_document(const YAML::Node& root) {
    if (!root.IsDefined() || root.IsNull())
      return fail(1, "", "the policy is empty; expected version: \"1\" and tools");
    if (!root.IsMap())
      return fail(line_of(root, 1), "", "the policy must be a mapping (version, tools, ...)");
    auto top = read(root, "policy", {"version", "description", "default", "hide", "tools"});
    policy_.form = top.contains("version") ? policy_form::intercept : policy_form::seed;
    auto version = text(top, "version");
    if (policy_.form == policy_form::intercept && version != "1")
      fail(top.line_of("version"), "", "version must be \"1\", got \"{}\"", version);
    if (policy_.form == policy_form::seed && !top.contains("tools"))
      fail(1, "",
           "no version and no tools: neither an Intercept policy (version: \"1\") nor the "
           "seed form (tools with rate_limit: {{max, window}})");
    policy_.description = text(top, "description");
    auto fallback = text(top, "default");
    policy_.default_deny = fallback == "deny";
    if (!fallback.empty() && fallback != "allow" && fallback != "deny")
      fail(top.line_of("default"), "", "default must be \"allow\" or \"deny\", got \"{}\"",
           fallback);
    if (top.has("hide"))
      parse_hide(top.value("hide"), top.line_of("hide"));
    if (top.has("tools"))
      parse_tools(top.value("tools"), top.line_of("tools"));
    check_duplicate_counters();
    resolve_state_paths();
    derive_limits();
  }

  void parse_hide(const YAML::Node& hide, int line) {
    if (!hide.IsSequence())
      return fail(line, "hide", "must be a list of tool names");
    size_t index = 0;
    for (const auto& entry : hide) {
      auto where = fmt::format("hide[{}]", index++);
      std::string name = entry.IsScalar() ? entry.Scalar() : "";
      if (!entry.IsNull() && !entry.IsScalar())
        fail(line_of(entry, line), where, "must be a tool name");
      else if (name.find_first_not_of(" \t\r\n") == std::string::npos)
        fail(line_of(entry, line), where, "entry must not be empty");
      else if (std::find(policy_.hide.begin(), policy_.hide.end(), name) != policy_.hide.end())
        fail(line_of(entry, line), "hide", "duplicate entry \"{}\"", name);
      else
        policy_.hide.push_back(name);
    }
  }

  void parse_tools(const YAML::Node& tools, int line) {
    if (!tools.IsMap())
      return fail(line, "tools", "must be a mapping of tool names to {{rules: [...]}}");
    using namespace std::string_view_literals;
    // The same keys for both forms: the seed form answers conditions and state with an error.
    const auto rule_keys = {"name"sv,    "action"sv, "rate_limit"sv, "conditions"sv,
                            "on_deny"sv, "state"sv,  "scope"sv};
    auto listed = read(tools, "tools", {}, false);
    for (const auto& [name, entry] : listed.entries) {
      auto& rules = policy_.tools[name]; // listed even with no rules: `default: deny` allows it
      auto where = fmt::format("tools.{}", name);
      if (!entry.value.IsNull() && !entry.value.IsMap())
        fail(entry.line, where, "must be a mapping with rules");
      if (!entry.value.IsMap())
        continue;
      auto tool = read(entry.value, where, {"rules"});
      if (tool.has("rules") && !tool.value("rules").IsSequence())
        fail(tool.line_of("rules"), where, "rules must be a list");
      if (!tool.has("rules") || !tool.value("rules").IsSequence())
        continue;
      size_t index = 0;
      for (const auto& node : tool.value("rules")) {
        auto rule_where = fmt::format("{}.rules[{}]", where, index++);
        if (!node.IsMap())
          fail(line_of(node, tool.line_of("rules")), rule_where, "a rule must be a mapping");
        else if (policy_.form == policy_form::intercept)
          rules.push_back(parse_intercept_rule(name, read(node, rule_where, rule_keys)));
        else
          rules.push_back(parse_seed_rule(name, read(node, rule_where, rule_keys)));
      }
    }
  }

  counter_scope parse_scope(const mapping& rule) {
    auto scope_text = text(rule, "scope");
    auto scope = named<counter_scope>(scope_text, {{"", counter_scope::global},
                                                   {"global", counter_scope::global},
                                                   {"agent", counter_scope::agent},
                                                   {"session", counter_scope::session}});
    if (!scope)
      fail(rule.line_of("scope"), rule.where,
           "scope must be \"global\", \"agent\" or \"session\", got \"{}\"", scope_text);
    return scope.value_or(counter_scope::global);
  }

  // Both rate_limit forms become an evaluate rule with one `lte` condition on a generated
  // counter, exactly as Intercept desugars its string form.
  static void desugar_rate_limit(policy_rule& rule, std::string_view tool, int64_t count,
                                 counter_window window, std::string counter, std::string_view per) {
    policy_condition limit;
    limit.state_owner = tool == "*" ? "_global" : std::string{tool};
    limit.path = fmt::format("state.{}.{}", limit.state_owner, counter);
    limit.reads_state = true;
    limit.state_counter = counter;
    limit.op = condition_op::lte;
    limit.value = count;
    limit.line = rule.line;
    rule.action = rule_action::evaluate;
    rule.conditions = {std::move(limit)};
    rule.counter = counter_spec{};
    rule.counter->name = std::move(counter);
    rule.counter->window = window;
    if (rule.on_deny.empty())
      rule.on_deny = fmt::format("Rate limit of {} per {} reached. Try again later.", count, per);
  }

  policy_rule parse_intercept_rule(std::string_view tool, const mapping& m) {
    policy_rule rule{text(m, "name"), rule_action::evaluate, {}, text(m, "on_deny"), {}, m.line};
    bool rate_limited = m.has("rate_limit");
    bool conditions = m.has("conditions");
    size_t written_conditions =
        conditions && m.value("conditions").IsSequence() ? m.value("conditions").size() : 0;
    auto action = text(m, "action");
    if (action == "deny")
      rule.action = rule_action::deny;
    else if (!action.empty() && action != "evaluate" && rate_limited)
      // Intercept's desugaring overwrites any other action, so such files load there too.
      warn(m.line_of("action"), m.where,
           "action \"{}\" is ignored: a rate_limit rule is an evaluate rule (as in Intercept)",
           action);
    else if (action == "allow")
      fail(m.line_of("action"), m.where,
           "action \"allow\" is not part of Intercept v1.1.0; use an evaluate rule, or remove "
           "version: \"1\" to use the seed form {{action: allow, rate_limit: {{max, window}}}}");
    else if (!action.empty() && action != "evaluate")
      fail(m.line_of("action"), m.where, "action must be \"evaluate\" or \"deny\", got \"{}\"",
           action);
    auto scope = parse_scope(m);
    if (rate_limited) {
      parse_rate_limit_string(rule, tool, m, conditions || m.has("state"));
    } else {
      if (conditions)
        parse_conditions(rule, m);
      if (m.has("state"))
        rule.counter = parse_state(m.value("state"), m.where + ".state", m.line_of("state"));
    }
    if (rule.name.empty())
      fail(rule.line, m.where, "rule must have a name");
    if (rule.action == rule_action::deny && written_conditions > 0)
      fail(rule.line, m.where, "deny rules must not have conditions");
    if (rule.action == rule_action::evaluate && !rate_limited && written_conditions == 0)
      fail(rule.line, m.where, "evaluate rules must have at least one condition");
    apply_scope(rule, scope, m);
    return rule;
  }

  void parse_rate_limit_string(policy_rule& rule, std::string_view tool, const mapping& m,
                               bool combined) {
    int line = m.line_of("rate_limit");
    const auto& rate = m.value("rate_limit");
    if (!rate.IsScalar())
      return fail(line, m.where, "{}",
                  rate.IsMap()
                      ? "rate_limit {max, window} is the seed form, accepted only in files without "
                        "version; with version: \"1\" write rate_limit: \"N/minute\" (or hour, day)"
                      : "rate_limit must be a string like \"5/hour\"");
    if (combined)
      fail(line, m.where,
           "rate_limit cannot be combined with conditions or state; use separate "
           "rules or the full syntax instead");
    if (rule.action == rule_action::deny)
      fail(line, m.where, "rate_limit cannot be used with action \"deny\"");
    const std::string& spec = rate.Scalar();
    auto slash = spec.find('/');
    if (slash == std::string::npos)
      return fail(line, m.where,
                  "rate_limit must be in the format \"N/window\" (e.g. \"5/hour\"), got \"{}\"",
                  spec);
    std::string_view count_text = std::string_view{spec}.substr(0, slash);
    // Go's Atoi: decimal digits with an optional sign.
    std::string_view digits = count_text.starts_with('+') ? count_text.substr(1) : count_text;
    int64_t count = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
    bool ok = !combined && rule.action != rule_action::deny;
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || count <= 0) {
      fail(line, m.where, "rate_limit count must be a positive integer, got \"{}\"", count_text);
      ok = false;
    }
    auto window_text = spec.substr(slash + 1);
    auto window = fixed_window_named(window_text);
    if (!window) {
      fail(line, m.where, "rate_limit window must be \"minute\", \"hour\", or \"day\", got \"{}\"",
           window_text);
      ok = false;
    }
    if (ok)
      desugar_rate_limit(rule, tool, count, *window, "_rate_" + window_text, window_text);
  }

  policy_rule parse_seed_rule(std::string_view tool, const mapping& m) {
    // A rule without a name is named after where it is, so denials can still point at it.
    policy_rule rule{text(m, "name"), rule_action::evaluate, {}, text(m, "on_deny"), {}, m.line};
    if (rule.name.empty())
      rule.name = m.where;
    for (std::string_view key : {"conditions", "state"})
      if (m.contains(key))
        fail(m.line_of(key), m.where, "{} {}", key, needs_version);
    auto action = text(m, "action");
    if (action == "evaluate" || action == "deny")
      fail(m.line_of("action"), m.where, "action \"{}\" {}", action, needs_version);
    else if (!action.empty() && action != "allow")
      fail(m.line_of("action"), m.where,
           "action must be \"allow\" in a file without version, got \"{}\"", action);
    auto scope = parse_scope(m);
    if (m.has("rate_limit") && m.value("rate_limit").IsMap())
      parse_rate_limit_map(rule, tool,
                           read(m.value("rate_limit"), m.where + ".rate_limit", {"max", "window"}));
    else if (m.has("rate_limit"))
      fail(m.line_of("rate_limit"), m.where,
           "rate_limit \"N/window\" {}; or write rate_limit: {{max: N, window: SECONDS}}",
           needs_version);
    apply_scope(rule, scope, m);
    return rule;
  }

  void parse_rate_limit_map(policy_rule& rule, std::string_view tool, const mapping& m) {
    auto positive = [&](std::string_view key, std::string_view meaning) -> std::optional<int64_t> {
      auto value = m.has(key) ? to_json(m.value(key)) : json{};
      if (value.is_number_integer() && value.get<int64_t>() > 0)
        return value.get<int64_t>();
      fail(m.line_of(key), fmt::format("{}.{}", m.where, key), "must be a positive integer ({})",
           meaning);
      return std::nullopt;
    };
    auto max = positive("max", "calls per window");
    auto window = positive("window", "seconds");
    if (!max || !window)
      return;
    std::chrono::seconds length{*window};
    desugar_rate_limit(rule, tool, *max, rolling_window{length}, fmt::format("_rate_{}s", *window),
                       window_words(length));
  }

  void apply_scope(policy_rule& rule, counter_scope scope, const mapping& m) {
    if (rule.counter)
      rule.counter->scope = scope;
    else if (m.has("scope"))
      warn(m.line_of("scope"), m.where, "scope has no effect on a rule without a counter");
  }

  void parse_conditions(policy_rule& rule, const mapping& m) {
    const auto& list = m.value("conditions");
    if (!list.IsSequence())
      return fail(m.line_of("conditions"), m.where, "conditions must be a list");
    size_t index = 0;
    for (const auto& node : list) {
      auto where = fmt::format("{}.conditions[{}]", m.where, index++);
      if (node.IsMap())
        rule.conditions.push_back(parse_condition(read(node, where, {"path", "op", "value"})));
      else
        fail(line_of(node, m.line_of("conditions")), where,
             "must be a mapping {{path, op, value}}");
    }
  }

  policy_condition parse_condition(const mapping& m) {
    policy_condition cond;
    cond.line = m.line;
    cond.path = text(m, "path");
    if (m.contains("value"))
      cond.value = to_json(m.value("value"));
    std::string_view path = cond.path;
    auto dot = path.find('.', 6); // splits state.<tool>.<counter>; the counter may hold dots
    cond.reads_state = path.starts_with("state.");
    if (path.starts_with("args."))
      cond.arg_path = split_path(path.substr(5));
    else if (!cond.reads_state)
      fail(cond.line, m.where, "path must start with \"args.\" or \"state.\", got \"{}\"", path);
    else if (dot == std::string_view::npos || dot == 6 || dot + 1 == path.size())
      fail(cond.line, m.where, "state paths are state.<tool>.<counter>, got \"{}\"", path);
    else {
      cond.state_owner = path.substr(6, dot - 6);
      cond.state_counter = path.substr(dot + 1);
    }
    auto op_text = text(m, "op");
    constexpr std::string_view op_names[] = {"eq", "neq", "in",    "not_in",   "lt",    "lte",
                                             "gt", "gte", "regex", "contains", "exists"};
    static_assert(std::size(op_names) == static_cast<size_t>(condition_op::exists) + 1);
    auto op = std::find(std::begin(op_names), std::end(op_names), op_text);
    if (op == std::end(op_names)) {
      fail(m.line_of("op"), m.where, "unknown operator \"{}\"", op_text);
      return cond;
    }
    cond.op = static_cast<condition_op>(op - std::begin(op_names)); // names in enum order
    using enum condition_op;
    int line = m.line_of("value");
    if ((cond.op == in || cond.op == not_in) && !cond.value.is_array())
      fail(line, m.where, "operator \"{}\" requires a list value", op_text);
    if ((cond.op == lt || cond.op == lte || cond.op == gt || cond.op == gte) &&
        !cond.value.is_number())
      fail(line, m.where, "operator \"{}\" requires a numeric value", op_text);
    if (cond.op == exists && !cond.value.is_boolean())
      fail(line, m.where, "operator \"exists\" requires a boolean value");
    if (cond.op == regex)
      cond.regex = compile_regex(cond.value, m.where, line);
    return cond;
  }

  std::shared_ptr<const RE2> compile_regex(const json& value, std::string_view where, int line) {
    if (!value.is_string()) {
      fail(line, where, "regex value must be a string");
      return nullptr;
    }
    RE2::Options options;
    options.set_log_errors(false); // the error is reported with its line instead
    auto compiled = std::make_shared<const RE2>(value.get<std::string>(), options);
    if (compiled->ok())
      return compiled;
    fail(line, where, "invalid regex \"{}\": {}", value.get<std::string>(), compiled->error());
    return nullptr;
  }

  std::optional<counter_spec> parse_state(const YAML::Node& node, std::string where, int line) {
    if (!node.IsMap()) {
      fail(line, where, "must be a mapping {{counter, window}}");
      return std::nullopt;
    }
    auto m = read(node, std::move(where), {"counter", "window", "increment", "increment_from"});
    counter_spec spec;
    spec.name = text(m, "counter");
    if (spec.name.empty())
      fail(m.line_of("counter"), m.where, "counter must not be empty");
    auto window_text = text(m, "window");
    auto window = fixed_window_named(window_text);
    spec.window = window.value_or(fixed_window::minute);
    if (!window)
      fail(m.line_of("window"), m.where,
           "window must be \"minute\", \"hour\", or \"day\", got \"{}\"", window_text);
    if (m.has("increment")) {
      auto increment = to_json(m.value("increment"));
      if (!increment.is_number_integer())
        fail(m.line_of("increment"), m.where, "increment must be an integer");
      else if (increment.get<int64_t>() != 0) // Intercept reads 0 as "not set", so 1
        spec.increment = increment.get<int64_t>();
      if (spec.increment < 0)
        warn(m.line_of("increment"), m.where,
             "a negative increment lowers the counter on every call");
    }
    spec.increment_from = text(m, "increment_from");
    if (!spec.increment_from.empty() && !spec.increment_from.starts_with("args."))
      fail(m.line_of("increment_from"), m.where,
           "increment_from must start with \"args.\", got \"{}\"", spec.increment_from);
    else if (!spec.increment_from.empty())
      spec.increment_path = split_path(std::string_view{spec.increment_from}.substr(5));
    return spec;
  }

  // Counters are named per tool, so two rules of one tool may not share one.
  void check_duplicate_counters() {
    for (const auto& [tool, rules] : policy_.tools) {
      std::map<std::string, int> first_line;
      for (const auto& rule : rules) {
        if (!rule.counter)
          continue;
        auto [it, inserted] = first_line.try_emplace(rule.counter->name, rule.line);
        if (!inserted)
          fail(rule.line, fmt::format("tools.{}", tool),
               "duplicate state counter \"{}\" (also used by the rule at line {})",
               rule.counter->name, it->second);
      }
    }
  }

  // The rule declaring a counter; "_global" means the "*" rules unless a tool has that name.
  const policy_rule* declaring_rule(std::string_view owner, std::string_view counter) const {
    auto tool = policy_.tools.find(owner);
    if (tool == policy_.tools.end() && owner == "_global")
      tool = policy_.tools.find("*");
    if (tool == policy_.tools.end())
      return nullptr;
    for (const auto& rule : tool->second)
      if (rule.counter && rule.counter->name == counter)
        return &rule;
    return nullptr;
  }

  // A state path reads its counter under the scope of the rule that declares it.
  void resolve_state_paths() {
    for (auto& [tool, rules] : policy_.tools)
      for (size_t index = 0; index < rules.size(); ++index)
        for (auto& cond : rules[index].conditions) {
          if (!cond.reads_state || cond.state_counter.empty())
            continue;
          if (const auto* owner = declaring_rule(cond.state_owner, cond.state_counter))
            cond.state_scope = owner->counter->scope;
          else
            fail(cond.line, fmt::format("tools.{}.rules[{}]", tool, index),
                 "condition references state.{}.{} but no matching state block found",
                 cond.state_owner, cond.state_counter);
        }
  }

  // Like Intercept, the first `lte N` / `lt N` on the rule's own counter sets its limit.
  void derive_limits() {
    for (auto& [tool, rules] : policy_.tools) {
      std::string owner = tool == "*" ? "_global" : tool;
      for (auto& rule : rules) {
        if (!rule.counter || rule.counter->name.empty())
          continue;
        for (const auto& cond : rule.conditions) {
          bool own = cond.reads_state && cond.state_owner == owner &&
                     cond.state_counter == rule.counter->name && cond.value.is_number();
          if (own && (cond.op == condition_op::lte || cond.op == condition_op::lt)) {
            rule.counter->limit =
                truncate_to_int64(cond.value) - (cond.op == condition_op::lt ? 1 : 0);
            break;
          }
        }
        if (!rule.counter->limit)
          warn(rule.line, fmt::format("tools.{}", tool),
               "rule \"{}\" has no lte/lt condition on state.{}.{}, so its counter never "
               "counts (as in Intercept)",
               rule.name, owner, rule.counter->name);
      }
    }
  }

  std::string_view source_;
  policy policy_;
  std::vector<std::pair<int, std::string>> errors_; // with their lines, for sorting
  std::vector<std::pair<int, std::string>> warnings_;
};

} // namespace

policy_parse_result parse_policy(std::string_view yaml_text, std::string_view source) {
  return policy_parser{source}.run(yaml_text);
}

} // namespace offload
