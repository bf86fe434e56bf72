// Evaluation of a parsed policy for one tools/call, and the small pure helpers around it
// (counter keys, UTC windows, the denial result, the tools/list filter). The semantics are
// Intercept v1.1.0's, including its quirks, so a policy decides the same here as there.

#include "protocol/policy.hpp"

#include <fmt/format.h>
#include <re2/re2.h>

#include <charconv>
#include <cmath>
#include <limits>

namespace offload {

namespace {

// --- Go's %v rendering, which Intercept's eq falls back to when a side is not a number -----

// Go prints a float64 with the fewest digits that round-trip, switching to exponent form when
// the decimal exponent is below -4 or at least 6 (so 1e6 prints as "1e+06").
std::string go_float_text(double value) {
  if (std::isnan(value))
    return "NaN";
  if (std::isinf(value))
    return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto end =
      std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific).ptr;
  std::string_view scientific(buffer, static_cast<size_t>(end - buffer)); // "-1.25e+06"
  auto e = scientific.find('e');
  int exponent = 0;
  auto exponent_text = scientific.substr(e + 1);
  bool negative_exponent = exponent_text.front() == '-';
  exponent_text.remove_prefix(1);
  std::from_chars(exponent_text.data(), exponent_text.data() + exponent_text.size(), exponent);
  if (negative_exponent)
    exponent = -exponent;
  if (exponent < -4 || exponent >= 6)
    return std::string{scientific};
  std::string sign = scientific.starts_with('-') ? "-" : "";
  std::string digits;
  for (char c : scientific.substr(sign.size(), e - sign.size()))
    if (c != '.')
      digits += c;
  if (exponent < 0)
    return sign + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  auto integer_digits = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= integer_digits)
    return sign + digits + std::string(integer_digits - digits.size(), '0');
  return sign + digits.substr(0, integer_digits) + "." + digits.substr(integer_digits);
}

// `numbers_are_float64`: Intercept decodes JSON arguments into float64, so argument numbers
// print as floats; YAML integers and counter values print as integers.
std::string go_text(const json& value, bool numbers_are_float64) {
  switch (value.type()) {
  case json::value_t::null:
    return "<nil>";
  case json::value_t::boolean:
    return value.get<bool>() ? "true" : "false";
  case json::value_t::string:
    return value.get<std::string>();
  case json::value_t::number_float:
    return go_float_text(value.get<double>());
  case json::value_t::number_integer:
  case json::value_t::number_unsigned:
    return numbers_are_float64 ? go_float_text(value.get<double>()) : value.dump();
  case json::value_t::array: {
    std::string out = "[";
    for (const auto& item : value) {
      // Appended piecewise: GCC 12 at -O3 misreads a concatenated temporary as overlapping.
      if (out.size() > 1)
        out += ' ';
      out += go_text(item, numbers_are_float64);
    }
    return out + "]";
  }
  case json::value_t::object: {
    std::string out = "map[";
    for (const auto& [key, item] : value.items()) {
      if (out.size() > 4)
        out += ' ';
      out += key;
      out += ':';
      out += go_text(item, numbers_are_float64);
    }
    return out + "]";
  }
  default:
    return value.dump();
  }
}

// Go's %q for the names in built-in messages.
std::string go_quote(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20 || c == 0x7f)
        out += fmt::format("\\x{:02x}", c);
      else
        out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// --- Operators ----------------------------------------------------------------------------

// Numeric when both sides are numbers, else the %v texts compared.
bool go_equal(const json& actual, bool actual_is_float64, const json& expected) {
  if (actual.is_number() && expected.is_number())
    return actual.get<double>() == expected.get<double>();
  return go_text(actual, actual_is_float64) == go_text(expected, false);
}

bool is_in(const json& actual, bool actual_is_float64, const json& list) {
  for (const auto& item : list)
    if (go_equal(actual, actual_is_float64, item))
      return true;
  return false;
}

// The value at an args path (objects only, as in Intercept), or nullptr when any step is
// missing. Our extension: a last step "length" on an array yields its size, held in `scratch`.
const json* resolve_args(const json& args, const std::vector<std::string>& path, json& scratch) {
  const json* current = &args;
  for (size_t i = 0; i < path.size(); ++i) {
    if (current->is_array() && path[i] == "length" && i + 1 == path.size()) {
      scratch = current->size();
      return &scratch;
    }
    if (!current->is_object())
      return nullptr;
    auto it = current->find(path[i]);
    if (it == current->end())
      return nullptr;
    current = &*it;
  }
  return current;
}

bool condition_holds(const policy_condition& cond, const json& args, const counter_lookup& counters,
                     const caller_identity& caller) {
  json scratch;
  const json* actual = nullptr;
  bool actual_is_float64 = true;
  if (cond.reads_state) {
    auto key = counter_key(cond.state_owner, cond.state_counter, cond.state_scope, caller);
    scratch = counters ? counters(key) : 0; // a counter that never counted reads 0
    actual = &scratch;
    actual_is_float64 = false;
  } else {
    actual = resolve_args(args, cond.arg_path, scratch);
  }
  if (cond.op == condition_op::exists) // null counts as absent
    return (actual != nullptr && !actual->is_null()) == cond.value.get<bool>();
  if (actual == nullptr) // a missing path fails every other operator, neq and not_in too
    return false;
  auto numeric = [&](auto compare) {
    return actual->is_number() && cond.value.is_number() &&
           compare(actual->get<double>(), cond.value.get<double>());
  };
  switch (cond.op) {
  case condition_op::eq:
    return go_equal(*actual, actual_is_float64, cond.value);
  case condition_op::neq:
    return !go_equal(*actual, actual_is_float64, cond.value);
  case condition_op::in:
    return is_in(*actual, actual_is_float64, cond.value);
  case condition_op::not_in:
    return !is_in(*actual, actual_is_float64, cond.value);
  case condition_op::lt:
    return numeric(std::less<>{});
  case condition_op::lte:
    return numeric(std::less_equal<>{});
  case condition_op::gt:
    return numeric(std::greater<>{});
  case condition_op::gte:
    return numeric(std::greater_equal<>{});
  case condition_op::regex:
    return actual->is_string() && cond.regex &&
           RE2::PartialMatch(actual->get_ref<const std::string&>(), *cond.regex);
  case condition_op::contains:
    if (actual->is_string())
      return cond.value.is_string() &&
             actual->get_ref<const std::string&>().find(cond.value.get_ref<const std::string&>()) !=
                 std::string::npos;
    if (actual->is_array())
      for (const auto& item : *actual)
        if (go_equal(item, actual_is_float64, cond.value))
          return true;
    return false;
  default:
    return false;
  }
}

// The amount a call adds to a counter. Like Intercept, a number from the arguments is
// truncated toward zero and anything else is an error; unlike Intercept, a negative amount is an
// error too, since it would let an agent refund its own budget.
std::optional<int64_t> increment_of(const counter_spec& spec, const json& args) {
  if (spec.increment_from.empty())
    return spec.increment;
  json scratch;
  const json* value = resolve_args(args, spec.increment_path, scratch);
  if (value == nullptr || !value->is_number())
    return std::nullopt;
  if (value->is_number_unsigned())
    return value->get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
               ? std::optional<int64_t>(static_cast<int64_t>(value->get<uint64_t>()))
               : std::nullopt;
  if (value->is_number_integer())
    return value->get<int64_t>() >= 0 ? std::optional<int64_t>(value->get<int64_t>())
                                      : std::nullopt;
  double amount = std::trunc(value->get<double>());
  if (!(amount >= 0 && amount < 9.2e18)) // also rejects NaN
    return std::nullopt;
  return static_cast<int64_t>(amount);
}

policy_denial denied_by(const policy_rule& rule) {
  auto message =
      rule.on_deny.empty() ? fmt::format("Denied by rule {}", go_quote(rule.name)) : rule.on_deny;
  return policy_denial{rule.name, std::move(message), std::nullopt};
}

} // namespace

std::string to_string(const counter_window& window) {
  if (const auto* fixed = std::get_if<fixed_window>(&window))
    return *fixed == fixed_window::minute ? "minute"
           : *fixed == fixed_window::hour ? "hour"
                                          : "day";
  return fmt::format("{}s rolling", std::get<rolling_window>(window).length.count());
}

std::string counter_key(std::string_view owner, std::string_view counter, counter_scope scope,
                        const caller_identity& caller) {
  switch (scope) {
  case counter_scope::agent:
    return fmt::format("{}.{}@agent:{}", owner, counter, caller.agent);
  case counter_scope::session:
    return fmt::format("{}.{}@session:{}", owner, counter, caller.session);
  default:
    return fmt::format("{}.{}", owner, counter);
  }
}

policy_decision evaluate_policy(const policy& p, std::string_view tool, const json& arguments,
                                const counter_lookup& counters, const caller_identity& caller) {
  policy_decision decision;
  if (is_hidden(p, tool)) {
    decision.denial = policy_denial{
        "(hidden)", fmt::format("Tool {} is hidden by policy", go_quote(tool)), std::nullopt};
    return decision;
  }
  auto listed = p.tools.find(tool);
  if (p.default_deny && listed == p.tools.end()) { // "*" rules do not rescue an unlisted tool
    decision.denial = policy_denial{
        "(default deny)", fmt::format("Tool {} is not permitted by policy", go_quote(tool)),
        std::nullopt};
    return decision;
  }
  static const json no_arguments = json::object();
  const json& args = arguments.is_object() ? arguments : no_arguments;
  // The tool's rules, then the wildcard's, each with the owner its counters are keyed under.
  std::vector<std::pair<const policy_rule*, std::string_view>> rules;
  if (listed != p.tools.end())
    for (const auto& rule : listed->second)
      rules.emplace_back(&rule, tool == "*" ? "_global" : tool);
  if (auto wildcard = p.tools.find("*"); wildcard != p.tools.end() && tool != "*")
    for (const auto& rule : wildcard->second)
      rules.emplace_back(&rule, "_global");
  for (auto [rule, owner] : rules) {
    if (rule->action == rule_action::deny) {
      decision.denial = denied_by(*rule);
      return decision;
    }
    for (const auto& cond : rule->conditions) {
      if (condition_holds(cond, args, counters, caller))
        continue;
      decision.denial = denied_by(*rule);
      const auto& counter = rule->counter;
      if (cond.reads_state && counter && cond.state_owner == owner &&
          cond.state_counter == counter->name)
        decision.denial->counter =
            counter_ref{counter_key(owner, counter->name, counter->scope, caller), counter->window};
      return decision;
    }
  }
  for (auto [rule, owner] : rules) {
    if (!rule->counter)
      continue;
    const auto& counter = *rule->counter;
    auto amount = increment_of(counter, args);
    if (!amount) {
      decision.reservations.clear();
      decision.denial = policy_denial{rule->name, "Internal policy error", std::nullopt};
      return decision;
    }
    if (!counter.limit) // Intercept reserves (and so counts) only limited counters
      continue;
    decision.reservations.push_back(counter_reservation{
        counter_key(owner, counter.name, counter.scope, caller), *amount, *counter.limit,
        counter.window, rule->name,
        rule->on_deny.empty() ? fmt::format("Rate limit exceeded for {}", rule->name)
                              : rule->on_deny});
  }
  return decision;
}

policy_denial reservation_denial(const counter_reservation& reservation) {
  return policy_denial{reservation.rule, reservation.message,
                       counter_ref{reservation.key, reservation.window}};
}

window_bounds fixed_window_bounds(std::chrono::system_clock::time_point now, fixed_window window) {
  using namespace std::chrono;
  // system_clock counts Unix time, which has no leap seconds, so flooring to whole minutes,
  // hours or days lands exactly on the UTC calendar boundaries.
  system_clock::time_point start;
  seconds length{0};
  switch (window) {
  case fixed_window::minute:
    start = floor<minutes>(now);
    length = minutes{1};
    break;
  case fixed_window::hour:
    start = floor<hours>(now);
    length = hours{1};
    break;
  case fixed_window::day:
    start = floor<days>(now);
    length = days{1};
    break;
  }
  return window_bounds{start, ceil<seconds>(start + length - now)};
}

json denial_tool_result(const policy_denial& denial, std::optional<int64_t> retry_after_seconds) {
  json structured = {{"rule", denial.rule}, {"message", denial.message}};
  if (retry_after_seconds)
    structured["retry_after_seconds"] = *retry_after_seconds;
  return json{
      {"content", json::array({{{"type", "text"}, {"text", "[POLICY DENIED] " + denial.message}}})},
      {"isError", true},
      {"structuredContent", std::move(structured)}};
}

bool is_hidden(const policy& p, std::string_view tool) {
  for (const auto& name : p.hide)
    if (name == tool || name == "*")
      return true;
  return false;
}

json filter_hidden_tools(const policy& p, const json& tools) {
  if (p.hide.empty() || !tools.is_array())
    return tools;
  auto kept = json::array();
  for (const auto& entry : tools) {
    bool named = entry.is_object() && entry.contains("name") && entry["name"].is_string();
    if (entry.is_object() && is_hidden(p, named ? entry["name"].get<std::string>() : ""))
      continue;
    kept.push_back(entry);
  }
  return kept;
}

} // namespace offload
