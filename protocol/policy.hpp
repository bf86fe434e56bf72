#pragma once
// The policy language operators use to protect their LLMs from runaway agents: the YAML schema
// of Intercept (PolicyLayer) v1.1.0, plus the shorter "seed" form published for the original
// claude-token-saver-mcp, plus two extensions (counter `scope`, `.length` of array arguments).
//
// Everything here is pure. Parsing turns text into an immutable `policy`; evaluation decides one
// tools/call from the policy, the arguments, and counter values read through a callback, and
// returns the counter reservations the caller must make. Counting itself (serialised,
// persistent) belongs to the rate_limit_bucket actors, so no time, I/O or actor appears here.
//
// Which form a file uses is decided by the file, not per rule:
// - `version: "1"` present: Intercept's form, accepted exactly as Intercept v1.1.0 accepts it
//   (so `action: allow` and a `{max, window}` rate_limit are errors, as they are there).
// - no `version`: only the seed form, `rules: [{action: allow, rate_limit: {max, window}}]`,
//   where `window` is in seconds and the window rolls. Intercept syntax in such a file is an
//   error that says to add `version: "1"`, so a forgotten version never silently changes meaning.
//
// Deliberate differences from Intercept, each closing a hole: a state path must be
// state.<tool>.<counter> (Intercept lets `state.x` through and reads 0); a negative amount from
// increment_from denies (it would let an agent refund its own budget); arguments that are not an
// object are evaluated as {} (Intercept forwards them unevaluated).

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace re2 {
class RE2;
} // namespace re2

namespace offload {

using json = nlohmann::json;

// --- Counters -----------------------------------------------------------------------------

// Intercept's windows: fixed and aligned to the UTC calendar (minute :00, hour :00, 00:00 UTC).
enum class fixed_window : uint8_t { minute, hour, day };

// The seed form's window: the last `length` seconds, rolling.
struct rolling_window {
  std::chrono::seconds length{0};
  friend bool operator==(const rolling_window&, const rolling_window&) = default;
};

using counter_window = std::variant<fixed_window, rolling_window>;

// "minute", "hour", "day", or e.g. "60s rolling" (for logs and `policy check`).
std::string to_string(const counter_window& window);

// Whose calls a counter counts. Intercept counts per tool for the whole machine (global); agent
// and session are our extension so one runaway agent cannot use up another's budget.
enum class counter_scope : uint8_t { global, agent, session };

// A rule's `state` block (or the counter a rate_limit desugars to).
struct counter_spec {
  std::string name; // e.g. "daily_spend", "_rate_minute", "_rate_60s"
  counter_window window = fixed_window::minute;
  int64_t increment = 1;                   // used when increment_from is empty
  std::string increment_from;              // "args.amount" as written, or empty
  std::vector<std::string> increment_path; // increment_from split after "args."
  counter_scope scope = counter_scope::global;
  // From the rule's own `lte N` (N) or `lt N` (N-1) condition on this counter. Without one the
  // counter is never reserved, hence never incremented: Intercept behaves the same way.
  std::optional<int64_t> limit;
};

// --- Rules --------------------------------------------------------------------------------

// The parser maps operator names to these by position, so keep the order in step with it.
enum class condition_op : uint8_t {
  eq,
  neq,
  in,
  not_in,
  lt,
  lte,
  gt,
  gte,
  regex,
  contains,
  exists
};

struct policy_condition {
  std::string path;                  // as written: "args.a.b" or "state.<tool>.<counter>"
  bool reads_state = false;          // state path (else an args path)
  std::vector<std::string> arg_path; // args path split after "args."
  std::string state_owner;           // state path: tool name or "_global" (for "*")
  std::string state_counter;         // state path: counter name
  counter_scope state_scope = counter_scope::global; // scope of the rule declaring the counter
  condition_op op = condition_op::eq;
  json value;                            // the YAML value, typed as YAML resolves it
  std::shared_ptr<const re2::RE2> regex; // compiled at parse time for op == regex
  int line = 0;
};

enum class rule_action : uint8_t { evaluate, deny };

struct policy_rule {
  std::string name;
  rule_action action = rule_action::evaluate;
  std::vector<policy_condition> conditions; // all must hold (rate_limit desugared into one)
  std::string on_deny;                      // empty: "Denied by rule \"<name>\""
  std::optional<counter_spec> counter;
  int line = 0;
};

enum class policy_form : uint8_t { intercept, seed };

// A parsed, validated policy. Shared read-only as `policy_ptr`; a reload builds a new one.
struct policy {
  policy_form form = policy_form::intercept;
  std::string description;
  bool default_deny = false;     // `default: deny`: tools not listed under `tools` are denied
  std::vector<std::string> hide; // "*" hides every tool
  // Rules per tool name; "*" holds the wildcard rules, evaluated after the tool's own.
  std::map<std::string, std::vector<policy_rule>, std::less<>> tools;
};

using policy_ptr = std::shared_ptr<const policy>;

// --- Parsing ------------------------------------------------------------------------------

// Errors and warnings read "<source>:<line>: <reason>". `value` is set exactly when there are
// no errors. Warnings (unknown keys, which Intercept ignores silently; counters that can never
// count) do not stop loading; `offload policy check` shows them.
struct policy_parse_result {
  policy_ptr value;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

// `source` names the text in messages, usually the file path.
policy_parse_result parse_policy(std::string_view yaml_text, std::string_view source);

// --- Evaluation ---------------------------------------------------------------------------

// Who is calling; selects the counter of agent- and session-scoped rules.
struct caller_identity {
  std::string agent;   // the authenticated identity (empty: all anonymous callers share)
  std::string session; // the MCP session id
};

// Current value of a counter in its current window (0 when it never counted). Keys come from
// counter_key(). An empty lookup reads every counter as 0.
using counter_lookup = std::function<int64_t(const std::string& key)>;

// "<owner>.<counter>" for global scope, with "@agent:<id>" or "@session:<id>" appended for the
// narrower scopes. `owner` is the tool name, or "_global" for wildcard rules.
std::string counter_key(std::string_view owner, std::string_view counter, counter_scope scope,
                        const caller_identity& caller);

// One counter increment an allowed call must make before it runs: refused when
// value + amount > limit. The caller reserves them in order and rolls back the earlier ones if a
// later one is refused, answering with reservation_denial() of the refused one.
struct counter_reservation {
  std::string key;
  int64_t amount = 0;
  int64_t limit = 0;
  counter_window window = fixed_window::minute;
  std::string rule;    // the rule that declared the counter
  std::string message; // its on_deny, else "Rate limit exceeded for <rule>"
};

// A counter named by a denial, so the caller can say when its window resets.
struct counter_ref {
  std::string key;
  counter_window window = fixed_window::minute;
};

struct policy_denial {
  std::string rule;                   // rule name, or "(hidden)" / "(default deny)"
  std::string message;                // what the agent reads after "[POLICY DENIED] "
  std::optional<counter_ref> counter; // set when a counter limit caused the denial
};

struct policy_decision {
  std::optional<policy_denial> denial;           // empty: allowed
  std::vector<counter_reservation> reservations; // allowed only: tool rules first, then "*"
  bool allowed() const { return !denial.has_value(); }
};

// Decides one tools/call: hide, then default deny, then the tool's rules in order, then the "*"
// rules; the first deny rule or failing evaluate rule decides. `arguments` that are not an object
// are evaluated as an empty object (Intercept forwards them unevaluated; we do not).
policy_decision evaluate_policy(const policy& p, std::string_view tool, const json& arguments,
                                const counter_lookup& counters, const caller_identity& caller);

// The denial to answer when the bucket refuses `reservation`.
policy_denial reservation_denial(const counter_reservation& reservation);

// --- Windows ------------------------------------------------------------------------------

struct window_bounds {
  std::chrono::system_clock::time_point start; // the current window began here
  std::chrono::seconds until_reset{0};         // rounded up, so never 0 inside a window
};

// The UTC-calendar window containing `now`.
window_bounds fixed_window_bounds(std::chrono::system_clock::time_point now, fixed_window window);

// --- Results shown to agents --------------------------------------------------------------

// The tools/call result for a denial: isError, text "[POLICY DENIED] <message>", and
// structuredContent {rule, message, retry_after_seconds (only when given)}.
json denial_tool_result(const policy_denial& denial,
                        std::optional<int64_t> retry_after_seconds = std::nullopt);

// Whether `hide` names the tool (or is "*").
bool is_hidden(const policy& p, std::string_view tool);

// A tools/list `tools` array without the hidden tools. Entries that are not objects are kept
// (as Intercept does, the filter fails open; it only hides, the call path still denies).
json filter_hidden_tools(const policy& p, const json& tools);

} // namespace offload
