#pragma once
// Test helpers shared by the policy counter tests: throw-away SQLite files and saved counter
// states as a previous run of the daemon would have left them.

#include "actors/spawn.hpp"

#include <caf/test/unit_test.hpp>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace offload::test {

inline int64_t epoch_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// A database file of its own for each test, removed with its WAL files afterwards.
struct temp_db {
  std::string path;

  explicit temp_db(const std::string& prefix) {
    static int next = 0;
    auto name = prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(next++);
    path = (std::filesystem::temp_directory_path() / (name + ".db")).string();
    remove_files();
  }
  ~temp_db() { remove_files(); }

  void remove_files() const {
    std::error_code ignored;
    for (const char* suffix : {"", "-wal", "-shm"})
      std::filesystem::remove(path + suffix, ignored);
  }

  // Runs SQL on a connection of its own, as another process would.
  void exec(const std::string& sql) const {
    sqlite3* db = nullptr;
    CAF_REQUIRE_EQUAL(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* message = nullptr;
    auto rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    std::string text = message != nullptr ? message : "";
    sqlite3_free(message);
    sqlite3_close(db);
    CAF_REQUIRE_EQUAL(text, "");
    CAF_REQUIRE_EQUAL(rc, SQLITE_OK);
  }
};

inline saved_counter saved_fixed(fixed_window window, int64_t window_id, int64_t value) {
  saved_counter out;
  out.window = window;
  out.window_id = window_id;
  out.value = value;
  return out;
}

inline saved_counter saved_rolling(std::chrono::seconds length, std::vector<saved_grant> grants) {
  saved_counter out;
  out.window = rolling_window{length};
  out.grants = std::move(grants);
  return out;
}

} // namespace offload::test
