#define CAF_SUITE bucket_registry
#include <caf/test/dsl.hpp>

#include "actors/spawn.hpp"

#include <caf/scoped_actor.hpp>

#include <map>

using namespace offload;
using namespace std::chrono_literals;

namespace {

using time_point = std::chrono::system_clock::time_point;

// 2024-03-10 12:34:56 UTC: 4 s before the minute resets.
const time_point start_time =
    std::chrono::sys_days{std::chrono::year{2024} / std::chrono::March / 10} + 12h + 34min + 56s;

counter_reservation reservation(std::string key, int64_t amount, int64_t limit,
                                counter_window window = fixed_window::minute) {
  counter_reservation r;
  r.key = key;
  r.amount = amount;
  r.limit = limit;
  r.window = window;
  r.rule = "rule of " + key;
  r.message = "too many " + key;
  return r;
}

using reservations = std::vector<counter_reservation>;
using keys = std::vector<std::string>;
using values = std::vector<int64_t>;

// How a crowd of callers fared.
struct tally {
  int granted = 0;
  int refused = 0;
  int failed = 0;
  std::vector<int64_t> retry_after; // of the refused ones
};

// One caller: reserves `r` once and records the outcome.
caf::behavior reserver(caf::event_based_actor* self, bucket_registry_actor registry,
                       counter_reservation r, std::shared_ptr<tally> out) {
  self->request(registry, std::chrono::seconds{3600}, reserve_atom_v, reservations{r})
      .then(
          [=](reservation_outcome& outcome) {
            if (outcome.granted) {
              ++out->granted;
            } else {
              ++out->refused;
              out->retry_after.push_back(outcome.retry_after_seconds);
            }
          },
          [=](caf::error&) { ++out->failed; });
  return {};
}

// One caller on the threaded scheduler: reserves 1 of 30 on "k" and sends `to` 1 (granted),
// 0 (refused) or -1 (the request failed). The handles are spawn arguments, not captures: CAF
// 0.17 dereferences a null argument tuple when a spawned function takes none (UBSan flags it).
void reporter(caf::event_based_actor* self, bucket_registry_actor registry, caf::actor to) {
  self->request(registry, std::chrono::seconds{30}, reserve_atom_v,
                reservations{reservation("k", 1, 30)})
      .then([=](reservation_outcome& o) { self->send(to, o.granted ? 1 : 0); },
            [=](caf::error&) { self->send(to, -1); });
}

struct fixture : test_coordinator_fixture<> {
  time_point now = start_time;
  wall_clock clock = [this] { return now; };
  bucket_registry_actor aut = spawn_bucket_registry(sys, clock);

  ~fixture() override {
    caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
    consume_messages();
  }

  reservation_outcome reserve(reservations list) {
    std::optional<reservation_outcome> out;
    auto handle = self->request(aut, caf::infinite, reserve_atom_v, std::move(list));
    consume_messages();
    handle.receive([&](reservation_outcome& o) { out = std::move(o); },
                   [](caf::error& err) { CAF_FAIL("registry failed: " << caf::to_string(err)); });
    CAF_REQUIRE(out.has_value());
    return std::move(*out);
  }

  values peek(keys list) {
    std::optional<values> out;
    auto handle = self->request(aut, caf::infinite, peek_atom_v, std::move(list));
    consume_messages();
    handle.receive([&](values& v) { out = std::move(v); },
                   [](caf::error& err) { CAF_FAIL("registry failed: " << caf::to_string(err)); });
    CAF_REQUIRE(out.has_value());
    return std::move(*out);
  }

  void release(std::vector<held_quota> held) {
    self->send(aut, release_atom_v, std::move(held));
    consume_messages();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(bucket_registry_tests, fixture)

CAF_TEST(an empty list is granted at once) {
  auto outcome = reserve({});
  CAF_CHECK(outcome.granted);
  CAF_CHECK(outcome.held.empty());
  CAF_CHECK(!outcome.denial.has_value());
}

CAF_TEST(a call whose counters all fit holds every one of them in order) {
  auto outcome = reserve({reservation("t.a", 1, 5), reservation("_global.b", 3, 5)});
  CAF_REQUIRE(outcome.granted);
  CAF_REQUIRE_EQUAL(outcome.held.size(), 2u);
  CAF_CHECK_EQUAL(outcome.held[0].key, "t.a");
  CAF_CHECK_EQUAL(outcome.held[0].amount, 1);
  CAF_CHECK_EQUAL(outcome.held[1].key, "_global.b");
  CAF_CHECK_EQUAL(outcome.held[1].amount, 3);
  CAF_CHECK_EQUAL(peek({"_global.b", "unknown", "t.a"}), (values{3, 0, 1}));
}

CAF_TEST(a refusal rolls back what the call took so a later call can use it) {
  CAF_REQUIRE(reserve({reservation("t.b", 1, 1)}).granted); // fill t.b
  auto outcome = reserve({reservation("t.a", 1, 1), reservation("t.b", 1, 1)});
  CAF_CHECK(!outcome.granted);
  CAF_CHECK(outcome.held.empty());
  CAF_REQUIRE(outcome.denial.has_value());
  CAF_CHECK_EQUAL(outcome.denial->rule, "rule of t.b");
  CAF_CHECK_EQUAL(outcome.denial->message, "too many t.b");
  CAF_REQUIRE(outcome.denial->counter.has_value());
  CAF_CHECK_EQUAL(outcome.denial->counter->key, "t.b");
  CAF_CHECK(outcome.denial->counter->window == counter_window{fixed_window::minute});
  CAF_CHECK_EQUAL(outcome.retry_after_seconds, 4);
  CAF_CHECK_EQUAL(peek({"t.a", "t.b"}), (values{0, 1}));
  CAF_CHECK(reserve({reservation("t.a", 1, 1)}).granted);
}

CAF_TEST(a refusal of the first counter stops before asking the others) {
  CAF_REQUIRE(reserve({reservation("t.a", 2, 2)}).granted);
  auto outcome = reserve({reservation("t.a", 1, 2), reservation("t.b", 1, 2)});
  CAF_CHECK(!outcome.granted);
  CAF_CHECK_EQUAL(outcome.denial->rule, "rule of t.a");
  CAF_CHECK_EQUAL(peek({"t.b"}), (values{0}));
}

CAF_TEST(a rolling counter reports when enough quota frees up) {
  auto rolling = counter_window{rolling_window{60s}};
  CAF_REQUIRE(reserve({reservation("t.r", 1, 1, rolling)}).granted);
  now += 15s;
  auto outcome = reserve({reservation("t.r", 1, 1, rolling)});
  CAF_CHECK(!outcome.granted);
  CAF_CHECK_EQUAL(outcome.retry_after_seconds, 45);
  now += 45s;
  CAF_CHECK(reserve({reservation("t.r", 1, 1, rolling)}).granted);
}

CAF_TEST(a bucket error refuses the call as an internal error and rolls back) {
  // A negative amount is a bug upstream; the bucket answers with an error.
  auto outcome = reserve({reservation("t.a", 1, 1), reservation("t.bad", -1, 5)});
  CAF_CHECK(!outcome.granted);
  CAF_REQUIRE(outcome.denial.has_value());
  CAF_CHECK_EQUAL(outcome.denial->message, "Internal policy error");
  CAF_CHECK_EQUAL(outcome.denial->rule, "rule of t.bad");
  CAF_CHECK(!outcome.denial->counter.has_value());
  CAF_CHECK_EQUAL(peek({"t.a"}), (values{0}));
}

CAF_TEST(a release gives quota back and ignores unknown keys) {
  auto outcome = reserve({reservation("t.a", 2, 2), reservation("t.b", 1, 1)});
  CAF_REQUIRE(outcome.granted);
  auto held = outcome.held;
  held.push_back(held_quota{"never.seen", 1, 0});
  release(held);
  CAF_CHECK_EQUAL(peek({"t.a", "t.b", "never.seen"}), (values{0, 0, 0}));
  CAF_CHECK(reserve({reservation("t.a", 2, 2), reservation("t.b", 1, 1)}).granted);
}

CAF_TEST(a release after the window reset does not refund the new window) {
  auto outcome = reserve({reservation("t.a", 1, 1)});
  CAF_REQUIRE(outcome.granted);
  now += 10s; // 12:35:06
  CAF_REQUIRE(reserve({reservation("t.a", 1, 1)}).granted);
  release(outcome.held);
  CAF_CHECK_EQUAL(peek({"t.a"}), (values{1}));
}

CAF_TEST(a counter whose window changed starts again in the new window) {
  CAF_REQUIRE(reserve({reservation("t.a", 1, 1, fixed_window::minute)}).granted);
  CAF_CHECK(!reserve({reservation("t.a", 1, 1, fixed_window::minute)}).granted);
  CAF_CHECK(reserve({reservation("t.a", 1, 1, fixed_window::hour)}).granted);
  CAF_CHECK(!reserve({reservation("t.a", 1, 1, fixed_window::hour)}).granted);
}

CAF_TEST(peek reads zero for every key without a bucket) {
  CAF_CHECK_EQUAL(peek({}), values{});
  CAF_CHECK_EQUAL(peek({"a", "b"}), (values{0, 0}));
}

CAF_TEST(64 concurrent callers on a limit of 30 get exactly 30 grants) {
  auto results = std::make_shared<tally>();
  for (int i = 0; i < 64; ++i)
    sys.spawn(reserver, aut, reservation("offload_work._rate_minute", 1, 30), results);
  // All 64 callers send their request before the registry handles the first one; the registry
  // then interleaves them with the bucket's answers, one message at a time.
  consume_messages();
  CAF_CHECK_EQUAL(results->granted, 30);
  CAF_CHECK_EQUAL(results->refused, 34);
  CAF_CHECK_EQUAL(results->failed, 0);
  CAF_CHECK_EQUAL(results->retry_after, std::vector<int64_t>(34, 4));
  CAF_CHECK_EQUAL(peek({"offload_work._rate_minute"}), (values{30}));
}

CAF_TEST_FIXTURE_SCOPE_END()

// The same crowd on CAF's real work-stealing scheduler: callers truly run in parallel threads.
CAF_TEST(64 callers on the threaded scheduler get exactly 30 grants) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 4);
  caf::actor_system real{cfg};
  // Fixed and never written while the actors run, so reading it from any thread is safe.
  wall_clock clock = [] { return start_time; };
  auto registry = spawn_bucket_registry(real, clock);
  caf::scoped_actor collector{real};
  auto to = caf::actor_cast<caf::actor>(collector);
  for (int i = 0; i < 64; ++i)
    real.spawn(reporter, registry, to);
  std::map<int, int> seen; // reporter result -> how many sent it
  for (int i = 0; i < 64; ++i)
    collector->receive([&](int result) { ++seen[result]; },
                       caf::after(std::chrono::seconds{30}) >>
                           [] { CAF_FAIL("a caller did not hear back"); });
  CAF_CHECK_EQUAL(seen[1], 30);
  CAF_CHECK_EQUAL(seen[0], 34);
  CAF_CHECK_EQUAL(seen[-1], 0);
  caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
}
