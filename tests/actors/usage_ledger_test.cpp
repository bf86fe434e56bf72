#define CAF_SUITE usage_ledger
#include <caf/test/dsl.hpp>

#include "actors/usage_db.hpp"
#include "tests/actors/counter_fixtures.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace offload;
using namespace offload::test;
using namespace std::chrono_literals;

namespace {

// 2027-01-15 08:00:20 UTC.
const auto wall_time = std::chrono::system_clock::from_time_t(1'800'000'020);

usage_record record(uint64_t call_no, uint64_t task_index, std::string outcome = "ok",
                    std::chrono::system_clock::duration age = {}) {
  usage_record r;
  r.time = wall_time - age;
  r.run_id = "run-1";
  r.session = "stdio";
  r.agent = call_no % 2 == 0 ? "alice" : "";
  r.call_no = call_no;
  r.task_index = task_index;
  r.tool = "batch_offload";
  r.model = task_index == 0 ? "coder:7b" : "tiny:1b";
  r.backend = "ollama@127.0.0.1:11434";
  r.tokens_in = 100;
  r.tokens_out = 10 * static_cast<int64_t>(task_index + 1);
  r.duration_ms = 1000 * static_cast<int64_t>(task_index + 1);
  r.outcome = std::move(outcome);
  r.error_code = r.outcome == "ok" ? "" : "timeout";
  r.attempts = 1;
  r.saved_usd = r.outcome == "ok" ? 0.25 : 0;
  return r;
}

void check_same(const usage_record& got, const usage_record& want) {
  CAF_CHECK(got.time == want.time);
  CAF_CHECK_EQUAL(got.run_id, want.run_id);
  CAF_CHECK_EQUAL(got.session, want.session);
  CAF_CHECK_EQUAL(got.agent, want.agent);
  CAF_CHECK_EQUAL(got.call_no, want.call_no);
  CAF_CHECK_EQUAL(got.task_index, want.task_index);
  CAF_CHECK_EQUAL(got.tool, want.tool);
  CAF_CHECK_EQUAL(got.model, want.model);
  CAF_CHECK_EQUAL(got.backend, want.backend);
  CAF_CHECK_EQUAL(got.tokens_in, want.tokens_in);
  CAF_CHECK_EQUAL(got.tokens_out, want.tokens_out);
  CAF_CHECK_EQUAL(got.duration_ms, want.duration_ms);
  CAF_CHECK_EQUAL(got.outcome, want.outcome);
  CAF_CHECK_EQUAL(got.error_code, want.error_code);
  CAF_CHECK_EQUAL(got.attempts, want.attempts);
  CAF_CHECK_EQUAL(got.saved_usd, want.saved_usd);
}

// What is on disk, read by a connection of its own.
std::vector<usage_record> on_disk(const temp_db& file) {
  usage_db db{file.path, 100ms, sqlite_connection::access::read_only};
  return db.records(0);
}

struct fixture : test_coordinator_fixture<> {
  temp_db file{"offload-usage"};
  usage_ledger_actor aut = spawn_usage_ledger(sys, file.path, store_threading::scheduled);

  ~fixture() override {
    caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
    consume_messages();
  }

  void send_record(usage_record r) { self->send(aut, ledger_record_atom_v, std::move(r)); }

  bool sync() {
    bool committed = false;
    auto handle = self->request(aut, caf::infinite, ledger_sync_atom_v);
    consume_messages();
    handle.receive([&](bool ok) { committed = ok; },
                   [&](caf::error& err) { CAF_FAIL("sync failed: " << caf::to_string(err)); });
    return committed;
  }

  usage_summary query(int64_t since_ms) {
    usage_summary out;
    auto handle = self->request(aut, caf::infinite, ledger_query_atom_v, since_ms);
    consume_messages();
    handle.receive([&](usage_summary& s) { out = std::move(s); },
                   [&](caf::error& err) { CAF_FAIL("query failed: " << caf::to_string(err)); });
    return out;
  }
};

} // namespace

// -- the SQLite layer ----------------------------------------------------------------------------

CAF_TEST(records round - trip through the file) {
  temp_db file{"offload-usage"};
  auto first = record(1, 0);
  auto second = record(2, 1, "error");
  {
    usage_db db{file.path, 100ms};
    CAF_CHECK_EQUAL(db.append({first, second}), 2u);
  }
  auto got = on_disk(file);
  CAF_REQUIRE_EQUAL(got.size(), 2u);
  check_same(got[0], first);
  check_same(got[1], second);
}

CAF_TEST(a task already recorded is never recorded twice) {
  temp_db file{"offload-usage"};
  usage_db db{file.path, 100ms};
  CAF_CHECK_EQUAL(db.append({record(1, 0), record(1, 1)}), 2u);
  CAF_CHECK_EQUAL(db.append({record(1, 0), record(1, 1)}), 0u);
  // A replayed record with other figures keeps the first version.
  auto changed = record(1, 1);
  changed.tokens_out = 999;
  CAF_CHECK_EQUAL(db.append({changed, record(1, 2)}), 1u);
  // The same call number in another run is another task.
  auto other_run = record(1, 0);
  other_run.run_id = "run-2";
  CAF_CHECK_EQUAL(db.append({other_run}), 1u);
  auto got = db.records(0);
  CAF_REQUIRE_EQUAL(got.size(), 4u);
  CAF_CHECK_EQUAL(got[1].tokens_out, 20);
}

CAF_TEST(summaries total and group by agent model tool backend and utc day) {
  temp_db file{"offload-usage"};
  usage_db db{file.path, 100ms};
  db.append({record(1, 0), record(1, 1), record(2, 0, "error"), record(3, 0, "skipped"),
             record(4, 0, "ok", 24h), record(5, 0, "cancelled", 48h)});
  auto all = db.summarize(0);
  CAF_CHECK_EQUAL(all.since_day, "");
  CAF_CHECK_EQUAL(all.totals.tasks, 6);
  CAF_CHECK_EQUAL(all.totals.ok, 3);
  CAF_CHECK_EQUAL(all.totals.error, 1);
  CAF_CHECK_EQUAL(all.totals.skipped, 1);
  CAF_CHECK_EQUAL(all.totals.cancelled, 1);
  CAF_CHECK_EQUAL(all.totals.tokens_in, 600);
  CAF_CHECK_EQUAL(all.totals.tokens_out, 70);
  CAF_CHECK_EQUAL(all.totals.saved_usd, 0.75);
  CAF_REQUIRE_EQUAL(all.by_agent.size(), 2u);
  CAF_CHECK_EQUAL(all.by_agent[0].key, ""); // odd calls are anonymous
  CAF_CHECK_EQUAL(all.by_agent[0].totals.tasks, 4);
  CAF_CHECK_EQUAL(all.by_agent[1].key, "alice");
  CAF_CHECK_EQUAL(all.by_agent[1].totals.tasks, 2);
  CAF_REQUIRE_EQUAL(all.by_model.size(), 2u);
  CAF_CHECK_EQUAL(all.by_model[0].key, "coder:7b");
  CAF_CHECK_EQUAL(all.by_model[0].totals.tasks, 5);
  CAF_CHECK_EQUAL(all.by_model[1].key, "tiny:1b");
  CAF_CHECK_EQUAL(all.by_tool.size(), 1u);
  CAF_CHECK_EQUAL(all.by_backend.size(), 1u);
  CAF_REQUIRE_EQUAL(all.by_day.size(), 3u);
  CAF_CHECK_EQUAL(all.by_day[0].key, "2027-01-13");
  CAF_CHECK_EQUAL(all.by_day[2].key, "2027-01-15");
  CAF_CHECK_EQUAL(all.by_day[2].totals.tasks, 4);
  CAF_CHECK_EQUAL(all.errors_by_code.size(), 1u);
  CAF_CHECK_EQUAL(all.errors_by_code["timeout"], 3); // error, skipped, cancelled
  // Durations of the tasks that ran (3 ok, 1 error): 1000, 1000, 1000, 2000 ms.
  CAF_CHECK_EQUAL(all.ran, 4);
  CAF_CHECK_EQUAL(all.ran_duration_ms, 5000);
  CAF_CHECK_EQUAL(all.duration_p50_ms, 1000);
  CAF_CHECK_EQUAL(all.duration_p95_ms, 2000);
  CAF_CHECK_EQUAL(all.duration_p99_ms, 2000);

  auto today = db.summarize(usage_window_start_ms(1, wall_time));
  CAF_CHECK_EQUAL(today.since_day, "2027-01-15");
  CAF_CHECK_EQUAL(today.totals.tasks, 4);
  CAF_CHECK_EQUAL(today.by_day.size(), 1u);
  CAF_CHECK_EQUAL(db.records(usage_window_start_ms(2, wall_time)).size(), 5u);
}

CAF_TEST(an empty ledger summarises to zeros) {
  temp_db file{"offload-usage"};
  usage_db db{file.path, 100ms};
  auto summary = db.summarize(0);
  CAF_CHECK_EQUAL(summary.totals.tasks, 0);
  CAF_CHECK_EQUAL(summary.totals.saved_usd, 0.0);
  CAF_CHECK(summary.by_agent.empty());
  CAF_CHECK_EQUAL(summary.duration_p99_ms, 0);
}

CAF_TEST(a ledger left by a killed process opens with every commit) {
  temp_db file{"offload-usage"};
  auto child = ::fork();
  CAF_REQUIRE(child >= 0);
  if (child == 0) {
    // The child commits and dies without closing anything, as kill -9 would leave it.
    try {
      usage_db db{file.path, 100ms};
      db.append({record(1, 0), record(1, 1)});
      db.append({record(2, 0)});
      ::_exit(0); // with the connection open: its destructor never runs
    } catch (...) {
      ::_exit(1);
    }
  }
  int status = 0;
  CAF_REQUIRE_EQUAL(::waitpid(child, &status, 0), child);
  CAF_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Nothing checkpointed the WAL: the commits live only there.
  CAF_CHECK(std::filesystem::exists(file.path + "-wal"));
  CAF_CHECK(std::filesystem::file_size(file.path + "-wal") > 0);
  {
    usage_db reopened{file.path, 100ms};
    CAF_CHECK_EQUAL(reopened.records(0).size(), 3u);
    // Replaying the same tasks after the restart adds nothing.
    CAF_CHECK_EQUAL(reopened.append({record(1, 0), record(2, 0), record(3, 0)}), 1u);
  }
  file.exec("PRAGMA integrity_check");
  CAF_CHECK_EQUAL(on_disk(file).size(), 4u);
}

CAF_TEST(a reader sees what a writer committed while the writer is open) {
  temp_db file{"offload-usage"};
  usage_db writer{file.path, 100ms};
  writer.append({record(1, 0)});
  usage_db reader{file.path, 100ms, sqlite_connection::access::read_only};
  CAF_CHECK_EQUAL(reader.summarize(0).totals.tasks, 1);
  writer.append({record(1, 1)});
  CAF_CHECK_EQUAL(reader.summarize(0).totals.tasks, 2);
  bool refused = false;
  try {
    reader.append({record(1, 2)});
  } catch (const std::runtime_error&) {
    refused = true;
  }
  CAF_CHECK(refused);
}

CAF_TEST(a missing ledger is not created by a reader) {
  temp_db file{"offload-usage"};
  try {
    usage_db reader{file.path, 100ms, sqlite_connection::access::read_only};
    CAF_FAIL("opened a missing ledger read-only");
  } catch (const std::runtime_error& e) {
    CAF_CHECK_NOT_EQUAL(std::string{e.what()}.find(file.path), std::string::npos);
  }
  CAF_CHECK(!std::filesystem::exists(file.path));
}

CAF_TEST(a ledger of a newer schema or not a database is refused naming the path) {
  temp_db file{"offload-usage"};
  { usage_db create{file.path, 100ms}; }
  file.exec("PRAGMA user_version = 2");
  try {
    usage_db db{file.path, 100ms};
    CAF_FAIL("opened a ledger of a newer schema");
  } catch (const std::runtime_error& e) {
    CAF_MESSAGE(e.what());
    CAF_CHECK_NOT_EQUAL(std::string{e.what()}.find("newer offload"), std::string::npos);
    CAF_CHECK_NOT_EQUAL(std::string{e.what()}.find(file.path), std::string::npos);
  }
  temp_db text{"offload-usage"};
  std::ofstream{text.path} << "not a database\n" << std::string(200, 'x');
  try {
    usage_db db{text.path, 100ms};
    CAF_FAIL("opened a text file as a ledger");
  } catch (const std::runtime_error& e) {
    CAF_CHECK_NOT_EQUAL(std::string{e.what()}.find(text.path), std::string::npos);
  }
}

// -- the actor -----------------------------------------------------------------------------------

CAF_TEST_FIXTURE_SCOPE(usage_ledger_tests, fixture)

CAF_TEST(records are committed together and a sync confirms them) {
  send_record(record(1, 0));
  send_record(record(1, 1));
  // The sync arrives before the flush the first record queued: it writes both itself.
  CAF_CHECK(sync());
  auto got = on_disk(file);
  CAF_REQUIRE_EQUAL(got.size(), 2u);
  check_same(got[1], record(1, 1));
}

CAF_TEST(a query counts records not yet flushed) {
  send_record(record(1, 0));
  send_record(record(2, 0, "error"));
  auto summary = query(0);
  CAF_CHECK_EQUAL(summary.totals.tasks, 2);
  CAF_CHECK_EQUAL(summary.totals.error, 1);
  CAF_CHECK_EQUAL(query(usage_window_start_ms(1, wall_time + 24h)).totals.tasks, 0);
}

CAF_TEST(records still queued when the ledger stops are written) {
  send_record(record(1, 0));
  // The exit is queued before the flush that the record queues, so only the shutdown writes it.
  caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
  consume_messages();
  CAF_CHECK_EQUAL(on_disk(file).size(), 1u);
}

CAF_TEST(a failing write keeps the records for the next one) {
  send_record(record(1, 0));
  CAF_CHECK(sync());
  file.exec("DROP TABLE usage");
  send_record(record(1, 1));
  CAF_CHECK(!sync()); // logged, kept
  file.exec(R"(CREATE TABLE usage(
                 run_id TEXT NOT NULL, session TEXT NOT NULL, call_no INTEGER NOT NULL,
                 task_index INTEGER NOT NULL, time_ms INTEGER NOT NULL, agent TEXT NOT NULL,
                 tool TEXT NOT NULL, model TEXT NOT NULL, backend TEXT NOT NULL,
                 tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,
                 duration_ms INTEGER NOT NULL, outcome TEXT NOT NULL, error_code TEXT NOT NULL,
                 attempts INTEGER NOT NULL, saved_usd REAL NOT NULL,
                 PRIMARY KEY(run_id, session, call_no, task_index)))");
  CAF_CHECK(sync());
  auto got = on_disk(file);
  CAF_REQUIRE_EQUAL(got.size(), 1u);
  CAF_CHECK_EQUAL(got[0].task_index, 1u);
}

CAF_TEST_FIXTURE_SCOPE_END()
