#pragma once
// The policy step of a tools/call, shared by every actor that accepts calls: evaluate the
// policy (a pure function over the immutable snapshot), read the counters that state.*
// conditions need, then reserve the call's quota in the bucket registry, all or nothing.

#include "actors/spawn.hpp"

#include <chrono>
#include <unordered_map>

namespace offload {

using defaults::policy_reply_timeout;

// Seconds until a refused counter frees up, for the agent's "try again in N s".
inline int64_t retry_after_seconds(const policy_denial& denial,
                                   std::chrono::system_clock::time_point now) {
  if (!denial.counter)
    return 0;
  if (const auto* fixed = std::get_if<fixed_window>(&denial.counter->window))
    return fixed_window_bounds(now, *fixed).until_reset.count();
  return std::get<rolling_window>(denial.counter->window).length.count();
}

inline policy_denial internal_policy_error() {
  return {"(internal)", "Internal policy error: the rate-limit counters did not answer", {}};
}

// Decides `tool` with `args` for `caller`. Calls `allowed(held)` with the quota taken (to give
// back if the call ends in a JSON-RPC error), or `denied(tool_result)` with the result to send.
template <class Self, class Allowed, class Denied>
void check_policy(Self* self, const policy_context& ctx, const std::string& tool, const json& args,
                  const caller_identity& caller, Allowed allowed, Denied denied) {
  auto now = ctx.now ? ctx.now() : std::chrono::system_clock::now();
  auto reserve = [self, ctx, now, allowed, denied](policy_decision decision) {
    if (!decision.allowed()) {
      denied(denial_tool_result(*decision.denial, retry_after_seconds(*decision.denial, now)));
      return;
    }
    if (decision.reservations.empty()) {
      allowed(std::vector<held_quota>{});
      return;
    }
    self->request(ctx.registry, policy_reply_timeout, reserve_atom_v,
                  std::move(decision.reservations))
        .then(
            [allowed, denied](reservation_outcome& outcome) {
              if (outcome.granted)
                allowed(std::move(outcome.held));
              else
                denied(denial_tool_result(outcome.denial.value_or(internal_policy_error()),
                                          outcome.retry_after_seconds));
            },
            [denied](caf::error&) { denied(denial_tool_result(internal_policy_error())); });
  };
  // First pass: which counters do the conditions read? Most policies read none, and then this
  // pass is the decision.
  std::vector<std::string> keys;
  auto first = evaluate_policy(
      *ctx.policy, tool, args,
      [&keys](const std::string& key) {
        keys.push_back(key);
        return int64_t{0};
      },
      caller);
  if (keys.empty()) {
    reserve(std::move(first));
    return;
  }
  self->request(ctx.registry, policy_reply_timeout, peek_atom_v, keys)
      .then(
          [ctx, tool, args, caller, keys, reserve](std::vector<int64_t>& values) {
            std::unordered_map<std::string, int64_t> known;
            for (size_t i = 0; i < keys.size() && i < values.size(); ++i)
              known[keys[i]] = values[i];
            auto lookup = [&known](const std::string& key) {
              auto it = known.find(key);
              return it == known.end() ? int64_t{0} : it->second;
            };
            reserve(evaluate_policy(*ctx.policy, tool, args, lookup, caller));
          },
          [denied](caf::error&) { denied(denial_tool_result(internal_policy_error())); });
}

} // namespace offload
