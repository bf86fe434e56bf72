#define CAF_SUITE rate_limit_bucket
#include <caf/test/dsl.hpp>

#include "tests/actors/counter_fixtures.hpp"

using namespace offload;
using namespace offload::test;
using namespace std::chrono_literals;

namespace {

using time_point = std::chrono::system_clock::time_point;

// A UTC instant: `day` plus a time of day.
time_point utc(std::chrono::year_month_day day, std::chrono::seconds time_of_day) {
  return std::chrono::sys_days{day} + time_of_day;
}

constexpr auto march_10 = std::chrono::year{2024} / std::chrono::March / 10;

using saves = std::vector<std::pair<std::string, saved_counter>>;

// Stands in for the counter store: records every save, has nothing to load.
counter_store_actor::behavior_type recording_store(counter_store_actor::pointer,
                                                   std::shared_ptr<saves> out) {
  return {
      [](counter_load_atom, const std::string&) { return std::optional<saved_counter>{}; },
      [out](counter_save_atom, std::string& key, saved_counter& state) {
        out->emplace_back(std::move(key), std::move(state));
      },
      [](counter_flush_atom) {},
  };
}

saved_counter saved_fixed(fixed_window window, time_point window_start, int64_t value) {
  return test::saved_fixed(window, epoch_seconds(window_start), value);
}

struct fixture : test_coordinator_fixture<> {
  // The wall clock every bucket reads; tests move it by assignment.
  time_point now = utc(march_10, 12h + 34min + 56s);
  wall_clock clock = [this] { return now; };
  std::vector<rate_limit_bucket_actor> spawned;
  std::shared_ptr<saves> saved = std::make_shared<saves>();
  counter_store_actor store = sys.spawn(recording_store, saved);

  ~fixture() override {
    for (auto& bucket : spawned)
      caf::anon_send_exit(bucket, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    consume_messages();
  }

  rate_limit_bucket_actor spawn_aut(counter_window window) {
    spawned.push_back(spawn_rate_limit_bucket(sys, "tool.calls", window, clock));
    return spawned.back();
  }

  // A bucket that starts from `from` and saves to the recording store.
  rate_limit_bucket_actor spawn_restored(counter_window window, std::optional<saved_counter> from) {
    spawned.push_back(
        spawn_rate_limit_bucket(sys, "tool.calls", window, clock, std::move(from), store));
    return spawned.back();
  }

  bucket_verdict reserve(const rate_limit_bucket_actor& aut, int64_t amount, int64_t limit) {
    std::optional<bucket_verdict> out;
    auto handle = self->request(aut, caf::infinite, reserve_atom_v, amount, limit);
    consume_messages();
    handle.receive([&](bucket_verdict& v) { out = std::move(v); },
                   [](caf::error& err) { CAF_FAIL("bucket failed: " << caf::to_string(err)); });
    CAF_REQUIRE(out.has_value());
    return *out;
  }

  // Reserves `count` times 1 and returns how many were granted.
  int grant_count(const rate_limit_bucket_actor& aut, int count, int64_t limit) {
    int granted = 0;
    for (int i = 0; i < count; ++i)
      granted += reserve(aut, 1, limit).granted ? 1 : 0;
    return granted;
  }

  int64_t peek(const rate_limit_bucket_actor& aut) {
    int64_t out = -1;
    auto handle = self->request(aut, caf::infinite, peek_atom_v);
    consume_messages();
    handle.receive([&](int64_t v) { out = v; },
                   [](caf::error& err) { CAF_FAIL("bucket failed: " << caf::to_string(err)); });
    return out;
  }

  void release(const rate_limit_bucket_actor& aut, const held_quota& held) {
    self->send(aut, release_atom_v, held);
    consume_messages();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(rate_limit_bucket_tests, fixture)

CAF_TEST(exactly limit units are granted and the next is refused until the minute resets) {
  auto aut = spawn_aut(fixed_window::minute);
  for (int i = 0; i < 3; ++i) {
    auto v = reserve(aut, 1, 3);
    CAF_REQUIRE(v.granted);
    CAF_CHECK_EQUAL(v.held.key, "tool.calls");
    CAF_CHECK_EQUAL(v.held.amount, 1);
    CAF_CHECK_EQUAL(v.held.window_id, epoch_seconds(utc(march_10, 12h + 34min)));
  }
  auto refused = reserve(aut, 1, 3);
  CAF_CHECK(!refused.granted);
  CAF_CHECK_EQUAL(refused.retry_after_seconds, 4); // 12:34:56 -> 12:35:00
  CAF_CHECK_EQUAL(peek(aut), 3);
}

CAF_TEST(the limit is inclusive and comes from the caller) {
  // lt N / lte N are turned into a limit by the evaluator; the bucket only compares.
  auto aut = spawn_aut(fixed_window::minute);
  CAF_CHECK(reserve(aut, 3, 5).granted);
  CAF_CHECK(reserve(aut, 2, 5).granted); // value + amount == limit
  CAF_CHECK(!reserve(aut, 1, 5).granted);
  CAF_CHECK(reserve(aut, 1, 6).granted); // a higher limit (policy reload) applies at once
  CAF_CHECK_EQUAL(peek(aut), 6);
  auto zero_limit = spawn_aut(fixed_window::minute);
  CAF_CHECK(!reserve(zero_limit, 1, 0).granted);
  CAF_CHECK(reserve(zero_limit, 0, 0).granted);
}

CAF_TEST(an amount that cannot fit is refused without overflow) {
  auto aut = spawn_aut(fixed_window::minute);
  CAF_REQUIRE(reserve(aut, 1, 10).granted);
  auto v = reserve(aut, std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max());
  CAF_CHECK(!v.granted);
  CAF_CHECK_EQUAL(peek(aut), 1);
}

CAF_TEST(a negative amount is an error and changes nothing) {
  auto aut = spawn_aut(fixed_window::minute);
  std::optional<caf::error> failure;
  auto handle = self->request(aut, caf::infinite, reserve_atom_v, int64_t{-5}, int64_t{10});
  consume_messages();
  handle.receive([](bucket_verdict&) { CAF_FAIL("a negative amount was answered"); },
                 [&](caf::error& err) { failure = err; });
  CAF_CHECK(failure.has_value());
  CAF_CHECK_EQUAL(peek(aut), 0);
}

CAF_TEST(the minute window resets exactly at the UTC minute boundary) {
  auto aut = spawn_aut(fixed_window::minute);
  now = utc(march_10, 12h + 34min + 59s) + 999ms;
  CAF_CHECK_EQUAL(grant_count(aut, 3, 2), 2);
  CAF_CHECK_EQUAL(reserve(aut, 1, 2).retry_after_seconds, 1); // rounded up, never 0
  now = utc(march_10, 12h + 35min);
  CAF_CHECK_EQUAL(peek(aut), 0);
  auto v = reserve(aut, 1, 2);
  CAF_CHECK(v.granted);
  CAF_CHECK_EQUAL(v.held.window_id, epoch_seconds(now));
}

CAF_TEST(the hour window spans minutes and resets on the hour) {
  auto aut = spawn_aut(fixed_window::hour);
  now = utc(march_10, 12h + 1min);
  CAF_CHECK_EQUAL(grant_count(aut, 2, 2), 2);
  now = utc(march_10, 12h + 59min + 30s);
  auto refused = reserve(aut, 1, 2);
  CAF_CHECK(!refused.granted);
  CAF_CHECK_EQUAL(refused.retry_after_seconds, 30);
  now = utc(march_10, 13h);
  CAF_CHECK(reserve(aut, 1, 2).granted);
  CAF_CHECK_EQUAL(peek(aut), 1);
}

CAF_TEST(the day window resets at 00 : 00 UTC) {
  auto aut = spawn_aut(fixed_window::day);
  now = utc(march_10, 0h);
  CAF_CHECK(reserve(aut, 5, 5).granted);
  now = utc(march_10, 23h + 59min + 59s);
  auto refused = reserve(aut, 1, 5);
  CAF_CHECK(!refused.granted);
  CAF_CHECK_EQUAL(refused.retry_after_seconds, 1);
  now = utc(std::chrono::year{2024} / std::chrono::March / 11, 0s);
  CAF_CHECK_EQUAL(peek(aut), 0);
  CAF_CHECK(reserve(aut, 5, 5).granted);
}

CAF_TEST(a clock stepped back never refunds quota) {
  auto aut = spawn_aut(fixed_window::minute);
  CAF_CHECK(reserve(aut, 1, 1).granted);
  now -= 2min;
  CAF_CHECK(!reserve(aut, 1, 1).granted);
  CAF_CHECK_EQUAL(peek(aut), 1);
}

CAF_TEST(a release within the window frees its quota) {
  auto aut = spawn_aut(fixed_window::minute);
  auto first = reserve(aut, 2, 2);
  CAF_REQUIRE(first.granted);
  CAF_CHECK(!reserve(aut, 1, 2).granted);
  now += 2s;
  release(aut, first.held);
  CAF_CHECK_EQUAL(peek(aut), 0);
  CAF_CHECK(reserve(aut, 2, 2).granted);
}

CAF_TEST(a release never takes the value below zero) {
  auto aut = spawn_aut(fixed_window::minute);
  auto held = reserve(aut, 1, 5).held;
  release(aut, held);
  release(aut, held);
  CAF_CHECK_EQUAL(peek(aut), 0);
  CAF_CHECK_EQUAL(grant_count(aut, 6, 5), 5);
}

CAF_TEST(a release after the window reset does nothing) {
  auto aut = spawn_aut(fixed_window::minute);
  auto old = reserve(aut, 1, 2);
  CAF_REQUIRE(old.granted);
  now = utc(march_10, 12h + 35min + 10s);
  CAF_CHECK_EQUAL(grant_count(aut, 3, 2), 2);
  release(aut, old.held);
  CAF_CHECK_EQUAL(peek(aut), 2);
  CAF_CHECK(!reserve(aut, 1, 2).granted);
}

CAF_TEST(a release for another counter is ignored) {
  auto aut = spawn_aut(fixed_window::minute);
  auto held = reserve(aut, 1, 1).held;
  held.key = "other.calls";
  release(aut, held);
  CAF_CHECK_EQUAL(peek(aut), 1);
}

CAF_TEST(a rolling window counts the last length seconds) {
  auto aut = spawn_aut(rolling_window{60s});
  auto t0 = now;
  CAF_CHECK(reserve(aut, 1, 3).granted);
  now = t0 + 10s;
  CAF_CHECK(reserve(aut, 1, 3).granted);
  now = t0 + 20s;
  CAF_CHECK(reserve(aut, 1, 3).granted);
  now = t0 + 30s + 500ms;
  auto refused = reserve(aut, 1, 3);
  CAF_CHECK(!refused.granted);
  CAF_CHECK_EQUAL(refused.retry_after_seconds, 30); // t0's grant leaves at t0 + 60 (29.5 s, up)
  // Two units must wait for the second-oldest grant too.
  CAF_CHECK_EQUAL(reserve(aut, 2, 3).retry_after_seconds, 40);
  now = t0 + 59s;
  CAF_CHECK_EQUAL(peek(aut), 3);
  now = t0 + 60s; // a grant is counted while newer than now - 60 s
  CAF_CHECK_EQUAL(peek(aut), 2);
  CAF_CHECK(reserve(aut, 1, 3).granted);
  CAF_CHECK(!reserve(aut, 1, 3).granted);
  now = t0 + 200s;
  CAF_CHECK_EQUAL(peek(aut), 0);
}

CAF_TEST(a rolling window gives every grant its own id) {
  auto aut = spawn_aut(rolling_window{60s});
  auto a = reserve(aut, 1, 5);
  auto b = reserve(aut, 1, 5);
  CAF_REQUIRE(a.granted && b.granted);
  CAF_CHECK_NOT_EQUAL(a.held.window_id, b.held.window_id);
}

CAF_TEST(a rolling retry_after is at least one second) {
  auto aut = spawn_aut(rolling_window{60s});
  auto t0 = now;
  CAF_CHECK(reserve(aut, 1, 1).granted);
  now = t0 + 59s + 999ms;
  CAF_CHECK_EQUAL(reserve(aut, 1, 1).retry_after_seconds, 1);
}

CAF_TEST(more than the limit in a rolling window waits a whole window) {
  auto aut = spawn_aut(rolling_window{90s});
  auto v = reserve(aut, 4, 3);
  CAF_CHECK(!v.granted);
  CAF_CHECK_EQUAL(v.retry_after_seconds, 90);
}

CAF_TEST(a rolling release removes its grant only while it is counted) {
  auto aut = spawn_aut(rolling_window{60s});
  auto t0 = now;
  auto first = reserve(aut, 2, 3);
  CAF_REQUIRE(first.granted);
  now = t0 + 30s;
  auto second = reserve(aut, 1, 3);
  CAF_REQUIRE(second.granted);
  release(aut, first.held);
  CAF_CHECK_EQUAL(peek(aut), 1);
  now = t0 + 40s;
  CAF_CHECK(reserve(aut, 2, 3).granted);
  // `second` expires at t0 + 90; releasing it afterwards touches nothing else.
  now = t0 + 95s;
  CAF_CHECK_EQUAL(peek(aut), 2);
  release(aut, second.held);
  CAF_CHECK_EQUAL(peek(aut), 2);
  release(aut, second.held);
  CAF_CHECK_EQUAL(peek(aut), 2);
}

// -- persistence -----------------------------------------------------------------------------

CAF_TEST(a bucket continues from a saved fixed window that is still current) {
  auto aut = spawn_restored(fixed_window::minute,
                            saved_fixed(fixed_window::minute, utc(march_10, 12h + 34min), 2));
  CAF_CHECK_EQUAL(peek(aut), 2);
  CAF_CHECK_EQUAL(grant_count(aut, 2, 3), 1);
  CAF_CHECK_EQUAL(reserve(aut, 1, 3).retry_after_seconds, 4);
}

CAF_TEST(a saved fixed window that has passed starts from 0) {
  auto aut = spawn_restored(fixed_window::minute,
                            saved_fixed(fixed_window::minute, utc(march_10, 12h + 33min), 3));
  CAF_CHECK_EQUAL(peek(aut), 0);
  CAF_CHECK_EQUAL(grant_count(aut, 4, 3), 3);
}

CAF_TEST(a saved fixed window later than the clock stays in force) {
  // The clock went back across the restart: as without one, that never refunds quota.
  auto aut = spawn_restored(fixed_window::minute,
                            saved_fixed(fixed_window::minute, utc(march_10, 12h + 40min), 3));
  CAF_CHECK_EQUAL(peek(aut), 3);
  CAF_CHECK(!reserve(aut, 1, 3).granted);
}

CAF_TEST(a state saved under another window is not used) {
  auto aut =
      spawn_restored(fixed_window::minute, saved_fixed(fixed_window::hour, utc(march_10, 12h), 3));
  CAF_CHECK_EQUAL(peek(aut), 0);
  auto rolled = spawn_restored(rolling_window{90s}, saved_rolling(60s, {{now - 1s, 3}}));
  CAF_CHECK_EQUAL(peek(rolled), 0);
}

CAF_TEST(saved rolling grants older than the window are dropped) {
  auto t0 = now;
  // Out of order on purpose: the bucket sorts them.
  auto aut = spawn_restored(rolling_window{60s},
                            saved_rolling(60s, {{t0 - 30s, 2}, {t0 - 70s, 5}, {t0 - 60s, 1}}));
  CAF_CHECK_EQUAL(peek(aut), 2);
  auto refused = reserve(aut, 2, 3);
  CAF_CHECK(!refused.granted);
  CAF_CHECK_EQUAL(refused.retry_after_seconds, 30); // the saved grant leaves at t0 + 30
  CAF_CHECK(reserve(aut, 1, 3).granted);
  now = t0 + 30s;
  CAF_CHECK_EQUAL(peek(aut), 1);
}

CAF_TEST(a bucket saves its whole state after every change and only then) {
  auto aut = spawn_restored(fixed_window::minute, std::nullopt);
  auto first = reserve(aut, 2, 3);
  CAF_REQUIRE(first.granted);
  CAF_CHECK(!reserve(aut, 2, 3).granted); // refused: nothing changed
  CAF_CHECK(reserve(aut, 0, 3).granted);  // zero: nothing changed
  CAF_CHECK_EQUAL(peek(aut), 2);
  release(aut, first.held);
  release(aut, first.held); // already at 0: nothing changed
  CAF_REQUIRE_EQUAL(saved->size(), 2u);
  CAF_CHECK_EQUAL((*saved)[0].first, "tool.calls");
  CAF_CHECK((*saved)[0].second.window == counter_window{fixed_window::minute});
  CAF_CHECK_EQUAL((*saved)[0].second.window_id, epoch_seconds(utc(march_10, 12h + 34min)));
  CAF_CHECK_EQUAL((*saved)[0].second.value, 2);
  CAF_CHECK_EQUAL((*saved)[1].second.value, 0);
}

CAF_TEST(a rolling bucket saves the grants it still counts) {
  auto t0 = now;
  auto aut = spawn_restored(rolling_window{60s}, std::nullopt);
  CAF_REQUIRE(reserve(aut, 2, 5).granted);
  now = t0 + 61s;
  auto second = reserve(aut, 1, 5);
  CAF_REQUIRE(second.granted);
  release(aut, second.held);
  CAF_REQUIRE_EQUAL(saved->size(), 3u);
  CAF_REQUIRE_EQUAL((*saved)[0].second.grants.size(), 1u);
  CAF_CHECK((*saved)[0].second.grants[0].at == t0);
  CAF_CHECK_EQUAL((*saved)[0].second.grants[0].amount, 2);
  // The first grant had expired by the second reservation, so it is no longer saved.
  CAF_REQUIRE_EQUAL((*saved)[1].second.grants.size(), 1u);
  CAF_CHECK((*saved)[1].second.grants[0].at == t0 + 61s);
  CAF_CHECK((*saved)[2].second.grants.empty());
}

CAF_TEST(saved_counter_value reads a saved state as a bucket would) {
  auto minute = saved_fixed(fixed_window::minute, utc(march_10, 12h + 34min), 4);
  CAF_CHECK_EQUAL(saved_counter_value(minute, now), 4);
  CAF_CHECK_EQUAL(saved_counter_value(minute, utc(march_10, 12h + 35min)), 0);
  auto rolled = saved_rolling(60s, {{now - 61s, 1}, {now - 59s, 2}});
  CAF_CHECK_EQUAL(saved_counter_value(rolled, now), 2);
  CAF_CHECK_EQUAL(saved_counter_value(rolled, now + 1s), 0);
}

CAF_TEST_FIXTURE_SCOPE_END()
