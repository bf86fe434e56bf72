// The counter store keeps the policy counters in SQLite so that they survive restarts, as
// Intercept's do. One actor owns the one connection: SQLite calls block on the disk, so the actor
// runs detached and the buckets never wait for it (they send their state and carry on).
//
// Saves are coalesced: a save only records the key's newest state and, if none is queued yet,
// queues a flush to self behind the messages already waiting. When the flush arrives, everything
// saved meanwhile is written in one transaction, so a burst of grants costs one commit, not one
// per grant. A load answers from the queued saves first, so it never reads a stale row. Saves
// still queued when the actor stops are written as its state is destroyed.
//
// The database is WAL with synchronous=NORMAL: a commit survives the process crashing (what a
// restart needs); only a power cut may lose the last commits, which for rate counters means
// refunding a few seconds of quota, an acceptable price for not syncing on every grant.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>

namespace offload {

namespace {

constexpr auto busy_timeout = defaults::sqlite_busy_timeout;

using nanoseconds = std::chrono::nanoseconds;
using time_point = std::chrono::system_clock::time_point;

// -- encoding --------------------------------------------------------------------------------

// The `window` column: "minute", "hour", "day", or "rolling:<seconds>". Our own stable form, not
// to_string(), which is meant for people and may change.
std::string encode_window(const counter_window& window) {
  if (const auto* rolling = std::get_if<rolling_window>(&window))
    return "rolling:" + std::to_string(rolling->length.count());
  switch (std::get<fixed_window>(window)) {
  case fixed_window::minute:
    return "minute";
  case fixed_window::hour:
    return "hour";
  case fixed_window::day:
    return "day";
  }
  return "minute"; // unreachable: every enumerator is handled above
}

std::optional<counter_window> decode_window(std::string_view text) {
  if (text == "minute")
    return fixed_window::minute;
  if (text == "hour")
    return fixed_window::hour;
  if (text == "day")
    return fixed_window::day;
  constexpr std::string_view prefix = "rolling:";
  if (!text.starts_with(prefix))
    return std::nullopt;
  try {
    size_t used = 0;
    auto digits = std::string{text.substr(prefix.size())};
    auto seconds = std::stoll(digits, &used);
    if (used != digits.size() || seconds <= 0)
      return std::nullopt;
    return rolling_window{std::chrono::seconds{seconds}};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Grant times are kept to the nanosecond so that a restored grant expires exactly when it would
// have without the restart.
std::string encode_grants(const std::vector<saved_grant>& grants) {
  auto out = nlohmann::json::array();
  for (const auto& g : grants) {
    auto at = std::chrono::duration_cast<nanoseconds>(g.at.time_since_epoch()).count();
    out.push_back({{"at_ns", at}, {"amount", g.amount}});
  }
  return out.dump();
}

std::optional<std::vector<saved_grant>> decode_grants(const std::string& text) {
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (!parsed.is_array())
    return std::nullopt;
  std::vector<saved_grant> out;
  for (const auto& item : parsed) {
    if (!item.is_object() || !item.contains("at_ns") || !item.contains("amount") ||
        !item["at_ns"].is_number_integer() || !item["amount"].is_number_integer())
      return std::nullopt;
    auto at = nanoseconds{item["at_ns"].get<int64_t>()};
    out.push_back({time_point{std::chrono::duration_cast<time_point::duration>(at)},
                   item["amount"].get<int64_t>()});
  }
  return out;
}

// Creates the table (if missing) before the statements that use it are prepared.
sqlite_connection& with_counter_table(sqlite_connection& db) {
  db.exec(R"(CREATE TABLE IF NOT EXISTS counters(
               key TEXT PRIMARY KEY, "window" TEXT, window_id INTEGER, value INTEGER, entries TEXT))");
  return db;
}

} // namespace

// -- counter_db ------------------------------------------------------------------------------

counter_db::counter_db(std::string path, std::chrono::milliseconds busy_timeout)
    : db_(std::move(path), "counter database", busy_timeout)
    , select_(with_counter_table(db_), R"(SELECT "window", window_id, value, entries FROM counters
                                          WHERE key = ?1)")
    , upsert_(db_, R"(INSERT INTO counters(key, "window", window_id, value, entries)
                      VALUES(?1, ?2, ?3, ?4, ?5)
                      ON CONFLICT(key) DO UPDATE SET "window" = excluded."window",
                        window_id = excluded.window_id, value = excluded.value,
                        entries = excluded.entries)") {}

counter_db::~counter_db() = default;

std::optional<saved_counter> counter_db::load(const std::string& key) {
  sqlite_statement::use row{select_};
  row.bind(1, key);
  if (!row.step("cannot read counter " + key + " from"))
    return std::nullopt;
  // A row we cannot understand (written by a newer version, or edited by hand) is not worth
  // refusing every call over: the counter starts again from 0 and the next save replaces it.
  auto window_text = row.text_at(0);
  auto window = decode_window(window_text);
  if (!window) {
    spdlog::warn("counter database {}: counter {} has an unknown window \"{}\"; it starts from 0",
                 path(), key, window_text);
    return std::nullopt;
  }
  saved_counter out;
  out.window = *window;
  out.window_id = row.int_at(1);
  out.value = row.int_at(2);
  if (std::holds_alternative<rolling_window>(out.window)) {
    auto grants = decode_grants(row.text_at(3));
    if (!grants) {
      spdlog::warn("counter database {}: counter {} has unreadable entries; it starts from 0",
                   path(), key);
      return std::nullopt;
    }
    out.grants = std::move(*grants);
    out.value = 0; // unused for rolling windows: the grants are the truth
  }
  return out;
}

void counter_db::save(const std::map<std::string, saved_counter>& states) {
  if (states.empty())
    return;
  // Nothing of a failed batch is kept; the next save of each key carries its whole state.
  db_.transaction([&] {
    for (const auto& [key, state] : states) {
      sqlite_statement::use row{upsert_};
      bool rolling = std::holds_alternative<rolling_window>(state.window);
      int64_t value = state.value;
      if (rolling) {
        // Written for people inspecting the file; load() ignores it.
        value = 0;
        for (const auto& g : state.grants)
          value += g.amount;
      }
      row.bind(1, key).bind(2, encode_window(state.window));
      row.bind(3, rolling ? int64_t{0} : state.window_id).bind(4, value);
      if (rolling)
        row.bind(5, encode_grants(state.grants));
      else
        row.bind_null(5);
      row.step("cannot save counter " + key + " to");
    }
  });
}

// -- the actor -------------------------------------------------------------------------------

namespace {

struct counter_store_state {
  std::unique_ptr<counter_db> db;
  // Saves not written yet: only each key's newest state matters.
  std::map<std::string, saved_counter> pending;
  bool flush_queued = false; // a flush message is on its way to self

  // Runs when the actor stops (CAF destroys the state on exit): saves that arrived after the
  // last flush must still reach the disk.
  ~counter_store_state() { write_pending(); }

  void write_pending() {
    flush_queued = false;
    if (!db || pending.empty())
      return;
    auto batch = std::exchange(pending, {});
    try {
      db->save(batch);
    } catch (const std::exception& e) {
      // Dropped, not retried: the next change of each key saves its whole state again.
      spdlog::error("{} ({} counter state(s) not saved)", e.what(), batch.size());
    }
  }

  static constexpr const char* name = "counter_store";
};

using store_pointer = counter_store_actor::stateful_pointer<counter_store_state>;

// `db` is moved out of its box so that only the state owns the connection, which then closes
// when the actor stops (CAF may keep the spawn arguments alive longer).
counter_store_actor::behavior_type counter_store(store_pointer self,
                                                 std::shared_ptr<std::unique_ptr<counter_db>> db) {
  self->state.db = std::move(*db);
  return {
      [self](counter_load_atom,
             const std::string& key) -> caf::result<std::optional<saved_counter>> {
        auto& st = self->state;
        if (auto it = st.pending.find(key); it != st.pending.end())
          return std::optional<saved_counter>{it->second};
        try {
          return st.db->load(key);
        } catch (const std::exception& e) {
          spdlog::error("{}", e.what());
          return caf::make_error(caf::sec::runtime_error, e.what());
        }
      },
      [self](counter_save_atom, std::string& key, saved_counter& state) {
        auto& st = self->state;
        st.pending.insert_or_assign(std::move(key), std::move(state));
        if (!st.flush_queued) {
          st.flush_queued = true;
          self->send(self, counter_flush_atom_v);
        }
      },
      [self](counter_flush_atom) { self->state.write_pending(); },
  };
}

} // namespace

counter_store_actor spawn_counter_store(caf::actor_system& sys, const std::string& path,
                                        counter_store_threading threading) {
  // Opened here, before the actor exists, so that a bad path fails the daemon's start-up.
  auto db = std::make_shared<std::unique_ptr<counter_db>>(
      std::make_unique<counter_db>(path, busy_timeout));
  if (threading == counter_store_threading::scheduled)
    return sys.spawn(counter_store, std::move(db));
  return sys.spawn<caf::detached>(counter_store, std::move(db));
}

} // namespace offload
