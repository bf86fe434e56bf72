#pragma once
// Fault plans of `offload fakellm --plan FILE.yaml --seed N`: an ordered list of rules, each a
// match (API, endpoint, model, a regex on the prompt, the prompt's length, the Nth request, every
// Nth, the Nth attempt of the same request, a probability) and an action (an error, latency,
// delays, a broken stream, a hang, a loading phase). A rule's action becomes the same `action` that
// prompt markers resolve to, so the server plays both the same way. Pure code: parsing takes text,
// deciding takes the time, and every decision is unit-tested (docs/fault-injection.md has the
// format).
//
// Determinism. A rule's random choices (its probability and any latency distribution) are drawn
// from a generator seeded with (seed, rule index, request identity, attempt of that identity),
// never from one shared stream. Two runs that send the same requests therefore get the same
// faults even when the requests arrive concurrently in a different order: a request's fate
// depends on what it is and how often the same request came before, not on what else arrived
// in between. Only the positional matches (`nth`, `every`, `after`) count arrivals, so under
// concurrency they fix how many requests are hit, not which ones.

#include "protocol/fakellm_route.hpp"
#include "protocol/fakellm_script.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace re2 {
class RE2;
}

namespace offload::fakellm {

struct chat_request;

// -- the plan ------------------------------------------------------------------------------------

// A number of milliseconds, fixed or drawn per request; draws are rounded and clamped to
// [0, max_latency].
struct millis_distribution {
  enum class shape : uint8_t { fixed, uniform, normal };
  shape kind = shape::fixed;
  double first = 0;  // fixed: the value; uniform: the low end; normal: the mean
  double second = 0; // uniform: the high end; normal: the standard deviation

  bool is_zero() const { return kind == shape::fixed && first == 0; }
};

struct plan_match {
  std::optional<api_family> api;
  std::vector<endpoint> endpoints;        // empty: the generation endpoints
  std::vector<std::string> models;        // empty: any; Ollama's ":latest" rule applies
  std::shared_ptr<const re2::RE2> prompt; // searched in the last user message; unset: any
  uint64_t min_prompt_tokens = 0;         // requests at least this long (the fake's tokens: words)
  std::vector<uint64_t> attempts;         // the Nth arrival of the same request; empty: any
  std::vector<uint64_t> nth; // the Nth request that passed the filters above; empty: any
  uint64_t every = 0;        // every Nth of those; 0: any
  uint64_t after = 0;        // those after the first N; 0: any
  double probability = 1.0;
};

struct plan_action {
  response_kind response = response_kind::answer;
  error_kind error = error_kind::internal;
  uint16_t status = 200; // of an error response
  std::optional<std::string> message;
  std::optional<std::chrono::seconds> retry_after;
  std::optional<size_t> chunks_before_break; // drop, truncate, midstream_error
  millis_distribution latency;
  millis_distribution first_token_delay;
  millis_distribution token_delay;
  // A loading phase: from the rule's first match, for this long, matching requests get 503
  // "Loading model"; afterwards the rule matches nothing. Zero: not a loading rule.
  std::chrono::milliseconds loading{0};
};

struct plan_rule {
  std::string name; // from the file, or "rule N" (1-based)
  int line = 0;     // where the rule starts, for messages and stats
  plan_match match;
  plan_action action;
};

struct fault_plan {
  std::string source; // the file name, or "PUT /_fake/plan"
  std::string description;
  std::vector<plan_rule> rules;
};

struct plan_parse_result {
  std::optional<fault_plan> plan;
  std::string error; // "SOURCE:LINE: reason" when the plan was rejected

  bool ok() const { return plan.has_value(); }
};

// Reads a plan (YAML, so JSON too). Unknown keys, bad values, bad regexes, probabilities outside
// [0, 1], unknown actions and contradictory actions are rejected with the line and the reason.
plan_parse_result parse_fault_plan(std::string_view text, std::string_view source);

// The error kind an error status stands for when a rule gives only the status.
error_kind error_kind_for_status(uint16_t status);

// -- deciding ------------------------------------------------------------------------------------

// What a rule can see of one request.
struct request_facts {
  api_family family = api_family::ollama;
  endpoint target = endpoint::not_found;
  std::string_view model;     // empty for requests that name none
  std::string_view prompt;    // the last user message; empty without one
  uint64_t prompt_tokens = 0; // words of all messages, the fake's token count
  uint64_t identity = 0;      // equal for requests that are "the same" (request_identity)
};

// Generation requests are the same when they name the same model with the same messages;
// retries of one task are, two tasks with different text are not.
uint64_t request_identity(const chat_request& request);
// Requests without a body are the same when they go to the same endpoint.
uint64_t request_identity(endpoint target);

struct plan_decision {
  std::optional<size_t> rule; // index into fault_plan::rules; unset when no rule matched
  action chosen;              // what the server does with the request: a plain answer, or not
  uint64_t attempt = 0;       // how often this request has arrived, this time included
};

// Per-rule counters, for GET /_fake/stats.
struct rule_counters {
  uint64_t seen = 0;    // requests that passed the rule's filters (its `nth` counts these)
  uint64_t matched = 0; // requests the rule decided
  std::optional<std::chrono::steady_clock::time_point> loading_since;
};

// A plan in force, with the counters its rules read. Not thread-safe: the server runs it on its
// one I/O thread.
class plan_state {
public:
  plan_state(fault_plan plan, uint64_t seed);

  // Counts the request and decides it by the first rule that matches it; without one, the
  // request gets a plain answer.
  plan_decision decide(const request_facts& request, std::chrono::steady_clock::time_point now);

  const fault_plan& plan() const { return plan_; }
  uint64_t seed() const { return seed_; }
  const std::vector<rule_counters>& counters() const { return counters_; }

  // Starts over: counters, attempt numbers and loading phases (POST /_fake/reset_stats).
  void reset();

private:
  bool passes_filters(const plan_rule& rule, const request_facts& request, uint64_t attempt) const;

  fault_plan plan_;
  uint64_t seed_;
  std::vector<rule_counters> counters_;
  std::unordered_map<uint64_t, uint64_t> attempts_; // by request identity
};

// The random numbers of one rule for one request, reproducible on every platform: a
// std::mt19937_64 (whose output the standard fixes) read through our own conversions, because
// the standard distributions differ between library implementations.
class decision_random {
public:
  decision_random(uint64_t seed, size_t rule, uint64_t identity, uint64_t attempt);

  double uniform(); // in [0, 1)
  std::chrono::milliseconds draw(const millis_distribution& d);

private:
  std::mt19937_64 engine_;
};

} // namespace offload::fakellm
