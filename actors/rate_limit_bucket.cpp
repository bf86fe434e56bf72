// A rate_limit_bucket actor owns one policy counter. Every reservation on the counter goes
// through its mailbox, so "value + amount <= limit" is checked and applied atomically: two calls
// can never both see the last unit of quota as free.
//
// The bucket has no timer. Windows are evaluated lazily against the injected wall clock on every
// message: a fixed window resets when the clock has entered a later UTC-aligned window, and a
// rolling window drops grants older than its length. An idle bucket therefore costs nothing.
//
// A wall clock stepped backwards (NTP, a VM resume) never refunds quota: a fixed window only
// moves forward, and rolling grants stamped "in the future" simply stay counted longer.
//
// With a counter store, the bucket starts from the state saved by the previous run and sends
// its whole state to the store after every change. Starting from a saved state is the same lazy
// evaluation as any other message: a fixed window that has passed since resets on entry, and
// rolling grants older than the window expire.

#include "actors/spawn.hpp"

#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <limits>

namespace offload {

namespace {

using time_point = std::chrono::system_clock::time_point;

// One grant still inside a rolling window.
struct rolling_grant {
  time_point at;
  int64_t amount = 0;
  int64_t id = 0;
};

// Rolling grant ids are unique in the whole process, not just per bucket: the registry replaces
// a bucket whose window changed (policy reload), and a late release of quota taken from the old
// bucket must not remove a grant that happens to carry the same id in the new one.
std::atomic<int64_t> next_grant_id{1};

struct rate_limit_bucket_state {
  // The counter's key, e.g. "offload_work._rate_minute"; releases for another key are ignored.
  std::string key;
  counter_window window;
  wall_clock now;
  // Fixed windows: the current window's start in seconds since the epoch, and its count.
  int64_t window_start = std::numeric_limits<int64_t>::min();
  int64_t value = 0;
  // Rolling windows: grants still inside the window, oldest first, and their sum.
  std::deque<rolling_grant> grants;
  int64_t total = 0;
  // Where the state goes after every change; null: the counter lives in memory only.
  counter_store_actor store;

  static constexpr const char* name = "rate_limit_bucket";
};

using bucket_pointer = rate_limit_bucket_actor::stateful_pointer<rate_limit_bucket_state>;

int64_t epoch_seconds(time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// value + amount <= limit, without overflowing: `amount` can come from an agent's arguments
// (increment_from), so it may be as large as int64 allows.
bool fits(int64_t value, int64_t amount, int64_t limit) {
  int64_t sum = 0;
  return !__builtin_add_overflow(value, amount, &sum) && sum <= limit;
}

// -- fixed windows ---------------------------------------------------------------------------

// Moves to the window containing `now`, resetting the count when that is a later window.
window_bounds enter_fixed_window(rate_limit_bucket_state& st, time_point now, fixed_window w) {
  auto bounds = fixed_window_bounds(now, w);
  auto start = epoch_seconds(bounds.start);
  if (start > st.window_start) {
    st.window_start = start;
    st.value = 0;
  }
  return bounds;
}

bucket_verdict reserve_fixed(rate_limit_bucket_state& st, time_point now, fixed_window w,
                             int64_t amount, int64_t limit) {
  auto bounds = enter_fixed_window(st, now, w);
  bucket_verdict out;
  if (!fits(st.value, amount, limit)) {
    // Nothing is ever given back within a window except by rollback, so the reset is the only
    // moment the caller can count on.
    out.retry_after_seconds = std::max<int64_t>(1, bounds.until_reset.count());
    return out;
  }
  st.value += amount;
  out.granted = true;
  out.held = held_quota{st.key, amount, st.window_start};
  return out;
}

// Returns whether the count changed.
bool release_fixed(rate_limit_bucket_state& st, time_point now, fixed_window w,
                   const held_quota& held) {
  enter_fixed_window(st, now, w);
  // Quota taken in an earlier window was already wiped by the reset; giving it back now would
  // hand out more than the limit in the current one.
  if (held.window_id != st.window_start || st.value == 0)
    return false;
  st.value = std::max<int64_t>(0, st.value - held.amount);
  return true;
}

// -- rolling windows -------------------------------------------------------------------------

// Drops the grants that are no longer newer than now - length.
void expire_rolling(rate_limit_bucket_state& st, time_point now, rolling_window w) {
  auto cutoff = now - w.length;
  while (!st.grants.empty() && st.grants.front().at <= cutoff) {
    st.total -= st.grants.front().amount;
    st.grants.pop_front();
  }
}

// Seconds until enough of the oldest grants expire for `amount` to fit (at least 1).
int64_t rolling_retry_after(const rate_limit_bucket_state& st, time_point now, rolling_window w,
                            int64_t amount, int64_t limit) {
  auto whole_window = std::max<int64_t>(1, w.length.count());
  // More than the limit can never fit, however long the caller waits; a full window is the
  // honest upper bound on what waiting could change (the limit may be raised by a reload).
  if (amount > limit)
    return whole_window;
  auto must_free = st.total - (limit - amount); // > 0, or the request would have fit
  int64_t freed = 0;
  for (const auto& g : st.grants) {
    freed += g.amount;
    if (freed >= must_free) {
      auto wait = std::chrono::ceil<std::chrono::seconds>(g.at + w.length - now);
      return std::max<int64_t>(1, wait.count());
    }
  }
  return whole_window; // unreachable while total is the sum of the grants
}

bucket_verdict reserve_rolling(rate_limit_bucket_state& st, time_point now, rolling_window w,
                               int64_t amount, int64_t limit) {
  expire_rolling(st, now, w);
  bucket_verdict out;
  if (!fits(st.total, amount, limit)) {
    out.retry_after_seconds = rolling_retry_after(st, now, w, amount, limit);
    return out;
  }
  auto id = next_grant_id.fetch_add(1, std::memory_order_relaxed);
  // A zero grant never changes the sum, so it is not kept; its id then releases nothing.
  if (amount > 0) {
    // Kept sorted by time even if the clock stepped back, so expiry can stop at the first
    // grant still inside the window.
    auto pos = std::upper_bound(st.grants.begin(), st.grants.end(), now,
                                [](time_point t, const rolling_grant& g) { return t < g.at; });
    st.grants.insert(pos, rolling_grant{now, amount, id});
    st.total += amount;
  }
  out.granted = true;
  out.held = held_quota{st.key, amount, id};
  return out;
}

// Returns whether a grant was removed.
bool release_rolling(rate_limit_bucket_state& st, time_point now, rolling_window w,
                     const held_quota& held) {
  expire_rolling(st, now, w);
  // A grant that already expired is gone; the id then matches nothing and nothing changes.
  auto it = std::find_if(st.grants.begin(), st.grants.end(),
                         [&](const rolling_grant& g) { return g.id == held.window_id; });
  if (it == st.grants.end())
    return false;
  // The stored amount is what was counted; trust it over the caller's copy.
  st.total -= it->amount;
  st.grants.erase(it);
  return true;
}

// -- persistence -----------------------------------------------------------------------------

// Takes over a saved state, then brings it up to `now` like any other message would.
void restore(rate_limit_bucket_state& st, const saved_counter& saved, time_point now) {
  // Counts kept under one window mean nothing under another (as on a policy reload).
  if (saved.window != st.window) {
    spdlog::info("counter {} was saved counting per {}, now per {}: it starts again from 0", st.key,
                 to_string(saved.window), to_string(st.window));
    return;
  }
  if (const auto* fixed = std::get_if<fixed_window>(&st.window)) {
    // A saved window later than now's (the clock went back) stays in force, as it would have
    // without the restart.
    st.window_start = saved.window_id;
    st.value = std::max<int64_t>(0, saved.value);
    enter_fixed_window(st, now, *fixed);
    return;
  }
  auto grants = saved.grants;
  std::stable_sort(grants.begin(), grants.end(),
                   [](const saved_grant& a, const saved_grant& b) { return a.at < b.at; });
  for (const auto& g : grants) {
    // Saved grants were granted within the limit, so they never overflow the sum; a file
    // edited by hand could, and such grants are dropped rather than corrupting the total.
    if (g.amount <= 0 || !fits(st.total, g.amount, std::numeric_limits<int64_t>::max()))
      continue;
    // Ids are per process: the quota held by the previous run's calls is gone with them.
    auto id = next_grant_id.fetch_add(1, std::memory_order_relaxed);
    st.grants.push_back(rolling_grant{g.at, g.amount, id});
    st.total += g.amount;
  }
  expire_rolling(st, now, std::get<rolling_window>(st.window));
}

saved_counter snapshot(const rate_limit_bucket_state& st) {
  saved_counter out;
  out.window = st.window;
  if (std::holds_alternative<fixed_window>(st.window)) {
    out.window_id = st.window_start;
    out.value = st.value;
    return out;
  }
  out.grants.reserve(st.grants.size());
  for (const auto& g : st.grants)
    out.grants.push_back(saved_grant{g.at, g.amount});
  return out;
}

// Called after every change. The whole state is sent, so a lost or failed save is repaired by
// the next one.
void persist(bucket_pointer self) {
  auto& st = self->state;
  if (st.store)
    self->send(st.store, counter_save_atom_v, st.key, snapshot(st));
}

// -- behaviour -------------------------------------------------------------------------------

rate_limit_bucket_actor::behavior_type rate_limit_bucket(bucket_pointer self, std::string key,
                                                         counter_window window, wall_clock now,
                                                         std::optional<saved_counter> saved,
                                                         counter_store_actor store) {
  auto& st = self->state;
  st.key = std::move(key);
  st.window = window;
  st.now = std::move(now);
  st.store = std::move(store);
  if (saved)
    restore(st, *saved, st.now());
  return {
      [self](reserve_atom, int64_t amount, int64_t limit) -> caf::result<bucket_verdict> {
        auto& st = self->state;
        // The policy evaluator denies negative amounts before reserving; one arriving here is a
        // bug, and granting it would refund quota.
        if (amount < 0)
          return caf::make_error(caf::sec::invalid_argument,
                                 "negative reservation on counter " + st.key);
        auto now = st.now();
        bucket_verdict verdict;
        if (const auto* fixed = std::get_if<fixed_window>(&st.window))
          verdict = reserve_fixed(st, now, *fixed, amount, limit);
        else
          verdict = reserve_rolling(st, now, std::get<rolling_window>(st.window), amount, limit);
        if (verdict.granted && amount > 0)
          persist(self);
        return verdict;
      },
      [self](release_atom, const held_quota& held) {
        auto& st = self->state;
        if (held.key != st.key) {
          spdlog::warn("counter {} ignored a release meant for {}", st.key, held.key);
          return;
        }
        if (held.amount <= 0)
          return;
        auto now = st.now();
        bool changed = false;
        if (const auto* fixed = std::get_if<fixed_window>(&st.window))
          changed = release_fixed(st, now, *fixed, held);
        else
          changed = release_rolling(st, now, std::get<rolling_window>(st.window), held);
        if (changed)
          persist(self);
      },
      [self](peek_atom) -> int64_t {
        auto& st = self->state;
        auto now = st.now();
        if (const auto* fixed = std::get_if<fixed_window>(&st.window)) {
          enter_fixed_window(st, now, *fixed);
          return st.value;
        }
        expire_rolling(st, now, std::get<rolling_window>(st.window));
        return st.total;
      },
  };
}

} // namespace

rate_limit_bucket_actor spawn_rate_limit_bucket(caf::actor_system& sys, std::string key,
                                                counter_window window, wall_clock now) {
  return spawn_rate_limit_bucket(sys, std::move(key), std::move(window), std::move(now),
                                 std::nullopt, counter_store_actor{});
}

rate_limit_bucket_actor spawn_rate_limit_bucket(caf::actor_system& sys, std::string key,
                                                counter_window window, wall_clock now,
                                                std::optional<saved_counter> saved,
                                                counter_store_actor store) {
  return sys.spawn(rate_limit_bucket, std::move(key), std::move(window), std::move(now),
                   std::move(saved), std::move(store));
}

int64_t saved_counter_value(const saved_counter& saved, std::chrono::system_clock::time_point now) {
  // The same restore a bucket does, in its own window, so both always agree.
  rate_limit_bucket_state st;
  st.window = saved.window;
  restore(st, saved, now);
  return std::holds_alternative<fixed_window>(st.window) ? st.value : st.total;
}

} // namespace offload
