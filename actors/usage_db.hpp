#pragma once
// The SQLite layer of the usage ledger, usable without an actor: the daemon's ledger actor owns
// one read-write connection; `offload stats` opens one read-only while the daemon runs.
//
// Table usage(run_id, session, call_no, task_index, time_ms, agent, tool, model, backend,
// tokens_in, tokens_out, duration_ms, outcome, error_code, attempts, saved_usd), primary key
// (run_id, session, call_no, task_index): a task is recorded at most once, whatever is replayed.
// `PRAGMA user_version` is the schema version (1).

#include "actors/sqlite_db.hpp"
#include "protocol/ledger.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace offload {

class usage_db {
public:
  // Opens the ledger; read_write creates it (and its table) when missing. Throws
  // std::runtime_error naming `path` when it cannot, or when a newer offload wrote it.
  usage_db(std::string path, std::chrono::milliseconds busy_timeout,
           sqlite_connection::access mode = sqlite_connection::access::read_write);
  ~usage_db();
  usage_db(const usage_db&) = delete;
  usage_db& operator=(const usage_db&) = delete;

  // Writes the records in one transaction (all or none); a record whose key is already in the
  // ledger is skipped. Returns how many were new. Throws on SQLite errors.
  size_t append(const std::vector<usage_record>& records);

  // Totals and groups of the records from `since_ms` (epoch ms; 0: all) on.
  usage_summary summarize(int64_t since_ms);

  // The records from `since_ms` on, oldest first.
  std::vector<usage_record> records(int64_t since_ms);

  const std::string& path() const { return db_.path(); }

private:
  sqlite_connection db_;
  sqlite_statement insert_;
};

} // namespace offload
