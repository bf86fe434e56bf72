// The usage ledger actor owns the ledger's SQLite connection: batch coordinators send it one
// record per finished task, and it commits them. It runs detached because SQLite blocks on the
// disk; nobody waits for a record, only for a sync.
//
// Records are written in bursts: a record is queued and, if no flush is queued yet, a flush to
// self goes behind the messages already waiting, so that the records of tasks finishing together
// cost one commit. A sync (sent by a coordinator before it answers) and a query first write what
// is queued, so a batch result the agent has seen is always in the ledger, and summaries include
// every task finished before them. Records still queued when the actor stops (SIGTERM) are
// written as its state is destroyed.
//
// Durability: WAL with synchronous=NORMAL. A commit is in the operating system's hands at once,
// so killing the daemon (kill -9, a crash) loses nothing committed; only a power cut or kernel
// crash may lose the last commits before the next checkpoint, and never corrupts the file. The
// records a kill can lose are those of tasks whose batch had not answered yet (queued for the
// flush, microseconds), which no agent has seen.

#include "actors/spawn.hpp"
#include "actors/usage_db.hpp"

#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

#include <utility>

namespace offload {

namespace {

struct usage_ledger_state {
  std::unique_ptr<usage_db> db;
  // Records received and not committed yet, oldest first.
  std::vector<usage_record> pending;
  bool flush_queued = false; // a flush message is on its way to self

  ~usage_ledger_state() {
    if (!write_pending() && !pending.empty())
      spdlog::error("usage ledger: {} record(s) lost at shutdown", pending.size());
  }

  // Commits the pending records; true when none is left over.
  bool write_pending() {
    flush_queued = false;
    if (!db || pending.empty())
      return true;
    try {
      db->append(pending);
      pending.clear();
      return true;
    } catch (const std::exception& e) {
      // Kept for the next write: a full disk or a lock held elsewhere may clear up.
      spdlog::error("{} ({} record(s) kept for the next try)", e.what(), pending.size());
      if (pending.size() > defaults::ledger_max_pending) {
        auto excess = pending.size() - defaults::ledger_max_pending;
        pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(excess));
        spdlog::error("usage ledger: dropped the {} oldest unwritten record(s)", excess);
      }
      return false;
    }
  }

  static constexpr const char* name = "usage_ledger";
};

using ledger_pointer = usage_ledger_actor::stateful_pointer<usage_ledger_state>;

// `db` is moved out of its box so that only the state owns the connection, which then closes
// when the actor stops (CAF may keep the spawn arguments alive longer).
usage_ledger_actor::behavior_type usage_ledger(ledger_pointer self,
                                               std::shared_ptr<std::unique_ptr<usage_db>> db) {
  self->state.db = std::move(*db);
  return {
      [self](ledger_record_atom, usage_record& record) {
        auto& st = self->state;
        st.pending.push_back(std::move(record));
        if (!st.flush_queued) {
          st.flush_queued = true;
          self->send(self, ledger_flush_atom_v);
        }
      },
      [self](ledger_sync_atom) { return self->state.write_pending(); },
      [self](ledger_query_atom, int64_t since_ms) -> caf::result<usage_summary> {
        auto& st = self->state;
        st.write_pending();
        try {
          return st.db->summarize(since_ms);
        } catch (const std::exception& e) {
          spdlog::error("{}", e.what());
          return caf::make_error(caf::sec::runtime_error, e.what());
        }
      },
      [self](ledger_flush_atom) { self->state.write_pending(); },
  };
}

} // namespace

usage_ledger_actor spawn_usage_ledger(caf::actor_system& sys, const std::string& path,
                                      store_threading threading) {
  // Opened here, before the actor exists, so that a bad path fails the daemon's start-up.
  auto db = std::make_shared<std::unique_ptr<usage_db>>(
      std::make_unique<usage_db>(path, defaults::sqlite_busy_timeout));
  if (threading == store_threading::scheduled)
    return sys.spawn(usage_ledger, std::move(db));
  return sys.spawn<caf::detached>(usage_ledger, std::move(db));
}

} // namespace offload
