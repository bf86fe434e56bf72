#include "actors/usage_db.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <array>
#include <cmath>

namespace offload {

namespace {

constexpr int64_t schema_version = 1;

// Creates the table on first use (read-write), and refuses a ledger of a newer schema either way,
// before any statement that depends on the table is prepared.
sqlite_connection& with_usage_table(sqlite_connection& db, sqlite_connection::access mode) {
  int64_t version = 0;
  {
    sqlite_statement pragma{db, "PRAGMA user_version"};
    sqlite_statement::use row{pragma};
    if (row.step("cannot read the schema version of"))
      version = row.int_at(0);
  }
  if (version > schema_version)
    throw std::runtime_error(fmt::format("usage ledger {}: written by a newer offload (schema {}, "
                                         "this one reads {})",
                                         db.path(), version, schema_version));
  if (mode == sqlite_connection::access::read_write && version < schema_version)
    db.transaction([&db] {
      db.exec(R"(CREATE TABLE IF NOT EXISTS usage(
                   run_id TEXT NOT NULL, session TEXT NOT NULL, call_no INTEGER NOT NULL,
                   task_index INTEGER NOT NULL, time_ms INTEGER NOT NULL, agent TEXT NOT NULL,
                   tool TEXT NOT NULL, model TEXT NOT NULL, backend TEXT NOT NULL,
                   tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,
                   duration_ms INTEGER NOT NULL, outcome TEXT NOT NULL, error_code TEXT NOT NULL,
                   attempts INTEGER NOT NULL, saved_usd REAL NOT NULL,
                   PRIMARY KEY(run_id, session, call_no, task_index)))");
      db.exec("CREATE INDEX IF NOT EXISTS usage_by_time ON usage(time_ms)");
      db.exec("PRAGMA user_version = 1");
    });
  return db;
}

// The columns every grouping sums, read by read_totals from column `first` on.
constexpr const char* totals_columns =
    "COUNT(*), SUM(outcome = 'ok'), SUM(outcome = 'error'), SUM(outcome = 'skipped'), "
    "SUM(outcome = 'cancelled'), SUM(tokens_in), SUM(tokens_out), SUM(duration_ms), "
    "SUM(attempts), SUM(saved_usd)";

usage_totals read_totals(const sqlite_statement::use& row, int first) {
  usage_totals t;
  t.tasks = row.int_at(first);
  t.ok = row.int_at(first + 1);
  t.error = row.int_at(first + 2);
  t.skipped = row.int_at(first + 3);
  t.cancelled = row.int_at(first + 4);
  t.tokens_in = row.int_at(first + 5);
  t.tokens_out = row.int_at(first + 6);
  t.duration_ms = row.int_at(first + 7);
  t.attempts = row.int_at(first + 8);
  t.saved_usd = row.double_at(first + 9);
  return t;
}

// The SQL expression each grouping groups by.
constexpr const char* day_of_record = "strftime('%Y-%m-%d', time_ms / 1000, 'unixepoch')";

std::vector<usage_group> grouped(sqlite_connection& db, const char* key, int64_t since_ms) {
  auto sql = fmt::format("SELECT {} AS grp, {} FROM usage WHERE time_ms >= ?1 GROUP BY grp "
                         "ORDER BY grp",
                         key, totals_columns);
  sqlite_statement statement{db, sql.c_str()};
  sqlite_statement::use row{statement};
  row.bind(1, since_ms);
  std::vector<usage_group> out;
  while (row.step("cannot summarise"))
    out.push_back({row.text_at(0), read_totals(row, 1)});
  return out;
}

// Nearest-rank percentiles (p50, p95, p99) of the durations of tasks that ran, in one ordered
// scan; also their number and sum.
void duration_percentiles(sqlite_connection& db, int64_t since_ms, usage_summary& out) {
  constexpr const char* ran = "time_ms >= ?1 AND outcome IN ('ok', 'error')";
  {
    auto sql = fmt::format("SELECT COUNT(*), SUM(duration_ms) FROM usage WHERE {}", ran);
    sqlite_statement statement{db, sql.c_str()};
    sqlite_statement::use row{statement};
    row.bind(1, since_ms);
    if (row.step("cannot summarise")) {
      out.ran = row.int_at(0);
      out.ran_duration_ms = row.int_at(1);
    }
  }
  if (out.ran == 0)
    return;
  auto rank = [&](double p) {
    return std::max<int64_t>(0,
                             static_cast<int64_t>(std::ceil(p * static_cast<double>(out.ran))) - 1);
  };
  std::array<std::pair<int64_t, int64_t*>, 3> wanted{{{rank(0.50), &out.duration_p50_ms},
                                                      {rank(0.95), &out.duration_p95_ms},
                                                      {rank(0.99), &out.duration_p99_ms}}};
  auto sql = fmt::format("SELECT duration_ms FROM usage WHERE {} ORDER BY duration_ms", ran);
  sqlite_statement statement{db, sql.c_str()};
  sqlite_statement::use row{statement};
  row.bind(1, since_ms);
  for (int64_t index = 0; row.step("cannot summarise"); ++index) {
    for (auto& [at, target] : wanted)
      if (at == index)
        *target = row.int_at(0);
    if (index >= wanted.back().first)
      break;
  }
}

} // namespace

usage_db::usage_db(std::string path, std::chrono::milliseconds busy_timeout,
                   sqlite_connection::access mode)
    : db_(std::move(path), "usage ledger", busy_timeout, mode)
    , insert_(with_usage_table(db_, mode),
              R"(INSERT INTO usage(run_id, session, call_no, task_index, time_ms, agent, tool,
                   model, backend, tokens_in, tokens_out, duration_ms, outcome, error_code,
                   attempts, saved_usd)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT DO NOTHING)") {}

usage_db::~usage_db() = default;

size_t usage_db::append(const std::vector<usage_record>& records) {
  size_t added = 0;
  if (records.empty())
    return added;
  db_.transaction([&] {
    for (const auto& r : records) {
      sqlite_statement::use row{insert_};
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.time.time_since_epoch());
      row.bind(1, r.run_id).bind(2, r.session).bind(3, static_cast<int64_t>(r.call_no));
      row.bind(4, static_cast<int64_t>(r.task_index)).bind(5, static_cast<int64_t>(ms.count()));
      row.bind(6, r.agent).bind(7, r.tool).bind(8, r.model).bind(9, r.backend);
      row.bind(10, r.tokens_in).bind(11, r.tokens_out).bind(12, r.duration_ms);
      row.bind(13, r.outcome).bind(14, r.error_code).bind(15, static_cast<int64_t>(r.attempts));
      row.bind(16, r.saved_usd);
      row.step(fmt::format("cannot record task {}/{}/{} in", r.session, r.call_no, r.task_index));
      added += static_cast<size_t>(sqlite3_changes(db_.handle()));
    }
  });
  return added;
}

usage_summary usage_db::summarize(int64_t since_ms) {
  usage_summary out;
  if (since_ms > 0)
    out.since_day = utc_day(since_ms);
  db_.snapshot([&] {
    auto sql = fmt::format("SELECT {} FROM usage WHERE time_ms >= ?1", totals_columns);
    {
      sqlite_statement statement{db_, sql.c_str()};
      sqlite_statement::use row{statement};
      row.bind(1, since_ms);
      if (row.step("cannot summarise"))
        out.totals = read_totals(row, 0);
    }
    out.by_agent = grouped(db_, "agent", since_ms);
    out.by_model = grouped(db_, "model", since_ms);
    out.by_tool = grouped(db_, "tool", since_ms);
    out.by_backend = grouped(db_, "backend", since_ms);
    out.by_day = grouped(db_, day_of_record, since_ms);
    {
      sqlite_statement statement{db_, R"(SELECT error_code, COUNT(*) FROM usage
                                         WHERE time_ms >= ?1 AND outcome <> 'ok'
                                         GROUP BY error_code)"};
      sqlite_statement::use row{statement};
      row.bind(1, since_ms);
      while (row.step("cannot summarise"))
        out.errors_by_code[row.text_at(0)] = row.int_at(1);
    }
    duration_percentiles(db_, since_ms, out);
  });
  return out;
}

std::vector<usage_record> usage_db::records(int64_t since_ms) {
  sqlite_statement statement{db_, R"(SELECT time_ms, run_id, session, agent, call_no, task_index,
                                       tool, model, backend, tokens_in, tokens_out, duration_ms,
                                       outcome, error_code, attempts, saved_usd
                                     FROM usage WHERE time_ms >= ?1 ORDER BY time_ms, rowid)"};
  sqlite_statement::use row{statement};
  row.bind(1, since_ms);
  std::vector<usage_record> out;
  while (row.step("cannot read the records of")) {
    usage_record r;
    r.time = std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::milliseconds{row.int_at(0)})};
    r.run_id = row.text_at(1);
    r.session = row.text_at(2);
    r.agent = row.text_at(3);
    r.call_no = static_cast<uint64_t>(row.int_at(4));
    r.task_index = static_cast<uint64_t>(row.int_at(5));
    r.tool = row.text_at(6);
    r.model = row.text_at(7);
    r.backend = row.text_at(8);
    r.tokens_in = row.int_at(9);
    r.tokens_out = row.int_at(10);
    r.duration_ms = row.int_at(11);
    r.outcome = row.text_at(12);
    r.error_code = row.text_at(13);
    r.attempts = static_cast<uint32_t>(row.int_at(14));
    r.saved_usd = row.double_at(15);
    out.push_back(std::move(r));
  }
  return out;
}

} // namespace offload
