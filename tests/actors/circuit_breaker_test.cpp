#define CAF_SUITE circuit_breaker
#include <caf/test/unit_test.hpp>

#include "actors/circuit_breaker.hpp"

using namespace offload;
using namespace std::chrono_literals;

// The breaker as plain data, with explicit times: its window slides, closing forgets, and
// outcomes while open change nothing.

namespace {

breaker_settings settings() {
  breaker_settings s;
  s.consecutive_failures = 3;
  s.failure_rate = 0.5;
  s.min_requests = 4;
  s.window = 10s;
  s.cooldown = 5s;
  return s;
}

const circuit_breaker::clock::time_point t0{1000s};

} // namespace

CAF_TEST(consecutive failures open it and a success in between resets the count) {
  auto s = settings();
  s.min_requests = 100; // only the count of failures in a row matters here
  circuit_breaker b{s};
  CAF_CHECK(!b.record(t0, true));
  CAF_CHECK(!b.record(t0, false));
  CAF_CHECK(!b.record(t0, true));
  CAF_CHECK(!b.record(t0, true));
  CAF_CHECK_EQUAL(b.consecutive_failures(), 2u);
  auto opened = b.record(t0, true);
  CAF_REQUIRE(opened);
  CAF_CHECK(*opened == breaker_state::open);
  CAF_CHECK_EQUAL(b.times_opened(), 1u);
  CAF_CHECK_EQUAL(b.reason(), "3 failures in a row");
}

CAF_TEST(old outcomes leave the window) {
  auto s = settings();
  s.consecutive_failures = 100;
  circuit_breaker b{s};
  b.record(t0, true);
  b.record(t0, true);
  b.record(t0, false);
  CAF_CHECK_EQUAL(b.window_attempts(t0), 3u);
  CAF_CHECK_EQUAL(b.window_failures(t0 + 9s), 2u);
  // Ten seconds on, those three no longer count: one failure among two attempts is not enough.
  CAF_CHECK_EQUAL(b.window_attempts(t0 + 10s), 0u);
  CAF_CHECK(!b.record(t0 + 10s, false));
  CAF_CHECK(!b.record(t0 + 10s, true));
  CAF_CHECK(b.state() == breaker_state::closed);
  CAF_CHECK(!b.record(t0 + 11s, true));   // three attempts: fewer than min_requests
  auto opened = b.record(t0 + 12s, true); // four, three of them failed
  CAF_REQUIRE(opened);
  CAF_CHECK(*opened == breaker_state::open);
}

CAF_TEST(the cool down leads to half open and the next outcome decides) {
  circuit_breaker b{settings()};
  for (int i = 0; i < 3; ++i)
    b.record(t0, true);
  CAF_REQUIRE(b.state() == breaker_state::open);
  auto epoch = b.epoch();
  // While open, outcomes change nothing (not even a success).
  CAF_CHECK(!b.record(t0 + 1s, false));
  CAF_CHECK(!b.probe_result(true));
  CAF_CHECK(b.end_cooldown());
  CAF_CHECK(b.state() == breaker_state::half_open);
  CAF_CHECK(!b.end_cooldown());
  auto reopened = b.record(t0 + 6s, true);
  CAF_REQUIRE(reopened);
  CAF_CHECK(*reopened == breaker_state::open);
  CAF_CHECK_NOT_EQUAL(b.epoch(), epoch);
  CAF_CHECK(b.end_cooldown());
  auto closed = b.probe_result(true);
  CAF_REQUIRE(closed);
  CAF_CHECK(*closed == breaker_state::closed);
  // Closing forgot the failures: a single one does not reopen it.
  CAF_CHECK(!b.record(t0 + 12s, true));
  CAF_CHECK_EQUAL(b.window_failures(t0 + 12s), 1u);
  CAF_CHECK_EQUAL(b.times_opened(), 2u);
}
