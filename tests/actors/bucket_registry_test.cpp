#define CAF_SUITE bucket_registry
#include <caf/test/dsl.hpp>

#include "tests/actors/counter_fixtures.hpp"

#include <caf/scoped_actor.hpp>
#include <unistd.h>

#include <filesystem>
#include <map>

using namespace offload;
using namespace offload::test;
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

// 12:34:00, the id of the minute window start_time is in.
const int64_t minute_id = epoch_seconds(start_time - 56s);

// Writes a fixed minute counter for `key` as a previous run would have left it.
void seed_minute(const temp_db& file, const std::string& key, int64_t value) {
  counter_db{file.path, std::chrono::milliseconds{100}}.save(
      {{key, saved_fixed(fixed_window::minute, minute_id, value)}});
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

// A counter store whose loads fail `failures` times, then find nothing; saves go nowhere.
counter_store_actor::behavior_type failing_store(counter_store_actor::pointer,
                                                 std::shared_ptr<int> failures) {
  return {
      [failures](counter_load_atom,
                 const std::string&) -> caf::result<std::optional<saved_counter>> {
        if (*failures > 0) {
          --*failures;
          return caf::make_error(caf::sec::runtime_error, "disk on fire");
        }
        return std::optional<saved_counter>{};
      },
      [](counter_save_atom, const std::string&, const saved_counter&) {},
      [](counter_flush_atom) {},
  };
}

struct fixture : test_coordinator_fixture<> {
  time_point now = start_time;
  wall_clock clock = [this] { return now; };
  bucket_registry_actor aut = spawn_bucket_registry(sys, clock);
  // Set by tests that persist their counters.
  temp_db file{"offload-registry"};
  counter_store_actor store;

  ~fixture() override { stop(); }

  // Stops the registry (its buckets go with it) and then the store, as the daemon does.
  void stop() {
    caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
    consume_messages();
    if (store) {
      caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
      consume_messages();
      store = nullptr;
    }
  }

  // Stands in for a daemon (re)starting: a fresh store on `file` and a registry using it.
  void start_with_store() {
    stop();
    store = spawn_counter_store(sys, file.path, counter_store_threading::scheduled);
    aut = spawn_bucket_registry(sys, clock, store);
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

  // Reserves `count` times 1 of `limit` on `key`, one call after another; returns the grants.
  int reserve_count(const std::string& key, int count, int64_t limit) {
    int granted = 0;
    for (int i = 0; i < count; ++i)
      granted += reserve({reservation(key, 1, limit)}).granted ? 1 : 0;
    return granted;
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

// -- persistence -----------------------------------------------------------------------------

CAF_TEST(counters survive a restart : exactly N allowed in all then N + 1 refused) {
  start_with_store();
  CAF_CHECK_EQUAL(reserve_count("t.a", 3, 5), 3);
  start_with_store(); // the restart
  // A counter not used since the restart reads what was saved.
  CAF_CHECK_EQUAL(peek({"t.a", "never.seen"}), (values{3, 0}));
  CAF_CHECK(reserve({reservation("t.a", 1, 5)}).granted);
  CAF_CHECK(reserve({reservation("t.a", 1, 5)}).granted);
  auto refused = reserve({reservation("t.a", 1, 5)});
  CAF_CHECK(!refused.granted);
  CAF_CHECK_EQUAL(refused.retry_after_seconds, 4);
  start_with_store();
  CAF_CHECK(!reserve({reservation("t.a", 1, 5)}).granted);
  CAF_CHECK_EQUAL(peek({"t.a"}), (values{5}));
}

CAF_TEST(a rollback before the restart is not counted after it) {
  start_with_store();
  CAF_REQUIRE(reserve({reservation("t.a", 2, 2)}).granted);
  auto outcome = reserve({reservation("t.b", 1, 1), reservation("t.a", 1, 2)});
  CAF_CHECK(!outcome.granted);
  auto held = reserve({reservation("t.c", 1, 1)}).held;
  release(held); // the upstream answered a JSON-RPC error
  start_with_store();
  CAF_CHECK_EQUAL(peek({"t.a", "t.b", "t.c"}), (values{2, 0, 0}));
}

CAF_TEST(a fixed window that passed while down starts fresh) {
  start_with_store();
  CAF_CHECK_EQUAL(reserve_count("t.a", 6, 5), 5);
  stop();
  now = start_time + 10s; // 12:35:06: the minute ended while the daemon was down
  start_with_store();
  CAF_CHECK_EQUAL(peek({"t.a"}), (values{0}));
  CAF_CHECK_EQUAL(reserve_count("t.a", 6, 5), 5);
}

CAF_TEST(a rolling window keeps counting across a restart) {
  auto rolling = counter_window{rolling_window{60s}};
  start_with_store();
  CAF_REQUIRE(reserve({reservation("t.r", 1, 2, rolling)}).granted);
  now += 30s;
  CAF_REQUIRE(reserve({reservation("t.r", 1, 2, rolling)}).granted);
  stop();
  now += 40s; // the first grant left the window while the daemon was down
  start_with_store();
  CAF_CHECK_EQUAL(peek({"t.r"}), (values{1}));
  CAF_CHECK(reserve({reservation("t.r", 1, 2, rolling)}).granted);
  auto refused = reserve({reservation("t.r", 1, 2, rolling)});
  CAF_CHECK(!refused.granted);
  CAF_CHECK_EQUAL(refused.retry_after_seconds, 20); // the second grant leaves 60 s after it came
}

CAF_TEST(reservations arriving while the saved state loads are serialised) {
  seed_minute(file, "offload_work._rate_minute", 10);
  start_with_store();
  auto results = std::make_shared<tally>();
  for (int i = 0; i < 64; ++i)
    sys.spawn(reserver, aut, reservation("offload_work._rate_minute", 1, 30), results);
  // The first request starts the load; the other 63 reach the registry before the store
  // answers and wait for the bucket in arrival order.
  consume_messages();
  CAF_CHECK_EQUAL(results->granted, 20);
  CAF_CHECK_EQUAL(results->refused, 44);
  CAF_CHECK_EQUAL(results->failed, 0);
  CAF_CHECK_EQUAL(peek({"offload_work._rate_minute"}), (values{30}));
  start_with_store();
  CAF_CHECK_EQUAL(peek({"offload_work._rate_minute"}), (values{30}));
}

CAF_TEST(a store that cannot be read refuses the call and the next call tries again) {
  stop();
  auto failures = std::make_shared<int>(1);
  store = sys.spawn(failing_store, failures);
  aut = spawn_bucket_registry(sys, clock, store);
  auto outcome = reserve({reservation("t.a", 1, 5), reservation("t.b", 1, 5)});
  CAF_CHECK(!outcome.granted);
  CAF_REQUIRE(outcome.denial.has_value());
  CAF_CHECK_EQUAL(outcome.denial->message, "Internal policy error");
  CAF_CHECK_EQUAL(outcome.denial->rule, "rule of t.a");
  CAF_CHECK(reserve({reservation("t.a", 1, 5), reservation("t.b", 1, 5)}).granted);
  CAF_CHECK_EQUAL(peek({"t.a", "t.b"}), (values{1, 1}));
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

// A detached store (its own thread, as in the daemon) under the same crowd: the counter starts
// from the previous run's 10, so 20 more fit, and the file holds 30 afterwards.
CAF_TEST(64 callers with a detached store continue from the saved count) {
  temp_db file{"offload-registry"};
  seed_minute(file, "k", 10);
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 4);
    caf::actor_system real{cfg};
    wall_clock clock = [] { return start_time; };
    auto store = spawn_counter_store(real, file.path);
    auto registry = spawn_bucket_registry(real, clock, store);
    caf::scoped_actor collector{real};
    auto to = caf::actor_cast<caf::actor>(collector);
    for (int i = 0; i < 64; ++i)
      real.spawn(reporter, registry, to);
    std::map<int, int> seen;
    for (int i = 0; i < 64; ++i)
      collector->receive([&](int result) { ++seen[result]; },
                         caf::after(std::chrono::seconds{30}) >>
                             [] { CAF_FAIL("a caller did not hear back"); });
    CAF_CHECK_EQUAL(seen[1], 20);
    CAF_CHECK_EQUAL(seen[0], 44);
    CAF_CHECK_EQUAL(seen[-1], 0);
    // The daemon's shutdown order: the registry (and with it the buckets), then the store.
    caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
    collector->wait_for(registry);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    collector->wait_for(store);
  }
  auto saved = counter_db{file.path, std::chrono::milliseconds{100}}.load("k");
  CAF_REQUIRE(saved.has_value());
  CAF_CHECK_EQUAL(saved->window_id, minute_id);
  CAF_CHECK_EQUAL(saved->value, 30);
}
