#pragma once
// The SQLite connection and prepared statements shared by the databases of the state directory
// (policy counters, usage ledger): opening in WAL mode with a busy timeout, errors that name the
// file, transactions, and statements that are reset after every use. Not thread-safe: each
// connection has one owner at a time (a detached actor, or a command-line tool).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

// SQLite's handles, so that including this header does not pull in sqlite3.h.
struct sqlite3;
struct sqlite3_stmt;

namespace offload {

class sqlite_connection {
public:
  enum class access {
    // Created if missing; WAL mode with synchronous=NORMAL: a commit survives the process
    // being killed, only a power cut may lose the last commits (never corrupting the file).
    read_write,
    // Never creates or changes the file; reads while another process writes (WAL).
    read_only,
  };

  // Opens `path`; `what` names the database in errors ("counter database"). Throws
  // std::runtime_error naming the path when it cannot.
  sqlite_connection(std::string path, std::string what, std::chrono::milliseconds busy_timeout,
                    access mode = access::read_write);
  ~sqlite_connection();
  sqlite_connection(const sqlite_connection&) = delete;
  sqlite_connection& operator=(const sqlite_connection&) = delete;

  // Runs SQL without results; throws on failure.
  void exec(const char* sql);

  // Runs `body` in one transaction that takes the write lock up front (so a busy database fails
  // here, after the busy timeout, rather than halfway through); all or nothing.
  template <class Body>
  void transaction(Body&& body) {
    within("BEGIN IMMEDIATE", body);
  }

  // Runs `body`'s reads on one snapshot of the database, so that they agree with each other
  // while another connection writes.
  template <class Body>
  void snapshot(Body&& body) {
    within("BEGIN", body);
  }

  // Throws std::runtime_error: "<what> <path>: <SQLite's message>".
  [[noreturn]] void fail(const std::string& what) const;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }
  const std::string& what() const { return what_; }

private:
  template <class Body>
  void within(const char* begin, Body& body) {
    exec(begin);
    try {
      body();
      exec("COMMIT");
    } catch (...) {
      rollback();
      throw;
    }
  }
  void rollback() noexcept;

  std::string path_;
  std::string what_;
  sqlite3* db_ = nullptr;
};

// A statement prepared once and used many times. Each use goes through a `use` guard, which
// resets the statement when it ends, so that no finished query keeps a read snapshot open.
class sqlite_statement {
public:
  sqlite_statement(sqlite_connection& db, const char* sql);
  ~sqlite_statement();
  sqlite_statement(const sqlite_statement&) = delete;
  sqlite_statement& operator=(const sqlite_statement&) = delete;

  class use {
  public:
    explicit use(sqlite_statement& statement)
        : stmt_(statement) {}
    ~use();
    use(const use&) = delete;
    use& operator=(const use&) = delete;

    // Parameters count from 1, as in SQL (?1, ?2, ...).
    use& bind(int index, std::string_view text);
    use& bind(int index, int64_t value);
    use& bind(int index, double value);
    use& bind_null(int index);

    // Advances to the next row: true when there is one, false when done. Throws (naming
    // `doing`, e.g. "cannot read counter x from") on errors.
    bool step(const std::string& doing);

    int64_t int_at(int column) const;
    double double_at(int column) const;
    std::string text_at(int column) const;

  private:
    sqlite_statement& stmt_;
  };

private:
  sqlite_connection& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

} // namespace offload
