#include "actors/sqlite_db.hpp"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <stdexcept>
#include <utility>

namespace offload {

sqlite_connection::sqlite_connection(std::string path, std::string what,
                                     std::chrono::milliseconds busy_timeout, access mode)
    : path_(std::move(path))
    , what_(std::move(what)) {
  auto flags =
      mode == access::read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  try {
    // SQLite allocates a handle even when opening fails; the catch below releases it (the
    // destructor does not run for a constructor that throws).
    if (sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr) != SQLITE_OK)
      fail("cannot open the " + what_);
    sqlite3_busy_timeout(db_, static_cast<int>(busy_timeout.count()));
    if (mode == access::read_only) {
      // Opening is lazy: read now, so that a file that is not a database fails here.
      if (sqlite3_exec(db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr) !=
          SQLITE_OK)
        fail("cannot read the " + what_);
      return;
    }
    // The pragma answers with the mode in force; a file system without shared memory (some
    // network mounts) keeps the old mode, which still works, only with readers blocking writers.
    sqlite3_stmt* journal = nullptr;
    if (sqlite3_prepare_v2(db_, "PRAGMA journal_mode=WAL", -1, &journal, nullptr) != SQLITE_OK)
      fail("cannot set WAL mode on the " + what_);
    auto rc = sqlite3_step(journal);
    const auto* got = rc == SQLITE_ROW ? sqlite3_column_text(journal, 0) : nullptr;
    std::string got_mode = got != nullptr ? reinterpret_cast<const char*>(got) : "";
    sqlite3_finalize(journal);
    if (rc != SQLITE_ROW)
      fail("cannot set WAL mode on the " + what_);
    if (got_mode != "wal")
      spdlog::warn("{} {}: journal mode is {}, not wal", what_, path_, got_mode);
    exec("PRAGMA synchronous=NORMAL");
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

sqlite_connection::~sqlite_connection() {
  // Statements are finalised by their owners first (members are destroyed in reverse order);
  // closing the last connection checkpoints the WAL into the main file.
  sqlite3_close(db_);
}

void sqlite_connection::fail(const std::string& what) const {
  throw std::runtime_error(what + " " + path_ + ": " +
                           (db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory"));
}

void sqlite_connection::exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
    fail(what_ + " statement failed (" + sql + ") on");
}

void sqlite_connection::rollback() noexcept {
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

sqlite_statement::sqlite_statement(sqlite_connection& db, const char* sql)
    : db_(db) {
  if (sqlite3_prepare_v2(db_.handle(), sql, -1, &stmt_, nullptr) != SQLITE_OK)
    db_.fail("cannot prepare the queries of the " + db_.what());
}

sqlite_statement::~sqlite_statement() {
  sqlite3_finalize(stmt_);
}

sqlite_statement::use::~use() {
  sqlite3_reset(stmt_.stmt_);
  sqlite3_clear_bindings(stmt_.stmt_);
}

sqlite_statement::use& sqlite_statement::use::bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_.stmt_, index, text.data(), static_cast<int>(text.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

sqlite_statement::use& sqlite_statement::use::bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_.stmt_, index, value);
  return *this;
}

sqlite_statement::use& sqlite_statement::use::bind(int index, double value) {
  sqlite3_bind_double(stmt_.stmt_, index, value);
  return *this;
}

sqlite_statement::use& sqlite_statement::use::bind_null(int index) {
  sqlite3_bind_null(stmt_.stmt_, index);
  return *this;
}

bool sqlite_statement::use::step(const std::string& doing) {
  auto rc = sqlite3_step(stmt_.stmt_);
  if (rc == SQLITE_ROW)
    return true;
  if (rc != SQLITE_DONE)
    stmt_.db_.fail(doing);
  return false;
}

int64_t sqlite_statement::use::int_at(int column) const {
  return sqlite3_column_int64(stmt_.stmt_, column);
}

double sqlite_statement::use::double_at(int column) const {
  return sqlite3_column_double(stmt_.stmt_, column);
}

std::string sqlite_statement::use::text_at(int column) const {
  const auto* text = sqlite3_column_text(stmt_.stmt_, column);
  return text != nullptr ? reinterpret_cast<const char*>(text) : "";
}

} // namespace offload
