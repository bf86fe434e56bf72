// The bucket registry owns one rate_limit_bucket per counter key and makes a call's reservations
// all or nothing. It reserves the counters one after another, awaiting each bucket's verdict
// before asking the next, and on the first refusal gives back everything this call already took.
// Different calls interleave freely here: each bucket serialises its own counter, which is all
// that is needed to keep every counter within its limit.
//
// Every way a bucket can fail to answer (error, timeout, death) refuses the call: the policy
// fails closed, as Intercept does with its state store by default.
//
// With a counter store, a key's bucket is spawned only once the store has answered with the
// key's saved state. Meanwhile the key's entry is "loading": whatever needs its bucket (a
// reservation, a release, a peek) waits in the entry, in arrival order, and runs as soon as the
// bucket exists. There is still exactly one bucket per key, so reservations stay serialised
// and a limit cannot be overshot while a load is pending. A load that fails refuses the waiting
// calls (fail closed) and the next use of the key tries again.

#include "actors/spawn.hpp"

#include <caf/expected.hpp>
#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

#include <unordered_map>

namespace offload {

namespace {

using defaults::bucket_reply_timeout;
using defaults::store_reply_timeout;

// What the agent reads when the counters could not be consulted.
constexpr const char* internal_error_message = "Internal policy error";

// Runs with the key's bucket once it exists, or with the reason it could not be made.
using bucket_waiter = std::function<void(caf::expected<rate_limit_bucket_actor>)>;

// A bucket whose saved state is being read from the store.
struct bucket_load {
  std::vector<bucket_waiter> waiters; // in arrival order
};

struct bucket_entry {
  rate_limit_bucket_actor handle;       // null while loading
  counter_window window;                // the window the bucket counts in
  std::shared_ptr<bucket_load> loading; // set until the store has answered
};

struct bucket_registry_state {
  wall_clock now; // handed to every bucket
  // Where counters are saved and loaded; null: in memory only.
  counter_store_actor store;
  // Buckets by counter key, spawned on the first reservation of the key.
  std::unordered_map<std::string, bucket_entry> buckets;

  static constexpr const char* name = "bucket_registry";
};

using registry_pointer = bucket_registry_actor::stateful_pointer<bucket_registry_state>;

// One reserve request in progress.
struct reservation_call {
  std::vector<counter_reservation> reservations;
  size_t next = 0; // the reservation being asked for
  // What this call took so far, with the bucket that granted it: a rollback goes back to that
  // very bucket, even if the key's bucket has been replaced meanwhile.
  std::vector<std::pair<rate_limit_bucket_actor, held_quota>> granted;
  caf::typed_response_promise<reservation_outcome> promise;
};
using reservation_call_ptr = std::shared_ptr<reservation_call>;

// One peek request in progress.
struct peek_call {
  std::vector<int64_t> values;
  size_t waiting = 0; // buckets (or store reads) that have not answered yet
  bool answered = false;
  caf::typed_response_promise<std::vector<int64_t>> promise;

  void value(size_t i, int64_t v) {
    values[i] = v;
    if (--waiting == 0 && !answered) {
      answered = true;
      promise.deliver(std::move(values));
    }
  }

  // The caller must not evaluate state conditions on a made-up value.
  void fail(caf::error err) {
    if (!answered) {
      answered = true;
      promise.deliver(std::move(err));
    }
  }
};
using peek_call_ptr = std::shared_ptr<peek_call>;

void peek_bucket(registry_pointer self, peek_call_ptr call, size_t i, const std::string& key,
                 const rate_limit_bucket_actor& bucket) {
  self->request(bucket, bucket_reply_timeout, peek_atom_v)
      .then([call, i](int64_t value) { call->value(i, value); },
            [call, key](caf::error& err) {
              spdlog::error("counter {} could not be read: {}", key, caf::to_string(err));
              call->fail(std::move(err));
            });
}

// A key without a bucket in this run: what the previous run saved, evaluated in the window it was
// saved with (if the policy now uses another, the bucket will start from 0 and so will this).
void peek_store(registry_pointer self, peek_call_ptr call, size_t i, const std::string& key) {
  self->request(self->state.store, store_reply_timeout, counter_load_atom_v, key)
      .then(
          [self, call, i](std::optional<saved_counter>& saved) {
            call->value(i, saved ? saved_counter_value(*saved, self->state.now()) : 0);
          },
          [call, key](caf::error& err) {
            spdlog::error("counter {} could not be read from the store: {}", key,
                          caf::to_string(err));
            call->fail(std::move(err));
          });
}

// Spawns the bucket for `key` from its saved state and registers it, unless the key's entry was
// replaced while the state was loading (then the bucket serves only the waiters of this load).
rate_limit_bucket_actor start_bucket(registry_pointer self, const std::string& key,
                                     const counter_window& window,
                                     std::optional<saved_counter> saved,
                                     const std::shared_ptr<bucket_load>& load) {
  auto& st = self->state;
  auto bucket =
      spawn_rate_limit_bucket(self->home_system(), key, window, st.now, std::move(saved), st.store);
  // Monitor, never link: a bucket's death costs its unsaved counts, not the registry.
  self->monitor(bucket);
  auto it = st.buckets.find(key);
  if (!load)
    st.buckets.insert_or_assign(key, bucket_entry{bucket, window, nullptr});
  else if (it != st.buckets.end() && it->second.loading == load)
    it->second = bucket_entry{bucket, window, nullptr};
  return bucket;
}

// Runs `then` with the bucket for `key`, spawned on first use (after loading its saved state when
// there is a store). A reservation whose window differs from the bucket's (the policy was reloaded
// with another window for the counter) gets a fresh bucket: counts kept under one window mean
// nothing under another. The old bucket stops once nothing refers to it any more (in-flight
// calls still hold it for their rollbacks).
void with_bucket(registry_pointer self, const std::string& key, const counter_window& window,
                 bucket_waiter then) {
  auto& st = self->state;
  auto it = st.buckets.find(key);
  if (it != st.buckets.end() && it->second.window == window) {
    if (it->second.loading)
      it->second.loading->waiters.push_back(std::move(then));
    else
      then(it->second.handle);
    return;
  }
  if (it != st.buckets.end())
    spdlog::info("counter {} now counts per {} (was {}): it starts again from 0", key,
                 to_string(window), to_string(it->second.window));
  if (!st.store) {
    then(start_bucket(self, key, window, std::nullopt, nullptr));
    return;
  }
  auto load = std::make_shared<bucket_load>();
  load->waiters.push_back(std::move(then));
  st.buckets.insert_or_assign(key, bucket_entry{{}, window, load});
  self->request(st.store, store_reply_timeout, counter_load_atom_v, key)
      .then(
          [self, key, window, load](std::optional<saved_counter>& saved) {
            auto bucket = start_bucket(self, key, window, std::move(saved), load);
            // Moved out first, so that nothing a waiter does can touch the list being run.
            auto waiters = std::move(load->waiters);
            for (auto& waiter : waiters)
              waiter(bucket);
          },
          [self, key, load](caf::error& err) {
            spdlog::error("counter {}: its saved state could not be read: {}", key,
                          caf::to_string(err));
            auto& buckets = self->state.buckets;
            if (auto it = buckets.find(key); it != buckets.end() && it->second.loading == load)
              buckets.erase(it); // the next use loads again
            auto waiters = std::move(load->waiters);
            for (auto& waiter : waiters)
              waiter(err);
          });
}

// Gives back what the call took and answers with the denial of the current reservation.
void refuse(registry_pointer self, reservation_call& call, int64_t retry_after_seconds,
            bool internal_error) {
  for (auto& [bucket, held] : call.granted)
    self->send(bucket, release_atom_v, std::move(held));
  call.granted.clear();
  reservation_outcome out;
  out.denial = reservation_denial(call.reservations.at(call.next));
  if (internal_error) {
    // No counter limit caused this, so none is named (nothing to wait for).
    out.denial->message = internal_error_message;
    out.denial->counter.reset();
  }
  out.retry_after_seconds = retry_after_seconds;
  call.promise.deliver(std::move(out));
}

void reserve_at(registry_pointer self, reservation_call_ptr call, rate_limit_bucket_actor bucket);

// Asks the bucket of the next reservation, or answers when every one was granted.
void reserve_next(registry_pointer self, reservation_call_ptr call) {
  if (call->next == call->reservations.size()) {
    reservation_outcome out;
    out.granted = true;
    out.held.reserve(call->granted.size());
    for (auto& [bucket, held] : call->granted)
      out.held.push_back(std::move(held));
    call->promise.deliver(std::move(out));
    return;
  }
  const auto& r = call->reservations[call->next];
  with_bucket(self, r.key, r.window, [self, call](caf::expected<rate_limit_bucket_actor> bucket) {
    if (!bucket) {
      refuse(self, *call, 0, true);
      return;
    }
    reserve_at(self, call, *bucket);
  });
}

// Asks `bucket` for the call's current reservation.
void reserve_at(registry_pointer self, reservation_call_ptr call, rate_limit_bucket_actor bucket) {
  const auto& r = call->reservations[call->next];
  self->request(bucket, bucket_reply_timeout, reserve_atom_v, r.amount, r.limit)
      .then(
          [self, call, bucket](bucket_verdict& verdict) {
            if (!verdict.granted) {
              refuse(self, *call, verdict.retry_after_seconds, false);
              return;
            }
            call->granted.emplace_back(bucket, std::move(verdict.held));
            ++call->next;
            reserve_next(self, call);
          },
          [self, call](caf::error& err) {
            spdlog::error("counter {} could not be reserved: {}",
                          call->reservations[call->next].key, caf::to_string(err));
            refuse(self, *call, 0, true);
          });
}

bucket_registry_actor::behavior_type bucket_registry(registry_pointer self, wall_clock now,
                                                     counter_store_actor store) {
  self->state.now = std::move(now);
  self->state.store = std::move(store);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& buckets = self->state.buckets;
    for (auto it = buckets.begin(); it != buckets.end(); ++it) {
      if (!it->second.loading && it->second.handle.address() == msg.source) {
        // The next reservation of the key spawns a fresh bucket: from the state the dead one
        // last saved when there is a store, else from 0 (and until then the key reads 0).
        spdlog::error("counter {} stopped ({}); {}", it->first, caf::to_string(msg.reason),
                      self->state.store ? "it restarts from its last saved state"
                                        : "its counts are lost");
        buckets.erase(it);
        return;
      }
    }
  });
  return {
      [self](reserve_atom,
             std::vector<counter_reservation>& reservations) -> caf::result<reservation_outcome> {
        if (reservations.empty()) {
          reservation_outcome out;
          out.granted = true;
          return out;
        }
        auto call = std::make_shared<reservation_call>();
        call->reservations = std::move(reservations);
        call->promise = self->make_response_promise<reservation_outcome>();
        reserve_next(self, call);
        return call->promise;
      },
      [self](release_atom, std::vector<held_quota>& held) {
        auto& buckets = self->state.buckets;
        for (auto& h : held) {
          // A key without a bucket has nothing to give back to (its bucket died, or the quota
          // was never ours).
          auto it = buckets.find(h.key);
          if (it == buckets.end())
            continue;
          if (!it->second.loading) {
            self->send(it->second.handle, release_atom_v, std::move(h));
            continue;
          }
          // The bucket that granted it died or was replaced; the new one may have reloaded the
          // grant from the store, so it gets the release once it exists.
          it->second.loading->waiters.push_back(
              [self, h](caf::expected<rate_limit_bucket_actor> bucket) {
                if (bucket)
                  self->send(*bucket, release_atom_v, h);
              });
        }
      },
      [self](peek_atom, std::vector<std::string>& keys) -> caf::result<std::vector<int64_t>> {
        auto& st = self->state;
        // Keys without a bucket read 0, or what the store saved for them.
        size_t waiting = 0;
        for (const auto& key : keys)
          if (st.store || st.buckets.count(key) != 0)
            ++waiting;
        if (waiting == 0)
          return std::vector<int64_t>(keys.size(), 0);
        // Peeks only read, so everything is asked at once.
        auto call = std::make_shared<peek_call>();
        call->values.assign(keys.size(), 0);
        call->waiting = waiting;
        call->promise = self->make_response_promise<std::vector<int64_t>>();
        for (size_t i = 0; i < keys.size(); ++i) {
          auto it = st.buckets.find(keys[i]);
          if (it == st.buckets.end()) {
            if (st.store)
              peek_store(self, call, i, keys[i]);
          } else if (!it->second.loading) {
            peek_bucket(self, call, i, keys[i], it->second.handle);
          } else {
            it->second.loading->waiters.push_back(
                [self, call, i, key = keys[i]](caf::expected<rate_limit_bucket_actor> bucket) {
                  if (bucket)
                    peek_bucket(self, call, i, key, *bucket);
                  else
                    call->fail(bucket.error());
                });
          }
        }
        return call->promise;
      },
  };
}

} // namespace

bucket_registry_actor spawn_bucket_registry(caf::actor_system& sys, wall_clock now) {
  return spawn_bucket_registry(sys, std::move(now), counter_store_actor{});
}

bucket_registry_actor spawn_bucket_registry(caf::actor_system& sys, wall_clock now,
                                            counter_store_actor store) {
  return sys.spawn(bucket_registry, std::move(now), std::move(store));
}

} // namespace offload
