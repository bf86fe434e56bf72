#include "actors/circuit_breaker.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace offload {

std::string_view to_string(breaker_state state) {
  switch (state) {
  case breaker_state::closed:
    return "closed";
  case breaker_state::open:
    return "open";
  case breaker_state::half_open:
    return "half-open";
  }
  return "unknown";
}

circuit_breaker::circuit_breaker(breaker_settings settings)
    : settings_(settings) {
  if (settings_.window.count() < static_cast<int64_t>(bucket_count))
    settings_.window = std::chrono::milliseconds{bucket_count};
}

int64_t circuit_breaker::slice_of(clock::time_point now) const {
  auto slice = settings_.window / static_cast<int64_t>(bucket_count);
  return std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) / slice;
}

uint32_t circuit_breaker::window_sum(clock::time_point now, uint32_t bucket::*counter) const {
  auto current = slice_of(now);
  uint32_t sum = 0;
  for (const auto& b : buckets_)
    if (b.index > current - static_cast<int64_t>(bucket_count))
      sum += b.*counter;
  return sum;
}

uint32_t circuit_breaker::window_attempts(clock::time_point now) const {
  return window_sum(now, &bucket::attempts);
}

uint32_t circuit_breaker::window_failures(clock::time_point now) const {
  return window_sum(now, &bucket::failures);
}

// Closing starts from a clean slate: the failures that opened it must not reopen it at once.
void circuit_breaker::close() {
  state_ = breaker_state::closed;
  consecutive_failures_ = 0;
  buckets_.fill(bucket{});
}

void circuit_breaker::open(std::string reason) {
  state_ = breaker_state::open;
  ++epoch_;
  ++opened_;
  reason_ = std::move(reason);
}

std::optional<breaker_state> circuit_breaker::record(clock::time_point now, bool failed) {
  auto current = slice_of(now);
  auto& b = buckets_[static_cast<size_t>(current % static_cast<int64_t>(bucket_count))];
  if (b.index != current)
    b = bucket{current, 0, 0};
  ++b.attempts;
  if (failed)
    ++b.failures;
  consecutive_failures_ = failed ? consecutive_failures_ + 1 : 0;
  switch (state_) {
  case breaker_state::open:
    return std::nullopt;
  case breaker_state::half_open:
    if (failed)
      open("the trial attempt after the cool-down failed");
    else
      close();
    return state_;
  case breaker_state::closed:
    break;
  }
  if (!failed)
    return std::nullopt;
  if (settings_.consecutive_failures > 0 &&
      consecutive_failures_ >= settings_.consecutive_failures) {
    open(fmt::format("{} failures in a row", consecutive_failures_));
    return state_;
  }
  auto attempts = window_attempts(now);
  auto failures = window_failures(now);
  if (settings_.min_requests > 0 && attempts >= settings_.min_requests &&
      static_cast<double>(failures) >= settings_.failure_rate * static_cast<double>(attempts)) {
    open(fmt::format("{} of {} attempts in the last {} ms failed", failures, attempts,
                     settings_.window.count()));
    return state_;
  }
  return std::nullopt;
}

bool circuit_breaker::end_cooldown() {
  if (state_ != breaker_state::open)
    return false;
  state_ = breaker_state::half_open;
  return true;
}

std::optional<breaker_state> circuit_breaker::probe_result(bool up) {
  if (state_ != breaker_state::half_open)
    return std::nullopt;
  if (up) {
    close();
  } else {
    open("the health probe after the cool-down failed");
  }
  return state_;
}

} // namespace offload
