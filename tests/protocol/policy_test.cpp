#define CAF_SUITE policy
#include <caf/test/unit_test.hpp>

#include "protocol/policy.hpp"

#include <map>

using namespace offload;
using namespace std::chrono;
using json = nlohmann::json;

namespace {

policy_ptr load(const std::string& yaml) {
  auto result = parse_policy(yaml, "p.yaml");
  for (const auto& error : result.errors)
    CAF_MESSAGE("unexpected: " << error);
  CAF_REQUIRE(result.value != nullptr);
  return result.value;
}

// Counter values by key; counters never seen read 0, as the bucket actors report them.
using counter_values = std::map<std::string, int64_t>;

const caller_identity agent_a{"agent-a", "session-1"};

policy_decision decide(const policy& p, std::string_view tool, const json& args = json::object(),
                       const counter_values& values = {}, const caller_identity& caller = agent_a) {
  auto lookup = [&](const std::string& key) -> int64_t {
    auto it = values.find(key);
    return it == values.end() ? 0 : it->second;
  };
  return evaluate_policy(p, tool, args, lookup, caller);
}

// The first reservation of an allowed call, copied: CAF's checks keep references to their
// operands, which must not point into a temporary decision.
counter_reservation first_reservation(const policy_decision& decision) {
  CAF_REQUIRE(!decision.reservations.empty());
  return decision.reservations.front();
}

// "allowed" or "denied by <rule>: <message>", so a failing row prints what happened.
std::string outcome(const policy_decision& decision) {
  if (decision.allowed())
    return "allowed";
  return "denied by " + decision.denial->rule + ": " + decision.denial->message;
}

std::string one_condition(const std::string& path, const std::string& op,
                          const std::string& value) {
  return "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n        conditions:\n"
         "          - path: " +
         path + "\n            op: " + op + "\n            value: " + value + "\n";
}

bool any_contains(const std::vector<std::string>& lines, std::string_view text) {
  for (const auto& line : lines)
    if (line.find(text) != std::string::npos)
      return true;
  return false;
}

} // namespace

CAF_TEST(every operator including type mismatches and missing paths) {
  struct row {
    const char* path;
    const char* op;
    const char* value; // YAML
    const char* args;  // JSON
    bool allowed;
  };
  const row rows[] = {
      {"args.s", "eq", "main", R"({"s":"main"})", true},
      {"args.s", "eq", "main", R"({"s":"dev"})", false},
      {"args.n", "eq", "5", R"({"n":5.0})", true}, // numeric when both are numbers
      {"args.n", "eq", "5", R"({"n":"5"})", true}, // else %v strings compared
      {"args.n", "eq", "\"5\"", R"({"n":5})", true},
      {"args.n", "eq", "\"1000000\"", R"({"n":1000000})", false}, // Go prints float64 1e+06
      {"args.n", "eq", "\"0.0001\"", R"({"n":0.0001})", true},
      {"args.n", "eq", "\"1e-05\"", R"({"n":0.00001})", true},
      {"args.n", "eq", "\"123456.5\"", R"({"n":123456.5})", true},
      {"args.b", "eq", "\"true\"", R"({"b":true})", true},
      {"args.n", "eq", "~", R"({"n":null})", true}, // <nil> == <nil>
      {"args.s", "eq", "main", R"({})", false},
      {"args.s", "neq", "draft", R"({"s":"main"})", true},
      {"args.s", "neq", "draft", R"({"s":"draft"})", false},
      {"args.s", "neq", "draft", R"({})", false}, // a missing path fails neq too
      {"args.c", "in", "[usd, eur]", R"({"c":"usd"})", true},
      {"args.c", "in", "[usd, eur]", R"({"c":"gbp"})", false},
      {"args.c", "in", "[1, 2]", R"({"c":2.0})", true},
      {"args.c", "in", "[usd]", R"({})", false},
      {"args.c", "not_in", "[admin]", R"({"c":"user"})", true},
      {"args.c", "not_in", "[admin]", R"({"c":"admin"})", false},
      {"args.c", "not_in", "[admin]", R"({})", false},
      {"args.n", "lt", "10", R"({"n":9})", true},
      {"args.n", "lt", "10", R"({"n":10})", false},
      {"args.n", "lte", "10", R"({"n":10})", true},
      {"args.n", "lte", "10", R"({"n":10.5})", false},
      {"args.n", "gt", "0", R"({"n":1})", true},
      {"args.n", "gt", "0", R"({"n":0})", false},
      {"args.n", "gte", "1.5", R"({"n":1.5})", true},
      {"args.n", "gte", "1", R"({"n":0})", false},
      {"args.n", "lte", "10", R"({"n":"5"})", false}, // numbers only: type mismatch fails
      {"args.n", "gt", "0", R"({"n":true})", false},
      {"args.n", "lt", "10", R"({})", false},
      {"args.s", "regex", "\"^feat/\"", R"({"s":"feat/x"})", true},
      {"args.s", "regex", "\"^feat/\"", R"({"s":"fix/feat/x"})", false},
      {"args.s", "regex", "feat", R"({"s":"my-feature"})", true}, // unanchored
      {"args.s", "regex", "\"[0-9]+\"", R"({"s":5})", false},     // strings only
      {"args.s", "regex", "x", R"({})", false},
      {"args.s", "contains", "test", R"({"s":"a test run"})", true},
      {"args.s", "contains", "prod", R"({"s":"a test run"})", false},
      {"args.l", "contains", "b", R"({"l":["a","b"]})", true}, // list element
      {"args.l", "contains", "2", R"({"l":[1,2]})", true},
      {"args.l", "contains", "5", R"({"l":5})", false},
      {"args.l", "contains", "b", R"({})", false},
      {"args.x", "exists", "true", R"({"x":0})", true},
      {"args.x", "exists", "true", R"({})", false},
      {"args.x", "exists", "true", R"({"x":null})", false}, // null counts as absent
      {"args.x", "exists", "false", R"({})", true},
      {"args.x", "exists", "false", R"({"x":null})", true},
      {"args.x", "exists", "false", R"({"x":"y"})", false},
      {"args.m.k", "eq", "v", R"({"m":{"k":"v"}})", true},
      {"args.m.k", "eq", "v", R"({"m":[{"k":"v"}]})", false}, // objects only, no array index
      {"args.tasks.length", "lte", "2", R"({"tasks":[1,2]})", true},
      {"args.tasks.length", "lte", "2", R"({"tasks":[1,2,3]})", false},
  };
  for (const auto& r : rows) {
    auto p = load(one_condition(r.path, r.op, r.value));
    auto label = std::string{r.path} + " " + r.op + " " + r.value + " on " + r.args;
    auto got = decide(*p, "t", json::parse(r.args)).allowed();
    CAF_CHECK_EQUAL(label + (got ? " allowed" : " denied"),
                    label + (r.allowed ? " allowed" : " denied"));
  }
}

CAF_TEST(tool rules run in order then the wildcard rules and the first failure decides) {
  auto p = load(R"(version: "1"
tools:
  t:
    rules:
      - name: first
        conditions: [{path: args.a, op: eq, value: 1}]
        on_deny: "first failed"
      - name: second
        conditions: [{path: args.b, op: eq, value: 1}]
  "*":
    rules:
      - name: wild
        conditions: [{path: args.c, op: eq, value: 1}]
  blocked:
    rules:
      - name: no deletes
        action: deny
      - name: never reached
        conditions: [{path: args.a, op: eq, value: 1}]
)");
  CAF_CHECK_EQUAL(outcome(decide(*p, "t", json{{"b", 1}, {"c", 1}})),
                  "denied by first: first failed");
  CAF_CHECK_EQUAL(outcome(decide(*p, "t", json{{"a", 1}})),
                  "denied by second: Denied by rule \"second\"");
  CAF_CHECK_EQUAL(outcome(decide(*p, "t", json{{"a", 1}, {"b", 1}})),
                  "denied by wild: Denied by rule \"wild\"");
  CAF_CHECK_EQUAL(outcome(decide(*p, "t", json{{"a", 1}, {"b", 1}, {"c", 1}})), "allowed");
  CAF_CHECK_EQUAL(outcome(decide(*p, "unlisted", json{{"c", 1}})), "allowed");
  CAF_CHECK_EQUAL(outcome(decide(*p, "blocked", json{{"a", 1}, {"c", 1}})),
                  "denied by no deletes: Denied by rule \"no deletes\"");
  // Arguments that are not an object are evaluated as an empty one.
  CAF_CHECK_EQUAL(outcome(decide(*p, "unlisted", json::array({1}))),
                  "denied by wild: Denied by rule \"wild\"");
}

CAF_TEST(hidden tools are denied and filtered from tools list) {
  auto p = load("version: \"1\"\nhide: [secret]\ntools:\n  secret:\n    rules: []\n");
  CAF_CHECK_EQUAL(outcome(decide(*p, "secret")),
                  "denied by (hidden): Tool \"secret\" is hidden by policy");
  CAF_CHECK(decide(*p, "public").allowed());
  auto tools = json::array({{{"name", "public"}}, {{"name", "secret"}}, "junk"});
  CAF_CHECK_EQUAL(filter_hidden_tools(*p, tools).dump(), R"([{"name":"public"},"junk"])");
  auto all = load("version: \"1\"\nhide: [\"*\"]\ntools: {}\n");
  CAF_CHECK(!decide(*all, "public").allowed());
  CAF_CHECK_EQUAL(filter_hidden_tools(*all, tools).dump(), R"(["junk"])");
}

CAF_TEST(default deny allows only listed tools and the wildcard does not rescue others) {
  auto p = load(R"(version: "1"
default: deny
tools:
  read_file:
    rules: []
  "*":
    rules:
      - name: needs ok
        conditions: [{path: args.ok, op: exists, value: true}]
)");
  CAF_CHECK_EQUAL(outcome(decide(*p, "read_file", json{{"ok", 1}})), "allowed");
  CAF_CHECK_EQUAL(outcome(decide(*p, "read_file")), "denied by needs ok: Denied by rule \"needs "
                                                    "ok\"");
  CAF_CHECK_EQUAL(outcome(decide(*p, "write_file", json{{"ok", 1}})),
                  "denied by (default deny): Tool \"write_file\" is not permitted by policy");
}

CAF_TEST(rate_limit desugars to an lte condition a counter and a message) {
  auto p = load(R"(version: "1"
tools:
  t:
    rules:
      - name: per minute
        rate_limit: 3/minute
      - name: per hour
        rate_limit: 100/hour
        on_deny: "hourly budget spent"
  "*":
    rules:
      - name: global
        rate_limit: 10/day
)");
  const auto& rule = p->tools.at("t").front();
  CAF_REQUIRE_EQUAL(rule.conditions.size(), 1u);
  CAF_CHECK_EQUAL(rule.conditions[0].path, "state.t._rate_minute");
  CAF_CHECK(rule.conditions[0].op == condition_op::lte);
  CAF_CHECK_EQUAL(rule.counter->name, "_rate_minute");
  CAF_CHECK_EQUAL(*rule.counter->limit, 3);
  CAF_CHECK_EQUAL(rule.on_deny, "Rate limit of 3 per minute reached. Try again later.");
  auto decision = decide(*p, "t");
  CAF_REQUIRE(decision.allowed());
  CAF_REQUIRE_EQUAL(decision.reservations.size(), 3u); // tool rules first, then "*"
  const auto& first = decision.reservations[0];
  CAF_CHECK_EQUAL(first.key, "t._rate_minute");
  CAF_CHECK_EQUAL(first.amount, 1);
  CAF_CHECK_EQUAL(first.limit, 3);
  CAF_CHECK(first.window == counter_window{fixed_window::minute});
  CAF_CHECK_EQUAL(decision.reservations[1].message, "hourly budget spent");
  CAF_CHECK_EQUAL(decision.reservations[2].key, "_global._rate_day");
  // A counter already past its limit (say, after a reload lowered it) fails the condition.
  auto over = decide(*p, "t", json::object(), {{"t._rate_minute", 4}});
  CAF_CHECK_EQUAL(outcome(over),
                  "denied by per minute: Rate limit of 3 per minute reached. Try again later.");
  CAF_REQUIRE(over.denial->counter.has_value());
  CAF_CHECK_EQUAL(over.denial->counter->key, "t._rate_minute");
}

CAF_TEST(exactly N calls are allowed then the reservation is refused) {
  auto p = load("version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n"
                "        rate_limit: 3/minute\n");
  counter_values values;
  std::vector<std::string> results;
  for (int call = 0; call < 4; ++call) {
    auto decision = decide(*p, "t", json::object(), values);
    CAF_REQUIRE(decision.allowed()); // the condition reads 0..3 <= 3; the bucket decides
    const auto& r = decision.reservations.at(0);
    auto& value = values[r.key];
    if (value + r.amount <= r.limit) {
      value += r.amount;
      results.push_back("allowed");
    } else {
      results.push_back(reservation_denial(r).message);
    }
  }
  CAF_CHECK_EQUAL(results[2], "allowed");
  CAF_CHECK_EQUAL(results[3], "Rate limit of 3 per minute reached. Try again later.");
  CAF_CHECK_EQUAL(values["t._rate_minute"], 3);
}

CAF_TEST(the limit is N from lte N and N minus 1 from lt N) {
  struct row {
    const char* op;
    const char* value;
    int64_t limit;
  };
  const row rows[] = {{"lte", "5", 5}, {"lt", "5", 4}, {"lte", "5.9", 5}, {"lt", "5.9", 4}};
  for (const auto& r : rows) {
    auto p = load(std::string{"version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n"
                              "        conditions:\n          - path: state.t.calls\n"
                              "            op: "} +
                  r.op + "\n            value: " + r.value +
                  "\n        state: {counter: calls, window: hour}\n");
    auto decision = decide(*p, "t");
    CAF_REQUIRE_EQUAL(decision.reservations.size(), 1u);
    CAF_CHECK_EQUAL(decision.reservations[0].limit, r.limit);
    CAF_CHECK_EQUAL(decision.reservations[0].message, "Rate limit exceeded for r");
  }
}

CAF_TEST(a counter without an lte or lt limit is never reserved) {
  auto result = parse_policy(R"(version: "1"
tools:
  t:
    rules:
      - name: r
        conditions: [{path: state.t.calls, op: gte, value: 0}]
        state: {counter: calls, window: day}
)",
                             "p.yaml");
  CAF_REQUIRE(result.value != nullptr);
  CAF_CHECK(any_contains(result.warnings, "p.yaml:5: warning:"));
  CAF_CHECK(decide(*result.value, "t").reservations.empty());
}

CAF_TEST(increments come from increment or increment_from including array length) {
  auto p = load(R"(version: "1"
tools:
  spend:
    rules:
      - name: cap
        conditions: [{path: state.spend.total, op: lte, value: 1000}]
        state: {counter: total, window: day, increment_from: args.amount}
  batch_offload:
    rules:
      - name: tasks per hour
        conditions: [{path: state.batch_offload.tasks, op: lte, value: 50}]
        state: {counter: tasks, window: hour, increment_from: args.tasks.length}
  fixed:
    rules:
      - name: five
        conditions: [{path: state.fixed.n, op: lte, value: 50}]
        state: {counter: n, window: hour, increment: 5}
      - name: zero means one
        conditions: [{path: state.fixed.m, op: lte, value: 50}]
        state: {counter: m, window: hour, increment: 0}
)");
  auto amount = [&](std::string_view tool, const json& args) {
    auto decision = decide(*p, tool, args);
    return decision.allowed() ? std::to_string(decision.reservations.at(0).amount)
                              : outcome(decision);
  };
  CAF_CHECK_EQUAL(amount("spend", json{{"amount", 30}}), "30");
  CAF_CHECK_EQUAL(amount("spend", json{{"amount", 2.9}}), "2"); // truncated, as Go's int64()
  const auto internal = "denied by cap: Internal policy error";
  CAF_CHECK_EQUAL(amount("spend", json::object()), internal);
  CAF_CHECK_EQUAL(amount("spend", json{{"amount", "30"}}), internal);
  CAF_CHECK_EQUAL(amount("spend", json{{"amount", -5}}), internal); // no refunds by agents
  CAF_CHECK_EQUAL(amount("batch_offload", json{{"tasks", json::array({1, 2, 3})}}), "3");
  CAF_CHECK_EQUAL(amount("batch_offload", json{{"tasks", "x"}}),
                  "denied by tasks per hour: Internal policy error");
  auto fixed = decide(*p, "fixed");
  CAF_CHECK_EQUAL(fixed.reservations.at(0).amount, 5);
  CAF_CHECK_EQUAL(fixed.reservations.at(1).amount, 1);
}

CAF_TEST(scopes key counters per agent or per session) {
  auto p = load(R"(version: "1"
tools:
  g:
    rules: [{name: g, rate_limit: 2/minute}]
  a:
    rules: [{name: a, rate_limit: 2/minute, scope: agent}]
  s:
    rules: [{name: s, rate_limit: 2/minute, scope: session}]
)");
  CAF_CHECK_EQUAL(first_reservation(decide(*p, "g")).key, "g._rate_minute");
  CAF_CHECK_EQUAL(first_reservation(decide(*p, "a")).key, "a._rate_minute@agent:agent-a");
  CAF_CHECK_EQUAL(first_reservation(decide(*p, "s")).key, "s._rate_minute@session:session-1");
  counter_values spent{{"a._rate_minute@agent:agent-a", 3}};
  CAF_CHECK(!decide(*p, "a", json::object(), spent).allowed());
  CAF_CHECK(decide(*p, "a", json::object(), spent, {"agent-b", "session-2"}).allowed());
}

CAF_TEST(the seed form loads with rolling windows) {
  auto result = parse_policy(R"(tools:
  batch_offload:
    rules:
      - action: allow
        rate_limit:
          max: 30
          window: 60
  compress_context:
    rules:
      - action: allow
        rate_limit: {max: 5, window: 90}
  get_metrics:
    rules:
      - action: allow
)",
                             "seed.yaml");
  CAF_REQUIRE(result.value != nullptr);
  const auto& p = *result.value;
  CAF_CHECK(p.form == policy_form::seed);
  auto decision = decide(p, "batch_offload");
  CAF_REQUIRE_EQUAL(decision.reservations.size(), 1u);
  const auto& r = decision.reservations[0];
  CAF_CHECK_EQUAL(r.key, "batch_offload._rate_60s");
  CAF_CHECK_EQUAL(r.limit, 30);
  CAF_CHECK(r.window == counter_window{rolling_window{seconds{60}}});
  CAF_CHECK_EQUAL(r.rule, "tools.batch_offload.rules[0]");
  CAF_CHECK_EQUAL(r.message, "Rate limit of 30 per minute reached. Try again later.");
  CAF_CHECK_EQUAL(first_reservation(decide(p, "compress_context")).message,
                  "Rate limit of 5 per 90 seconds reached. Try again later.");
  CAF_CHECK(decide(p, "get_metrics").allowed());
  CAF_CHECK(decide(p, "get_metrics").reservations.empty());
  CAF_CHECK(decide(p, "unlisted").allowed());
}

CAF_TEST(unknown keys are ignored with a warning) {
  auto result = parse_policy(R"(version: "1"
owner: ops
tools:
  t:
    rules:
      - name: r
        rate_limit: 5/hour
        comment: hi
)",
                             "p.yaml");
  CAF_REQUIRE(result.value != nullptr);
  CAF_REQUIRE_EQUAL(result.warnings.size(), 2u);
  CAF_CHECK_EQUAL(result.warnings[0], "p.yaml:2: warning: policy: unknown key \"owner\" is "
                                      "ignored");
  CAF_CHECK(any_contains(result.warnings, "p.yaml:8: warning: tools.t.rules[0]: unknown key"));
}

CAF_TEST(a rate_limit rule overrides any action as in Intercept) {
  auto result = parse_policy("version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n"
                             "        action: allow\n        rate_limit: 5/hour\n",
                             "p.yaml");
  CAF_REQUIRE(result.value != nullptr);
  CAF_CHECK(any_contains(result.warnings, "p.yaml:6: warning:"));
}

CAF_TEST(parse errors carry the source and the line) {
  struct row {
    std::string yaml;
    std::string expected; // the whole message starts with this
  };
  const std::string head = "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: r\n";
  const row rows[] = {
      {head + "        conditions:\n          - path: args.s\n            op: regex\n"
              "            value: \"a(b\"\n",
       "p.yaml:9: tools.t.rules[0].conditions[0]: invalid regex \"a(b\": missing )"},
      {head + "        rate_limit: 5/week\n",
       "p.yaml:6: tools.t.rules[0]: rate_limit window must be \"minute\", \"hour\", or \"day\""},
      {head + "        rate_limit: 0/minute\n",
       "p.yaml:6: tools.t.rules[0]: rate_limit count must be a positive integer, got \"0\""},
      {head + "        rate_limit: five\n",
       "p.yaml:6: tools.t.rules[0]: rate_limit must be in the format \"N/window\""},
      {head + "        rate_limit: 5/minute\n      - name: again\n        rate_limit: 9/minute\n",
       "p.yaml:7: tools.t: duplicate state counter \"_rate_minute\" (also used by the rule at "
       "line 5)"},
      {head + "        action: allow\n        conditions: [{path: args.a, op: eq, value: 1}]\n",
       "p.yaml:6: tools.t.rules[0]: action \"allow\" is not part of Intercept v1.1.0"},
      {"tools:\n  t:\n    rules:\n      - name: r\n        conditions: []\n",
       "p.yaml:5: tools.t.rules[0]: conditions is Intercept syntax, but this file has no version"},
      {"tools:\n  t:\n    rules:\n      - rate_limit: 5/hour\n",
       "p.yaml:4: tools.t.rules[0]: rate_limit \"N/window\" is Intercept syntax"},
      {"description: x\n", "p.yaml:1: no version and no tools"},
      {"version: \"2\"\ntools: {}\n", "p.yaml:1: version must be \"1\", got \"2\""},
      {head + "        rate_limit: {max: 5, window: 60}\n",
       "p.yaml:6: tools.t.rules[0]: rate_limit {max, window} is the seed form"},
      {"tools:\n  t:\n    rules:\n      - rate_limit: {max: 5, window: 0}\n",
       "p.yaml:4: tools.t.rules[0].rate_limit.window: must be a positive integer"},
      {head + "        rate_limit: 5/hour\n        state: {counter: c, window: hour}\n",
       "p.yaml:6: tools.t.rules[0]: rate_limit cannot be combined with conditions or state"},
      {head + "        action: deny\n        conditions: [{path: args.a, op: eq, value: 1}]\n",
       "p.yaml:5: tools.t.rules[0]: deny rules must not have conditions"},
      {head + "        on_deny: no\n", "p.yaml:5: tools.t.rules[0]: evaluate rules must have at "
                                       "least one condition"},
      {"version: \"1\"\ntools:\n  t:\n    rules:\n      - rate_limit: 5/hour\n",
       "p.yaml:5: tools.t.rules[0]: rule must have a name"},
      {head + "        conditions: [{path: args.a, op: like, value: 1}]\n",
       "p.yaml:6: tools.t.rules[0].conditions[0]: unknown operator \"like\""},
      {head + "        conditions: [{path: args.a, op: in, value: 1}]\n",
       "p.yaml:6: tools.t.rules[0].conditions[0]: operator \"in\" requires a list value"},
      {head + "        conditions: [{path: args.a, op: lte, value: \"1\"}]\n",
       "p.yaml:6: tools.t.rules[0].conditions[0]: operator \"lte\" requires a numeric value"},
      {head + "        conditions: [{path: args.a, op: exists, value: yes}]\n",
       "p.yaml:6: tools.t.rules[0].conditions[0]: operator \"exists\" requires a boolean value"},
      {head + "        conditions: [{path: state.t.calls, op: lte, value: 1}]\n",
       "p.yaml:6: tools.t.rules[0]: condition references state.t.calls but no matching state "
       "block"},
      {head + "        conditions: [{path: a, op: eq, value: 1}]\n",
       "p.yaml:6: tools.t.rules[0].conditions[0]: path must start with \"args.\" or \"state.\""},
      {head + "        rate_limit: 5/hour\n        scope: user\n",
       "p.yaml:7: tools.t.rules[0]: scope must be \"global\", \"agent\" or \"session\""},
      {"version: \"1\"\nhide: [a, \"\", a]\ntools: {}\n",
       "p.yaml:2: hide[1]: entry must not be empty"},
      {"version: \"1\"\nversion: \"1\"\n", "p.yaml:2: policy: key \"version\" appears twice"},
      {"version: \"1\"\ntools: [\n", "p.yaml:3: YAML syntax error"},
      {"", "p.yaml:1: the policy is empty"},
  };
  for (const auto& r : rows) {
    auto result = parse_policy(r.yaml, "p.yaml");
    CAF_CHECK(result.value == nullptr);
    std::string first = result.errors.empty() ? "(no error)" : result.errors.front();
    CAF_CHECK_EQUAL(first.substr(0, r.expected.size()), r.expected);
  }
}

CAF_TEST(different windows may share a tool and every error is reported) {
  auto ok = parse_policy("version: \"1\"\ntools:\n  t:\n    rules:\n"
                         "      - {name: a, rate_limit: 5/minute}\n"
                         "      - {name: b, rate_limit: 100/hour}\n",
                         "p.yaml");
  CAF_CHECK(ok.value != nullptr);
  auto bad = parse_policy("version: \"3\"\ndefault: maybe\nhide: [x, x]\ntools: {}\n", "p.yaml");
  CAF_CHECK_EQUAL(bad.errors.size(), 3u);
  CAF_CHECK(any_contains(bad.errors, "p.yaml:2: default must be \"allow\" or \"deny\""));
  CAF_CHECK(any_contains(bad.errors, "p.yaml:3: hide: duplicate entry \"x\""));
}

CAF_TEST(fixed windows start at UTC calendar boundaries) {
  auto at = [](int h, int m, int s, milliseconds ms = milliseconds{0}) {
    return sys_days{year{2026} / 1 / 15} + hours{h} + minutes{m} + seconds{s} + ms;
  };
  struct row {
    system_clock::time_point now;
    fixed_window window;
    system_clock::time_point start;
    int64_t until_reset;
  };
  const row rows[] = {
      {at(10, 30, 15, milliseconds{250}), fixed_window::minute, at(10, 30, 0), 45},
      {at(10, 30, 15, milliseconds{250}), fixed_window::hour, at(10, 0, 0), 1785},
      {at(10, 30, 15, milliseconds{250}), fixed_window::day, at(0, 0, 0), 48585},
      {at(10, 31, 0), fixed_window::minute, at(10, 31, 0), 60},
      {at(23, 59, 59), fixed_window::day, at(0, 0, 0), 1},
      {at(0, 0, 0), fixed_window::hour, at(0, 0, 0), 3600},
  };
  for (const auto& r : rows) {
    auto bounds = fixed_window_bounds(r.now, r.window);
    CAF_CHECK(bounds.start == r.start);
    CAF_CHECK_EQUAL(bounds.until_reset.count(), r.until_reset);
  }
}

CAF_TEST(denials become tool results with structured content) {
  policy_denial denial{"per minute", "Rate limit of 3 per minute reached. Try again later.",
                       std::nullopt};
  auto limited = denial_tool_result(denial, 42);
  CAF_CHECK_EQUAL(limited["content"][0]["text"].get<std::string>(),
                  "[POLICY DENIED] Rate limit of 3 per minute reached. Try again later.");
  CAF_CHECK(limited["isError"] == true);
  CAF_CHECK_EQUAL(limited["structuredContent"].dump(),
                  R"({"message":"Rate limit of 3 per minute reached. Try again later.",)"
                  R"("retry_after_seconds":42,"rule":"per minute"})");
  auto plain = denial_tool_result(policy_denial{"r", "no", std::nullopt});
  CAF_CHECK(!plain["structuredContent"].contains("retry_after_seconds"));
}
