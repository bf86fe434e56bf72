#define CAF_SUITE chaos
#include <caf/test/unit_test.hpp>

#include "protocol/chaos.hpp"

#include <fmt/format.h>

#include <cmath>
#include <string>
#include <vector>

using namespace offload;
using namespace std::chrono_literals;

namespace {

chaos::settings on(double probability, uint64_t seed = 7) {
  chaos::settings s;
  s.enabled = true;
  s.seed = seed;
  s.kill_task = s.delay_message = s.crash_backend = probability;
  return s;
}

std::string key(size_t i) {
  return fmt::format("stdio/1/{}", i);
}

// The tasks of a 10-task batch that kill_task strikes.
std::vector<size_t> victims(const chaos::settings& s) {
  std::vector<size_t> out;
  for (size_t i = 0; i < 10; ++i)
    if (chaos::strikes(s, chaos::fault::kill_task, key(i)))
      out.push_back(i);
  return out;
}

} // namespace

CAF_TEST(nothing strikes when chaos is off or the probability is 0) {
  auto off = on(1.0);
  off.enabled = false;
  for (size_t i = 0; i < 1000; ++i)
    for (auto kind : chaos::all_faults) {
      CAF_CHECK(!chaos::strikes(off, kind, key(i), 1));
      CAF_CHECK(!chaos::strikes(on(0.0), kind, key(i), 1));
    }
  CAF_CHECK(!chaos::delay_for(off, key(0), 1));
  CAF_CHECK(!chaos::delay_for(on(0.0), key(0), 1));
}

CAF_TEST(everything strikes at probability 1) {
  for (size_t i = 0; i < 1000; ++i)
    for (auto kind : chaos::all_faults)
      CAF_CHECK(chaos::strikes(on(1.0), kind, key(i), 1));
}

CAF_TEST(decisions strike at about their probability) {
  for (double p : {0.05, 0.2, 0.5, 0.9}) {
    size_t hits = 0;
    const size_t n = 20000;
    for (size_t i = 0; i < n; ++i)
      hits += chaos::strikes(on(p), chaos::fault::crash_backend, key(i), 1) ? 1 : 0;
    auto rate = static_cast<double>(hits) / n;
    CAF_CHECK_LESS(std::abs(rate - p), 0.015);
  }
}

CAF_TEST(a decision depends on seed key fault and attempt only) {
  auto s = on(0.5);
  CAF_CHECK_EQUAL(victims(s), victims(s));
  CAF_CHECK_NOT_EQUAL(victims(s), victims(on(0.5, 8)));
  // The seed's victims, fixed for good: a seed means the same faults in every build.
  CAF_CHECK_EQUAL(victims(on(0.3, 42)), (std::vector<size_t>{3, 6, 7, 8}));
  // Other faults and other attempts are decided independently of each other.
  size_t differ_by_fault = 0;
  size_t differ_by_attempt = 0;
  for (size_t i = 0; i < 200; ++i) {
    auto first = chaos::strikes(s, chaos::fault::crash_backend, key(i), 1);
    differ_by_attempt += first != chaos::strikes(s, chaos::fault::crash_backend, key(i), 2);
    differ_by_fault += first != chaos::strikes(s, chaos::fault::kill_task, key(i), 1);
  }
  CAF_CHECK_GREATER(differ_by_attempt, 50u);
  CAF_CHECK_GREATER(differ_by_fault, 50u);
}

CAF_TEST(delays are drawn from the configured range) {
  auto s = on(1.0);
  s.delay_min = 20ms;
  s.delay_max = 30ms;
  bool low = false;
  bool high = false;
  for (size_t i = 0; i < 1000; ++i) {
    auto d = chaos::delay_for(s, key(i), 1);
    CAF_REQUIRE(d.has_value());
    CAF_CHECK(*d >= 20ms && *d <= 30ms);
    low = low || *d == 20ms;
    high = high || *d == 30ms;
  }
  CAF_CHECK(low && high); // both ends are reachable
  CAF_CHECK(chaos::delay_for(s, key(1), 1) == chaos::delay_for(s, key(1), 1));
  s.delay_min = s.delay_max = 5ms;
  CAF_CHECK(chaos::delay_for(s, key(3), 2) == std::chrono::milliseconds{5});
  // Whether a request is held back is the same decision as strikes() makes.
  auto half = on(0.5);
  for (size_t i = 0; i < 200; ++i)
    CAF_CHECK_EQUAL(chaos::delay_for(half, key(i), 1).has_value(),
                    chaos::strikes(half, chaos::fault::delay_message, key(i), 1));
}

CAF_TEST(names and the start - up description) {
  CAF_CHECK_EQUAL(chaos::to_string(chaos::fault::kill_task), "kill_task");
  CAF_CHECK_EQUAL(chaos::to_string(chaos::fault::delay_message), "delay_message");
  CAF_CHECK_EQUAL(chaos::to_string(chaos::fault::crash_backend), "crash_backend");
  auto s = on(0.25, 99);
  s.crash_backend = 0.05;
  CAF_CHECK_EQUAL(chaos::describe(s), "kill_task 0.25, delay_message 0.25 (10..500 ms), "
                                      "crash_backend 0.05, seed 99");
}
