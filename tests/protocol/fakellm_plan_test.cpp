#define CAF_SUITE fakellm_plan
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_plan.hpp"
#include "protocol/fakellm_request.hpp"
#include "protocol/fakellm_response.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

using namespace offload::fakellm;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

fault_plan plan_of(std::string_view text) {
  auto parsed = parse_fault_plan(text, "plan.yaml");
  if (!parsed.ok())
    CAF_FAIL("the plan was rejected: " << parsed.error);
  return std::move(*parsed.plan);
}

std::string rejection(std::string_view text) {
  auto parsed = parse_fault_plan(text, "plan.yaml");
  if (parsed.ok())
    CAF_FAIL("expected a rejection of: " << text);
  return parsed.error;
}

const auto t0 = std::chrono::steady_clock::time_point{} + 1000s;

// A chat request to the fake: `prompt` as the last user message.
request_facts chat(std::string_view prompt, std::string_view model = "m:1b",
                   endpoint target = endpoint::chat) {
  static std::vector<std::string> prompts; // keeps the views alive
  prompts.emplace_back(prompt);
  chat_request request;
  request.model = std::string{model};
  request.messages = {{"user", prompts.back()}};
  auto family = target == endpoint::completions ? api_family::openai : api_family::ollama;
  return {family,
          target,
          model,
          prompts.back(),
          count_prompt_words(request.messages),
          request_identity(request)};
}

// The name of the rule that decided the request, or "-" when none did.
std::string rule_of(plan_state& state, const request_facts& facts,
                    std::chrono::steady_clock::time_point now = t0) {
  auto decision = state.decide(facts, now);
  return decision.rule ? state.plan().rules[*decision.rule].name : "-";
}

} // namespace

// -- parsing -------------------------------------------------------------------------------------

CAF_TEST(a plan reads every match and action key) {
  auto plan = plan_of(R"(
description: every key
rules:
  - name: all
    match:
      api: openai
      endpoint: [/v1/chat/completions]
      model: [a:1b, b]
      prompt: "task-[0-9]+"
      attempt: [1, 2]
      nth: 3
      every: 2
      after: 1
      probability: 0.25
    action:
      status: 502
      message: bad gateway
      retry_after_s: 7
      latency_ms: {uniform: [10, 20]}
  - action: {drop_after: 3, first_token_delay_ms: {normal: {mean: 50, stddev: 5}}, token_delay_ms: 4}
  - action: {}
)");
  CAF_CHECK_EQUAL(plan.description, "every key");
  CAF_CHECK_EQUAL(plan.source, "plan.yaml");
  CAF_REQUIRE_EQUAL(plan.rules.size(), 3u);
  const auto& all = plan.rules[0];
  CAF_CHECK_EQUAL(all.name, "all");
  CAF_CHECK_EQUAL(all.line, 4);
  CAF_CHECK(all.match.api == api_family::openai);
  CAF_CHECK(all.match.endpoints == std::vector<endpoint>{endpoint::completions});
  CAF_CHECK(all.match.models == (std::vector<std::string>{"a:1b", "b"}));
  CAF_CHECK(all.match.prompt != nullptr);
  CAF_CHECK(all.match.attempts == (std::vector<uint64_t>{1, 2}));
  CAF_CHECK(all.match.nth == std::vector<uint64_t>{3});
  CAF_CHECK_EQUAL(all.match.every, 2u);
  CAF_CHECK_EQUAL(all.match.after, 1u);
  CAF_CHECK_EQUAL(all.match.probability, 0.25);
  CAF_CHECK(all.action.response == response_kind::error);
  CAF_CHECK_EQUAL(all.action.status, 502u);
  CAF_CHECK(all.action.error == error_kind::internal);
  CAF_CHECK(all.action.message == std::optional<std::string>{"bad gateway"});
  CAF_CHECK(all.action.retry_after == std::chrono::seconds{7});
  CAF_CHECK(all.action.latency.kind == millis_distribution::shape::uniform);
  CAF_CHECK_EQUAL(all.action.latency.first, 10.0);
  CAF_CHECK_EQUAL(all.action.latency.second, 20.0);
  const auto& drop = plan.rules[1];
  CAF_CHECK_EQUAL(drop.name, "rule 2");
  CAF_CHECK(drop.action.response == response_kind::drop);
  CAF_CHECK(drop.action.chunks_before_break == size_t{3});
  CAF_CHECK(drop.action.first_token_delay.kind == millis_distribution::shape::normal);
  CAF_CHECK_EQUAL(drop.action.token_delay.first, 4.0);
  CAF_CHECK(plan.rules[2].action.response == response_kind::answer);
  CAF_CHECK(parse_fault_plan("rules: []", "x").ok());
  CAF_CHECK(parse_fault_plan(R"({"rules": [{"action": {"hang": true}}]})", "x").ok());
}

CAF_TEST(errors take their status from the kind and their kind from the status) {
  auto plan = plan_of(R"(
rules:
  - action: {status: 429}
  - action: {status: 404}
  - action: {error: context_too_long}
  - action: {error: busy, status: 500}
  - action: {loading_ms: 3000}
  - action: {status: 418}
)");
  auto& r = plan.rules;
  CAF_CHECK(r[0].action.error == error_kind::rate_limited);
  CAF_CHECK(r[1].action.error == error_kind::model_not_found);
  CAF_CHECK(r[2].action.error == error_kind::context_too_long);
  CAF_CHECK_EQUAL(r[2].action.status, 400u);
  CAF_CHECK(r[3].action.error == error_kind::busy);
  CAF_CHECK_EQUAL(r[3].action.status, 500u);
  CAF_CHECK(r[4].action.loading == 3000ms);
  CAF_CHECK(r[5].action.error == error_kind::internal);
}

CAF_TEST(bad plans are rejected with the file the line and the reason) {
  struct bad {
    const char* text;
    const char* error;
  };
  for (auto [text, error] : std::initializer_list<bad>{
           {"rules: []\nseed: 4", "plan.yaml:2: unknown key \"seed\" in the plan"},
           {"rules:\n  - match:\n      probabilty: 0.5\n    action: {hang: true}",
            "plan.yaml:3: unknown key \"probabilty\" in a match"},
           {"rules:\n  - action: {explode: true}", "plan.yaml:2: unknown key \"explode\" in an "
                                                   "action"},
           {"rules:\n  - action: {error: boom}", "plan.yaml:2: unknown error \"boom\""},
           {"rules:\n  - match: {prompt: \"(open\"}\n    action: {hang: true}",
            "plan.yaml:2: prompt: invalid regular expression \"(open\": missing )"},
           {"rules:\n  - match:\n      probability: 1.5\n    action: {hang: true}",
            "plan.yaml:3: probability must be between 0 and 1, got 1.5"},
           {"rules:\n  - match: {probability: -0.1}\n    action: {hang: true}",
            "plan.yaml:2: probability must be between 0 and 1, got -0.1"},
           {"rules:\n  - match: {probability: often}\n    action: {hang: true}",
            "plan.yaml:2: probability must be a number, got \"often\""},
           {"rules:\n  - action:\n      hang: true\n      status: 500",
            "plan.yaml:4: an action has one response shape, but this one has both hang and "
            "status"},
           {"rules:\n  - action: {message: hi}", "plan.yaml:2: message only words an error"},
           {"rules:\n  - action: {hang: true, retry_after_s: 1}",
            "plan.yaml:2: retry_after_s only goes with an error response"},
           {"rules:\n  - action: {status: 500, token_delay_ms: 5}",
            "plan.yaml:2: token_delay_ms slows a stream"},
           {"rules:\n  - action: {status: 200}", "plan.yaml:2: status must be between 400 and "
                                                 "599, got 200"},
           {"rules:\n  - match: {endpoint: /api/tags}\n    action: {drop_after: 1}",
            "plan.yaml:3: drop_after needs a generation endpoint"},
           {"rules:\n  - match: {endpoint: /_fake/stats}\n    action: {hang: true}",
            "plan.yaml:2: endpoint /_fake/stats is the fake's own"},
           {"rules:\n  - match: {endpoint: /api/embed}\n    action: {hang: true}",
            "plan.yaml:2: unknown endpoint \"/api/embed\""},
           {"rules:\n  - match: {api: openai, endpoint: /api/chat}\n    action: {hang: true}",
            "plan.yaml:2: endpoint /api/chat belongs to the other API"},
           {"rules:\n  - match: {nth: 0}\n    action: {hang: true}",
            "plan.yaml:2: nth must be between 1 and"},
           {"rules:\n  - match: {nth: []}\n    action: {hang: true}",
            "plan.yaml:2: an empty list matches nothing"},
           {"rules:\n  - match: {every: 1.5}\n    action: {hang: true}",
            "plan.yaml:2: every must be a whole number, got \"1.5\""},
           {"rules:\n  - action: {latency_ms: {uniform: [30, 10]}}",
            "plan.yaml:2: latency_ms.uniform: low 30 is above high 10"},
           {"rules:\n  - action: {latency_ms: 86400001}",
            "plan.yaml:2: latency_ms must be between 0 and 86400000 ms"},
           {"rules:\n  - action: {latency_ms: {normal: {mean: 5}}}",
            "plan.yaml:2: latency_ms.normal needs mean and stddev"},
           {"rules:\n  - name: a\n    match: {}", "plan.yaml:2: a needs an action"},
           {"rules:\n  - {name: a, action: {}}\n  - {name: a, action: {}}",
            "plan.yaml:3: two rules are named \"a\""},
           {"description: x", "plan.yaml:1: the plan needs \"rules\""},
           {"", "plan.yaml:1: the plan is empty"},
           {"rules: [", "plan.yaml:"},
           {"rules: 5", "plan.yaml:1: rules must be a list"},
           {"rules:\n  - action: {hang: maybe}", "plan.yaml:2: hang must be true or false"},
       }) {
    auto message = rejection(text);
    CAF_CHECK_EQUAL(message.substr(0, std::string_view{error}.size()), error);
  }
}

// -- matching ------------------------------------------------------------------------------------

CAF_TEST(the first rule that matches decides and plain requests pass) {
  plan_state state{plan_of(R"(
rules:
  - {name: hang, match: {prompt: "^hang"}, action: {hang: true}}
  - {name: fail, match: {prompt: "fail"}, action: {status: 500}}
)"),
                   1};
  CAF_CHECK_EQUAL(rule_of(state, chat("hang and fail")), "hang");
  CAF_CHECK_EQUAL(rule_of(state, chat("please fail")), "fail");
  auto plain = state.decide(chat("all good"), t0);
  CAF_CHECK(!plain.rule);
  CAF_CHECK(plain.chosen == action{});
  CAF_CHECK_EQUAL(state.counters()[0].seen, 1u);
  CAF_CHECK_EQUAL(state.counters()[1].seen, 1u);
  CAF_CHECK_EQUAL(state.counters()[1].matched, 1u);
}

CAF_TEST(rules match the API the endpoint and the model) {
  plan_state state{plan_of(R"(
rules:
  - {name: openai, match: {api: openai}, action: {status: 500}}
  - {name: tags, match: {endpoint: [/api/tags, /health]}, action: {status: 503}}
  - {name: model, match: {model: qwen}, action: {status: 404}}
  - {name: generate, match: {endpoint: /api/generate}, action: {hang: true}}
)"),
                   1};
  CAF_CHECK_EQUAL(rule_of(state, chat("x", "m", endpoint::completions)), "openai");
  CAF_CHECK_EQUAL(rule_of(state, {api_family::ollama, endpoint::tags, {}, {}, 0, 1}), "tags");
  CAF_CHECK_EQUAL(rule_of(state, {api_family::openai, endpoint::health, {}, {}, 0, 2}), "tags");
  // A rule without `endpoint` leaves the fixed answers alone.
  CAF_CHECK_EQUAL(rule_of(state, {api_family::ollama, endpoint::version, {}, {}, 0, 3}), "-");
  CAF_CHECK_EQUAL(rule_of(state, chat("x", "qwen:latest")), "model");
  CAF_CHECK_EQUAL(rule_of(state, chat("x", "qwen:7b")), "-");
  CAF_CHECK_EQUAL(rule_of(state, chat("x", "m", endpoint::generate)), "generate");
}

CAF_TEST(min_prompt_tokens matches long prompts) {
  plan_state state{plan_of(R"(
rules:
  - {match: {min_prompt_tokens: 4}, action: {error: context_too_long}}
)"),
                   1};
  CAF_CHECK_EQUAL(rule_of(state, chat("one two three")), "-");
  CAF_CHECK_EQUAL(rule_of(state, chat("one two three four")), "rule 1");
  auto zero = rejection("rules:\n  - {match: {min_prompt_tokens: 0}, action: {}}");
  CAF_CHECK(zero.starts_with("plan.yaml:2: min_prompt_tokens must be between 1"));
}

CAF_TEST(nth every and after count the requests that passed the filters) {
  plan_state state{plan_of(R"(
rules:
  - {name: third, match: {prompt: a, nth: [3, 5]}, action: {status: 500}}
  - {name: even, match: {prompt: b, every: 2}, action: {status: 500}}
  - {name: late, match: {prompt: c, after: 2}, action: {status: 500}}
)"),
                   1};
  std::vector<std::string> a, b, c;
  for (int i = 1; i <= 6; ++i) {
    a.push_back(rule_of(state, chat("a" + std::to_string(i))));
    b.push_back(rule_of(state, chat("b" + std::to_string(i))));
    c.push_back(rule_of(state, chat("c" + std::to_string(i))));
  }
  CAF_CHECK(a == (std::vector<std::string>{"-", "-", "third", "-", "third", "-"}));
  CAF_CHECK(b == (std::vector<std::string>{"-", "even", "-", "even", "-", "even"}));
  CAF_CHECK(c == (std::vector<std::string>{"-", "-", "late", "late", "late", "late"}));
}

CAF_TEST(attempt counts arrivals of the same request) {
  plan_state state{plan_of("rules:\n  - {match: {attempt: [1, 2]}, action: {status: 503}}"), 1};
  std::vector<std::string> seen;
  for (int i = 0; i < 3; ++i)
    seen.push_back(rule_of(state, chat("same task")));
  CAF_CHECK(seen == (std::vector<std::string>{"rule 1", "rule 1", "-"}));
  // Another model or another text is another request.
  CAF_CHECK_EQUAL(rule_of(state, chat("same task", "other")), "rule 1");
  CAF_CHECK_EQUAL(state.decide(chat("same task"), t0).attempt, 4u);
  state.reset();
  CAF_CHECK_EQUAL(rule_of(state, chat("same task")), "rule 1");
  CAF_CHECK_EQUAL(state.counters()[0].matched, 1u);
}

CAF_TEST(probability decisions depend on the request not on the arrival order) {
  auto text = "rules:\n  - {match: {probability: 0.3}, action: {status: 503}}";
  std::vector<std::string> prompts;
  for (int i = 0; i < 400; ++i)
    prompts.push_back("task " + std::to_string(i));
  auto hits = [&](uint64_t seed, bool reversed) {
    plan_state state{plan_of(text), seed};
    std::set<std::string> hit;
    auto order = prompts;
    if (reversed)
      std::reverse(order.begin(), order.end());
    for (const auto& p : order)
      if (state.decide(chat(p), t0).rule)
        hit.insert(p);
    return hit;
  };
  auto first = hits(42, false);
  CAF_CHECK(first == hits(42, true));
  CAF_CHECK(first != hits(43, false));
  // Roughly the share asked for (400 draws: 0.3 +- 5 standard deviations).
  CAF_CHECK_GREATER(first.size(), 80u);
  CAF_CHECK_LESS(first.size(), 160u);
  plan_state never{plan_of("rules:\n  - {match: {probability: 0}, action: {hang: true}}"), 1};
  plan_state always{plan_of("rules:\n  - {match: {probability: 1}, action: {hang: true}}"), 1};
  for (const auto& p : prompts) {
    CAF_CHECK(!never.decide(chat(p), t0).rule);
    CAF_CHECK(always.decide(chat(p), t0).rule);
  }
}

CAF_TEST(a retry of a faulted request gets a fresh draw) {
  plan_state state{plan_of("rules:\n  - {match: {probability: 0.5}, action: {status: 503}}"), 7};
  // Over many requests, some fail on the first attempt and pass on the second.
  int recovered = 0;
  for (int i = 0; i < 50; ++i) {
    auto facts = chat("job " + std::to_string(i));
    if (state.decide(facts, t0).rule && !state.decide(facts, t0).rule)
      ++recovered;
  }
  CAF_CHECK_GREATER(recovered, 0);
}

CAF_TEST(a loading rule answers 503 from its first match for its duration) {
  plan_state state{plan_of(R"(
rules:
  - {name: cold, match: {model: big}, action: {loading_ms: 2000}}
  - {name: after, match: {model: big}, action: {status: 500}}
)"),
                   1};
  auto first = state.decide(chat("x", "big"), t0 + 5s);
  CAF_REQUIRE(first.rule == size_t{0});
  CAF_CHECK(first.chosen.response == response_kind::error);
  CAF_CHECK(first.chosen.error == error_kind::loading);
  CAF_CHECK_EQUAL(first.chosen.status, 503u);
  CAF_CHECK_EQUAL(rule_of(state, chat("x", "big"), t0 + 6999ms), "cold");
  CAF_CHECK_EQUAL(rule_of(state, chat("x", "big"), t0 + 7s), "after");
  CAF_CHECK_EQUAL(rule_of(state, chat("x", "small"), t0 + 5s), "-");
  state.reset();
  CAF_CHECK_EQUAL(rule_of(state, chat("x", "big"), t0 + 60s), "cold");
}

CAF_TEST(actions carry the rule error and drawn delays) {
  plan_state state{plan_of(R"(
rules:
  - {match: {prompt: err}, action: {status: 503, retry_after_s: 3, message: go away, latency_ms: 5}}
  - {match: {prompt: cut}, action: {truncate_after: 2, latency_ms: {uniform: [100, 200]},
                                    token_delay_ms: {normal: {mean: 50, stddev: 10}}}}
)"),
                   9};
  auto err = state.decide(chat("err"), t0).chosen;
  CAF_CHECK(err.response == response_kind::error);
  CAF_CHECK(err.error == error_kind::busy);
  CAF_CHECK_EQUAL(err.status, 503u);
  CAF_CHECK(err.retry_after == std::chrono::seconds{3});
  CAF_CHECK(err.message == std::optional<std::string>{"go away"});
  CAF_CHECK(err.latency == 5ms);
  CAF_CHECK(err.applied.empty());
  std::set<int64_t> latencies;
  for (int i = 0; i < 100; ++i) {
    auto cut = state.decide(chat("cut " + std::to_string(i)), t0).chosen;
    CAF_CHECK(cut.response == response_kind::truncate);
    CAF_CHECK(cut.chunks_before_break == size_t{2});
    CAF_CHECK(cut.latency >= 100ms && cut.latency <= 200ms);
    CAF_CHECK(cut.token_delay >= 0ms && cut.token_delay <= 200ms);
    latencies.insert(cut.latency.count());
  }
  CAF_CHECK_GREATER(latencies.size(), 20u);
  // The same seed, rule, request and attempt draw the same numbers.
  decision_random a{1, 2, 3, 4}, b{1, 2, 3, 4}, c{1, 2, 3, 5};
  auto da = a.uniform();
  CAF_CHECK_EQUAL(da, b.uniform());
  CAF_CHECK_NOT_EQUAL(da, c.uniform());
}

CAF_TEST(request identities follow model and messages) {
  chat_request one;
  one.model = "m";
  one.messages = {{"system", "s"}, {"user", "u"}};
  auto same = one;
  same.stream = !one.stream;
  auto other_text = one;
  other_text.messages[1].content = "v";
  auto other_model = one;
  other_model.model = "n";
  CAF_CHECK_EQUAL(request_identity(one), request_identity(same));
  CAF_CHECK_NOT_EQUAL(request_identity(one), request_identity(other_text));
  CAF_CHECK_NOT_EQUAL(request_identity(one), request_identity(other_model));
  CAF_CHECK_NOT_EQUAL(request_identity(endpoint::tags), request_identity(endpoint::ps));
}

// -- the responses plans ask for -----------------------------------------------------------------

CAF_TEST(truncated streams end cleanly without their final chunk) {
  chat_request request;
  request.model = "m:1b";
  request.messages = {{"user", "one two three four"}};
  action cut;
  cut.response = response_kind::truncate;
  cut.chunks_before_break = 2;
  generation_context context{std::chrono::system_clock::time_point{} + 1000s, 1};
  auto ollama = plan_generation(dialect::ollama_chat, request, cut, context);
  CAF_CHECK(!ollama.cut);
  CAF_CHECK_EQUAL(ollama.frames.size(), 2u);
  CAF_CHECK(ollama.body.find("\"done\":true") == std::string::npos);
  CAF_CHECK(ollama.body.find("two ") != std::string::npos);
  CAF_CHECK(ollama.body.find("three") == std::string::npos);
  request.stream = true;
  auto openai = plan_generation(dialect::openai_chat, request, cut, context);
  CAF_CHECK(!openai.cut);
  CAF_CHECK(openai.body.find("[DONE]") == std::string::npos);
  CAF_CHECK(openai.body.find("finish_reason\":\"stop") == std::string::npos);
  request.stream = false;
  auto whole = plan_generation(dialect::ollama_chat, request, action{}, context);
  auto half = plan_generation(dialect::ollama_chat, request, cut, context);
  CAF_CHECK(!half.cut);
  CAF_CHECK_EQUAL(half.content_length, half.body.size());
  CAF_CHECK_EQUAL(half.body, whole.body.substr(0, whole.body.size() / 2));
}

CAF_TEST(plan errors keep their status and message in the shape of each API) {
  action a;
  a.response = response_kind::error;
  a.error = error_kind::internal;
  a.status = 502;
  chat_request request;
  auto ollama = plan_error(api_family::ollama, error_for(a, request, api_family::ollama));
  CAF_CHECK_EQUAL(ollama.status, 502u);
  auto ollama_body = json::parse(ollama.body);
  CAF_CHECK_EQUAL(ollama_body["error"], "injected fault: http502");
  a.message = "custom words";
  auto openai = plan_error(api_family::openai, error_for(a, request, api_family::openai));
  auto body = json::parse(openai.body);
  CAF_CHECK_EQUAL(body["error"]["message"], "custom words");
  CAF_CHECK_EQUAL(body["error"]["code"], 502);
  CAF_CHECK_EQUAL(body["error"]["type"], "server_error");
}
