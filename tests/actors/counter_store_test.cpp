#define CAF_SUITE counter_store
#include <caf/test/dsl.hpp>

#include "tests/actors/counter_fixtures.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace offload;
using namespace offload::test;
using namespace std::chrono_literals;

namespace {

using time_point = std::chrono::system_clock::time_point;

// 2024-03-10 12:34:00 UTC, in seconds: a minute window's id.
const time_point minute_start =
    std::chrono::sys_days{std::chrono::year{2024} / std::chrono::March / 10} + 12h + 34min;
const int64_t minute_id = epoch_seconds(minute_start);

saved_counter fixed(int64_t value, int64_t window_id = minute_id,
                    fixed_window window = fixed_window::minute) {
  return saved_fixed(window, window_id, value);
}

saved_counter rolling(std::chrono::seconds length, std::vector<saved_grant> grants) {
  return saved_rolling(length, std::move(grants));
}

void check_same(const saved_counter& got, const saved_counter& want) {
  CAF_CHECK(got.window == want.window);
  CAF_CHECK_EQUAL(got.window_id, want.window_id);
  CAF_CHECK_EQUAL(got.value, want.value);
  CAF_REQUIRE_EQUAL(got.grants.size(), want.grants.size());
  for (size_t i = 0; i < got.grants.size(); ++i) {
    CAF_CHECK(got.grants[i].at == want.grants[i].at);
    CAF_CHECK_EQUAL(got.grants[i].amount, want.grants[i].amount);
  }
}

// What is on disk for `key`, read by a connection of its own.
std::optional<saved_counter> on_disk(const temp_db& file, const std::string& key) {
  counter_db db{file.path, 100ms};
  return db.load(key);
}

struct fixture : test_coordinator_fixture<> {
  temp_db file{"offload-counters"};
  counter_store_actor aut = spawn_counter_store(sys, file.path, counter_store_threading::scheduled);

  ~fixture() override {
    caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
    consume_messages();
  }

  void save(const std::string& key, saved_counter state) {
    self->send(aut, counter_save_atom_v, key, std::move(state));
  }

  caf::expected<std::optional<saved_counter>> load(const std::string& key) {
    caf::expected<std::optional<saved_counter>> out{caf::sec::none};
    auto handle = self->request(aut, caf::infinite, counter_load_atom_v, key);
    consume_messages();
    handle.receive([&](std::optional<saved_counter>& saved) { out = std::move(saved); },
                   [&](caf::error& err) { out = std::move(err); });
    return out;
  }
};

} // namespace

// -- the SQLite layer ----------------------------------------------------------------------------

CAF_TEST(counter_db round - trips fixed and rolling states through the file) {
  temp_db file{"offload-counters"};
  auto t0 = minute_start + 3s + 123456789ns; // kept to the nanosecond
  auto fixed_state = fixed(7);
  auto rolling_state = rolling(90s, {{t0, 2}, {t0 + 10s, 1}});
  {
    counter_db db{file.path, 100ms};
    CAF_CHECK(!db.load("tool.calls").has_value());
    db.save({{"tool.calls", fixed(3)}, {"_global.tasks", rolling_state}});
    db.save({{"tool.calls", fixed_state}}); // replaces the first save
  }
  counter_db reopened{file.path, 100ms};
  auto got = reopened.load("tool.calls");
  CAF_REQUIRE(static_cast<bool>(got));
  check_same(*got, fixed_state);
  got = reopened.load("_global.tasks");
  CAF_REQUIRE(static_cast<bool>(got));
  check_same(*got, rolling_state);
  CAF_CHECK(!reopened.load("other").has_value());
}

CAF_TEST(counter_db keeps every window kind apart) {
  temp_db file{"offload-counters"};
  counter_db db{file.path, 100ms};
  db.save({{"m", fixed(1, minute_id, fixed_window::minute)},
           {"h", fixed(2, minute_id, fixed_window::hour)},
           {"d", fixed(3, minute_id, fixed_window::day)}});
  CAF_CHECK(db.load("m")->window == counter_window{fixed_window::minute});
  CAF_CHECK(db.load("h")->window == counter_window{fixed_window::hour});
  CAF_CHECK(db.load("d")->window == counter_window{fixed_window::day});
}

CAF_TEST(the database is in WAL mode with the documented table) {
  temp_db file{"offload-counters"};
  counter_db db{file.path, 100ms};
  db.save({{"k", fixed(4)}});
  sqlite3* raw = nullptr;
  CAF_REQUIRE_EQUAL(sqlite3_open(file.path.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  CAF_REQUIRE_EQUAL(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  CAF_REQUIRE_EQUAL(sqlite3_step(stmt), SQLITE_ROW);
  CAF_CHECK_EQUAL(std::string{reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))}, "wal");
  sqlite3_finalize(stmt);
  CAF_REQUIRE_EQUAL(sqlite3_prepare_v2(raw,
                                       R"(SELECT key, "window", window_id, value, entries
                                          FROM counters)",
                                       -1, &stmt, nullptr),
                    SQLITE_OK);
  CAF_REQUIRE_EQUAL(sqlite3_step(stmt), SQLITE_ROW);
  CAF_CHECK_EQUAL(std::string{reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1))},
                  "minute");
  CAF_CHECK_EQUAL(sqlite3_column_int64(stmt, 2), minute_id);
  CAF_CHECK_EQUAL(sqlite3_column_int64(stmt, 3), 4);
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
}

CAF_TEST(a path that cannot be opened fails naming the path) {
  const std::string path = "/nonexistent-offload-dir/counters.db";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  try {
    spawn_counter_store(sys, path);
    CAF_FAIL("the store opened " << path);
  } catch (const std::runtime_error& e) {
    CAF_MESSAGE(e.what());
    CAF_CHECK(std::string{e.what()}.find(path) != std::string::npos);
  }
}

CAF_TEST(a file that is not a database fails naming the path) {
  temp_db file{"offload-counters"};
  std::ofstream{file.path} << "this is not an SQLite database, just some text\n"
                           << std::string(200, 'x');
  try {
    counter_db db{file.path, 100ms};
    CAF_FAIL("opened a text file as a database");
  } catch (const std::runtime_error& e) {
    CAF_MESSAGE(e.what());
    CAF_CHECK(std::string{e.what()}.find(file.path) != std::string::npos);
  }
}

CAF_TEST(rows that cannot be understood load as nothing) {
  temp_db file{"offload-counters"};
  { counter_db create{file.path, 100ms}; }
  file.exec(R"(INSERT INTO counters VALUES ('fortnight', 'fortnight', 0, 5, NULL),
                 ('rolling-bad', 'rolling:60', 0, 0, 'not json'),
                 ('rolling-zero', 'rolling:0', 0, 0, '[]'),
                 ('rolling-shape', 'rolling:60', 0, 0, '[{"at_ns": "soon", "amount": 1}]'))");
  counter_db db{file.path, 100ms};
  CAF_CHECK(!db.load("fortnight").has_value());
  CAF_CHECK(!db.load("rolling-bad").has_value());
  CAF_CHECK(!db.load("rolling-zero").has_value());
  CAF_CHECK(!db.load("rolling-shape").has_value());
}

// -- the actor -----------------------------------------------------------------------------------

CAF_TEST_FIXTURE_SCOPE(counter_store_tests, fixture)

CAF_TEST(a key never saved loads as nothing) {
  auto got = load("tool.calls");
  CAF_REQUIRE(static_cast<bool>(got));
  CAF_CHECK(!got->has_value());
}

CAF_TEST(a load sees a save sent before it even before the write) {
  save("tool.calls", fixed(2));
  auto got = load("tool.calls"); // the save and the load are handled before the flush
  CAF_REQUIRE(static_cast<bool>(got) && got->has_value());
  check_same(**got, fixed(2));
  auto written = on_disk(file, "tool.calls");
  CAF_REQUIRE(written.has_value());
  check_same(*written, fixed(2));
}

CAF_TEST(queued saves are written together and the newest state of a key wins) {
  save("a", fixed(1));
  save("a", fixed(2));
  save("b", rolling(60s, {{minute_start, 3}}));
  consume_messages();
  check_same(*on_disk(file, "a"), fixed(2));
  check_same(*on_disk(file, "b"), rolling(60s, {{minute_start, 3}}));
}

CAF_TEST(saves still queued when the store stops are written) {
  save("a", fixed(5));
  // The exit is queued before the flush that the save queues, so only the shutdown writes it.
  caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
  consume_messages();
  auto written = on_disk(file, "a");
  CAF_REQUIRE(written.has_value());
  check_same(*written, fixed(5));
}

CAF_TEST(a failing write is logged and the store keeps serving) {
  save("a", fixed(1));
  consume_messages();
  file.exec("DROP TABLE counters");
  save("a", fixed(2));
  consume_messages(); // the write fails: logged, not fatal
  auto got = load("a");
  CAF_CHECK(!got); // an error, answered by a live store
  file.exec(R"(CREATE TABLE counters(key TEXT PRIMARY KEY, "window" TEXT, window_id INTEGER,
                                     value INTEGER, entries TEXT))");
  got = load("a");
  CAF_REQUIRE(static_cast<bool>(got));
  CAF_CHECK(!got->has_value()); // the failed batch was dropped
  save("a", fixed(3));
  consume_messages();
  check_same(*on_disk(file, "a"), fixed(3));
}

CAF_TEST_FIXTURE_SCOPE_END()
