// Deciding which rule of a fault plan a request meets; parsing is in fakellm_plan_parse.cpp.

#include "protocol/fakellm_plan.hpp"

#include "protocol/fakellm_request.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <re2/re2.h>

namespace offload::fakellm {

namespace {

// FNV-1a: stable across platforms and builds, unlike std::hash, so identities (and the faults
// they seed) are the same everywhere.
struct fnv1a {
  uint64_t value = 0xcbf29ce484222325ULL;

  void add(std::string_view text) {
    for (unsigned char c : text) {
      value ^= c;
      value *= 0x100000001b3ULL;
    }
    // A separator, so that ("ab", "c") and ("a", "bc") differ.
    value ^= 0xff;
    value *= 0x100000001b3ULL;
  }
};

// SplitMix64's finaliser: spreads every input bit over the output, so that neighbouring seeds,
// rules and attempts give unrelated generators.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

bool contains(const std::vector<uint64_t>& values, uint64_t value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

bool is_generation(endpoint e) {
  return e == endpoint::chat || e == endpoint::generate || e == endpoint::completions;
}

action to_action(const plan_action& planned, decision_random& random) {
  action result;
  // Drawn in a fixed order whatever the action, so a change to one delay of a rule does not
  // shift the others.
  result.latency = random.draw(planned.latency);
  result.first_token_delay = random.draw(planned.first_token_delay);
  result.token_delay = random.draw(planned.token_delay);
  result.response = planned.response;
  result.error = planned.error;
  result.status = planned.status;
  result.message = planned.message;
  result.retry_after = planned.retry_after;
  result.chunks_before_break = planned.chunks_before_break;
  if (planned.loading.count() > 0) {
    result.response = response_kind::error;
    result.error = error_kind::loading;
    result.status = default_status(error_kind::loading);
  }
  return result;
}

} // namespace

uint64_t request_identity(const chat_request& request) {
  fnv1a hash;
  hash.add(request.model);
  for (const auto& m : request.messages) {
    hash.add(m.role);
    hash.add(m.content);
  }
  return hash.value;
}

uint64_t request_identity(endpoint target) {
  fnv1a hash;
  hash.add(to_string(target));
  return hash.value;
}

error_kind error_kind_for_status(uint16_t status) {
  switch (status) {
  case 400:
    return error_kind::bad_request;
  case 404:
    return error_kind::model_not_found;
  case 429:
    return error_kind::rate_limited;
  case 503:
    return error_kind::busy;
  default:
    return error_kind::internal;
  }
}

decision_random::decision_random(uint64_t seed, size_t rule, uint64_t identity, uint64_t attempt)
    : engine_(mix(mix(mix(mix(seed) ^ rule) ^ identity) ^ attempt)) {}

double decision_random::uniform() {
  // The top 53 bits make every double in [0, 1) that is a multiple of 2^-53 equally likely.
  return static_cast<double>(engine_() >> 11) * 0x1.0p-53;
}

std::chrono::milliseconds decision_random::draw(const millis_distribution& d) {
  double value = d.first;
  switch (d.kind) {
  case millis_distribution::shape::fixed:
    break;
  case millis_distribution::shape::uniform:
    value = d.first + (d.second - d.first) * uniform();
    break;
  case millis_distribution::shape::normal: {
    // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
    auto u1 = 1.0 - uniform();
    auto u2 = uniform();
    value =
        d.first + d.second * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    break;
  }
  }
  value = std::clamp(std::round(value), 0.0, static_cast<double>(max_latency.count()));
  return std::chrono::milliseconds{static_cast<int64_t>(value)};
}

plan_state::plan_state(fault_plan plan, uint64_t seed)
    : plan_(std::move(plan))
    , seed_(seed)
    , counters_(plan_.rules.size()) {}

bool plan_state::passes_filters(const plan_rule& rule, const request_facts& request,
                                uint64_t attempt) const {
  const auto& m = rule.match;
  if (m.api && *m.api != request.family)
    return false;
  if (m.endpoints.empty()
          ? !is_generation(request.target)
          : std::find(m.endpoints.begin(), m.endpoints.end(), request.target) == m.endpoints.end())
    return false;
  if (!m.models.empty() && (request.model.empty() || !find_served_model(m.models, request.model)))
    return false;
  if (m.prompt && !RE2::PartialMatch(request.prompt, *m.prompt))
    return false;
  if (request.prompt_tokens < m.min_prompt_tokens)
    return false;
  if (!m.attempts.empty() && !contains(m.attempts, attempt))
    return false;
  return true;
}

plan_decision plan_state::decide(const request_facts& request,
                                 std::chrono::steady_clock::time_point now) {
  auto attempt = ++attempts_[request.identity];
  for (size_t i = 0; i < plan_.rules.size(); ++i) {
    const auto& rule = plan_.rules[i];
    auto& counters = counters_[i];
    if (!passes_filters(rule, request, attempt))
      continue;
    auto position = ++counters.seen;
    const auto& m = rule.match;
    if (!m.nth.empty() && !contains(m.nth, position))
      continue;
    if (m.every != 0 && position % m.every != 0)
      continue;
    if (position <= m.after)
      continue;
    decision_random random{seed_, i, request.identity, attempt};
    // Drawn even at probability 1, so that making a rule certain does not change its delays.
    if (!(random.uniform() < m.probability))
      continue;
    if (rule.action.loading.count() > 0) {
      if (!counters.loading_since)
        counters.loading_since = now;
      if (now - *counters.loading_since >= rule.action.loading)
        continue;
    }
    ++counters.matched;
    return plan_decision{i, to_action(rule.action, random), attempt};
  }
  return plan_decision{std::nullopt, action{}, attempt};
}

void plan_state::reset() {
  counters_.assign(plan_.rules.size(), rule_counters{});
  attempts_.clear();
}

} // namespace offload::fakellm
