#pragma once
// The circuit breaker of one backend, as plain data: the router feeds it outcomes with the time
// they happened and acts on the transitions it returns (logging, scheduling the cool-down,
// probing). No actor, no clock of its own, so it is exact under the test clock.

#include "actors/spawn.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace offload {

std::string_view to_string(breaker_state state);

class circuit_breaker {
public:
  using clock = std::chrono::steady_clock;

  explicit circuit_breaker(breaker_settings settings = {});

  // An attempt ended at `now`; returns the new state when this outcome changed it. A failure
  // while closed may open it; the first outcome while half-open closes or reopens it. Outcomes
  // while open (attempts routed to it anyway, or before it opened) change nothing: only the
  // trial after the cool-down may close it.
  std::optional<breaker_state> record(clock::time_point now, bool failed);

  // The cool-down is over: open becomes half-open (returns true); otherwise nothing happens.
  bool end_cooldown();

  // A health probe's verdict while half-open: up closes the breaker, down reopens it. Returns
  // the new state when it changed.
  std::optional<breaker_state> probe_result(bool up);

  breaker_state state() const { return state_; }
  // Incremented whenever the breaker opens; a cool-down timer carries it, so that a stale timer
  // (from an earlier opening) is recognised.
  uint64_t epoch() const { return epoch_; }
  uint64_t times_opened() const { return opened_; }
  uint32_t consecutive_failures() const { return consecutive_failures_; }
  // Attempts and failures within the window ending at `now`.
  uint32_t window_attempts(clock::time_point now) const;
  uint32_t window_failures(clock::time_point now) const;
  const breaker_settings& settings() const { return settings_; }
  // Why it opened last, for the log: "5 failures in a row" or "6 of 10 attempts in 60 s failed".
  std::string_view reason() const { return reason_; }

private:
  // The window is kept as ten buckets of a tenth of it each, so recording is O(1) and memory
  // does not grow with traffic; the window slides a bucket at a time.
  static constexpr size_t bucket_count = 10;
  struct bucket {
    int64_t index = -1; // which slice of time it counts
    uint32_t attempts = 0;
    uint32_t failures = 0;
  };

  int64_t slice_of(clock::time_point now) const;
  // The sum of one counter of the buckets still inside the window.
  uint32_t window_sum(clock::time_point now, uint32_t bucket::*counter) const;
  void open(std::string reason);
  void close();

  breaker_settings settings_;
  breaker_state state_ = breaker_state::closed;
  uint32_t consecutive_failures_ = 0;
  std::array<bucket, bucket_count> buckets_{};
  uint64_t epoch_ = 0;
  uint64_t opened_ = 0;
  std::string reason_;
};

} // namespace offload
