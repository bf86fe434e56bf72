// The bucket registry owns one rate_limit_bucket per counter key and makes a call's reservations
// all or nothing. It reserves the counters one after another, awaiting each bucket's verdict
// before asking the next, and on the first refusal gives back everything this call already took.
// Different calls interleave freely here: each bucket serialises its own counter, which is all
// that is needed to keep every counter within its limit.
//
// Every way a bucket can fail to answer (error, timeout, death) refuses the call: the policy
// fails closed, as Intercept does with its state store by default.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

#include <unordered_map>

namespace offload {

namespace {

// A bucket answers from memory in microseconds; one that has not answered after this long is
// wedged, and the call is refused rather than left hanging. (Candidate for runtime/defaults.hpp.)
constexpr auto bucket_reply_timeout = std::chrono::seconds{5};

// What the agent reads when the counters could not be consulted.
constexpr const char* internal_error_message = "Internal policy error";

struct bucket_entry {
  rate_limit_bucket_actor handle;
  counter_window window; // the window the bucket counts in
};

struct bucket_registry_state {
  wall_clock now; // handed to every bucket
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
  size_t waiting = 0; // buckets that have not answered yet
  bool answered = false;
  caf::typed_response_promise<std::vector<int64_t>> promise;
};

// The bucket for `key`, spawned on first use. A reservation whose window differs from the
// bucket's (the policy was reloaded with another window for the counter) gets a fresh bucket:
// counts kept under one window mean nothing under another. The old bucket stops once nothing
// refers to it any more (in-flight calls still hold it for their rollbacks).
rate_limit_bucket_actor bucket_for(registry_pointer self, const std::string& key,
                                   const counter_window& window) {
  auto& st = self->state;
  auto it = st.buckets.find(key);
  if (it != st.buckets.end() && it->second.window == window)
    return it->second.handle;
  if (it != st.buckets.end())
    spdlog::info("counter {} now counts per {} (was {}): it starts again from 0", key,
                 to_string(window), to_string(it->second.window));
  auto bucket = spawn_rate_limit_bucket(self->home_system(), key, window, st.now);
  // Monitor, never link: a bucket's death costs its counts, not the registry.
  self->monitor(bucket);
  st.buckets.insert_or_assign(key, bucket_entry{bucket, window});
  return bucket;
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
  auto bucket = bucket_for(self, r.key, r.window);
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

bucket_registry_actor::behavior_type bucket_registry(registry_pointer self, wall_clock now) {
  self->state.now = std::move(now);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& buckets = self->state.buckets;
    for (auto it = buckets.begin(); it != buckets.end(); ++it) {
      if (it->second.handle.address() == msg.source) {
        // The next reservation of the key spawns a fresh bucket; until then it reads 0.
        spdlog::error("counter {} stopped ({}); its counts are lost", it->first,
                      caf::to_string(msg.reason));
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
          if (it != buckets.end())
            self->send(it->second.handle, release_atom_v, std::move(h));
        }
      },
      [self](peek_atom, std::vector<std::string>& keys) -> caf::result<std::vector<int64_t>> {
        auto& buckets = self->state.buckets;
        std::vector<rate_limit_bucket_actor> asked(keys.size());
        size_t waiting = 0;
        for (size_t i = 0; i < keys.size(); ++i) {
          auto it = buckets.find(keys[i]);
          if (it != buckets.end()) {
            asked[i] = it->second.handle;
            ++waiting;
          }
        }
        if (waiting == 0)
          return std::vector<int64_t>(keys.size(), 0);
        // Peeks only read, so the buckets are asked all at once.
        auto call = std::make_shared<peek_call>();
        call->values.assign(keys.size(), 0);
        call->waiting = waiting;
        call->promise = self->make_response_promise<std::vector<int64_t>>();
        for (size_t i = 0; i < asked.size(); ++i) {
          if (!asked[i])
            continue;
          self->request(asked[i], bucket_reply_timeout, peek_atom_v)
              .then(
                  [call, i](int64_t value) {
                    call->values[i] = value;
                    if (--call->waiting == 0 && !call->answered) {
                      call->answered = true;
                      call->promise.deliver(std::move(call->values));
                    }
                  },
                  [call, key = keys[i]](caf::error& err) {
                    // The caller must not evaluate state conditions on a made-up value.
                    spdlog::error("counter {} could not be read: {}", key, caf::to_string(err));
                    if (!call->answered) {
                      call->answered = true;
                      call->promise.deliver(std::move(err));
                    }
                  });
        }
        return call->promise;
      },
  };
}

} // namespace

bucket_registry_actor spawn_bucket_registry(caf::actor_system& sys, wall_clock now) {
  return sys.spawn(bucket_registry, std::move(now));
}

} // namespace offload
