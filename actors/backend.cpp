// A backend actor owns one LLM endpoint: it admits at most `max_concurrency` exchanges at once
// and hands each admitted request to its llm_client, whose completion comes back as an
// (http_done) message. Requests that find every slot busy wait in a fair_queue (round-robin per
// session, interactive first, aging), bounded in length and in waiting time: a request that
// cannot be served soon fails fast with queue_full instead of hanging. A requester that dies (task
// timed out, batch cancelled) is noticed through a monitor: its queued request is dropped and its
// running exchange aborted, so no slot is ever spent on an answer nobody will read. If the actor
// itself fails, every requester is answered with backend_unavailable before it goes, so that tasks
// can fail over instead of waiting for their deadline.

#include "actors/fair_queue.hpp"
#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unordered_map>

namespace offload {

namespace {

struct pending_request {
  uint64_t id = 0;
  llm_request_ptr request;
  caf::typed_response_promise<llm_reply> promise;
  caf::actor_addr requester;
};

struct running_exchange {
  caf::typed_response_promise<llm_reply> promise;
  caf::actor_addr requester;
  std::shared_ptr<llm_exchange> exchange;
  caf::actor_clock::time_point started;
  bool abandoned = false; // the requester is gone; the slot frees when the abort completes
};

struct backend_state {
  backend_settings settings;
  std::shared_ptr<llm_client> client;
  // Requests waiting for a slot.
  fair_queue<pending_request> queue;
  // Exchanges holding a slot, by id.
  std::unordered_map<uint64_t, running_exchange> running;
  uint64_t next_id = 1;
  // A sweep tick is scheduled (it reschedules itself while requests wait).
  bool sweep_pending = false;
  uint64_t sweep_generation = 0;

  static constexpr const char* name = "backend";
};

using backend_pointer = backend_actor::stateful_pointer<backend_state>;

void report_queue(backend_pointer self) {
  auto& st = self->state;
  if (st.settings.metrics)
    st.settings.metrics->queue_depth.set(static_cast<int64_t>(st.queue.size()));
}

void pump(backend_pointer self) {
  auto& st = self->state;
  auto now = self->clock().now();
  while (st.running.size() < st.settings.max_concurrency) {
    auto next = st.queue.pop(now, st.settings.aging);
    if (!next)
      break;
    auto handle = caf::actor_cast<backend_actor>(self);
    auto id = next->id;
    // The callback runs on an I/O thread: it only posts a message back to this actor.
    auto exchange = st.client->start(next->request, [handle, id](llm_outcome outcome) {
      caf::anon_send(handle, http_done_atom_v, id, std::move(outcome));
    });
    st.running.emplace(id, running_exchange{std::move(next->promise), next->requester,
                                            std::move(exchange), now, false});
  }
  report_queue(self);
}

void schedule_sweep(backend_pointer self, std::chrono::steady_clock::time_point oldest) {
  auto& st = self->state;
  if (st.sweep_pending)
    return;
  st.sweep_pending = true;
  auto due = oldest + st.settings.queue_wait - self->clock().now();
  self->delayed_send(self, std::max(due, decltype(due){std::chrono::milliseconds{1}}), sweep_atom_v,
                     ++st.sweep_generation);
}

void drop_requests_of(backend_pointer self, const caf::actor_addr& requester) {
  auto& st = self->state;
  st.queue.remove_if([&](const pending_request& p) { return p.requester == requester; },
                     [](pending_request&) {});
  report_queue(self);
  for (auto& [id, run] : st.running) {
    if (run.requester == requester && !run.abandoned) {
      run.abandoned = true;
      if (run.exchange)
        run.exchange->cancel();
    }
  }
}

// Answers every waiting and running request with `err` (the actor is about to stop).
void fail_everything(backend_pointer self, const task_error& err) {
  auto& st = self->state;
  auto error = to_caf_error(err, st.settings.name);
  st.queue.remove_if([](const pending_request&) { return true; },
                     [&](pending_request& p) { p.promise.deliver(error); });
  for (auto& [id, run] : st.running) {
    if (!run.abandoned)
      run.promise.deliver(error);
    if (run.exchange)
      run.exchange->cancel();
  }
  st.running.clear();
}

backend_actor::behavior_type backend(backend_pointer self, backend_settings settings,
                                     std::shared_ptr<llm_client> client) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.client = std::move(client);
  if (st.settings.max_concurrency == 0)
    st.settings.max_concurrency = 1;
  self->set_down_handler([self](caf::down_msg& msg) { drop_requests_of(self, msg.source); });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (msg.reason != caf::exit_reason::user_shutdown && msg.reason != caf::exit_reason::normal)
      fail_everything(self, {errc::backend_unavailable,
                             fmt::format("the backend {} was stopped ({})",
                                         self->state.settings.name, caf::to_string(msg.reason)),
                             true});
    self->quit(msg.reason);
  });
  self->set_exception_handler([self](std::exception_ptr& eptr) -> caf::error {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("backend {}: failed: {}", self->state.settings.name, what);
    fail_everything(self, {errc::backend_unavailable,
                           fmt::format("the backend {} failed ({}); it is being restarted",
                                       self->state.settings.name, what),
                           true});
    return caf::make_error(caf::sec::runtime_error, what);
  });
  return {
      [self](generate_atom, llm_request_ptr& request) -> caf::result<llm_reply> {
        auto& st = self->state;
        auto free_slot = st.running.size() < st.settings.max_concurrency && st.queue.empty();
        if (!free_slot && st.queue.size() >= st.settings.max_queue)
          return to_caf_error({errc::queue_full,
                               fmt::format("the backend {} has {} requests running and {} "
                                           "waiting (the limit); the local LLMs are saturated",
                                           st.settings.name, st.running.size(), st.queue.size()),
                               true},
                              st.settings.name);
        auto requester = caf::actor_cast<caf::actor_addr>(self->current_sender());
        if (requester)
          self->monitor(requester);
        auto promise = self->make_response_promise<llm_reply>();
        auto now = self->clock().now();
        auto key = request->fairness_key;
        auto priority = request->priority;
        st.queue.push(key, priority, now,
                      pending_request{st.next_id++, std::move(request), promise, requester});
        pump(self);
        if (!st.queue.empty())
          schedule_sweep(self, *st.queue.oldest());
        return promise;
      },
      [self](http_done_atom, uint64_t id, llm_outcome& outcome) {
        auto& st = self->state;
        auto it = st.running.find(id);
        if (it == st.running.end())
          return;
        auto run = std::move(it->second);
        st.running.erase(it);
        if (st.settings.metrics)
          st.settings.metrics->request_seconds.observe(self->clock().now() - run.started);
        if (!run.abandoned) {
          if (outcome.ok) {
            outcome.reply.backend = st.settings.name;
            run.promise.deliver(std::move(outcome.reply));
          } else {
            run.promise.deliver(to_caf_error(outcome.error, st.settings.name));
          }
        }
        pump(self);
      },
      [self](sweep_atom, uint64_t) {
        auto& st = self->state;
        st.sweep_pending = false;
        auto now = self->clock().now();
        st.queue.expire(now - st.settings.queue_wait, [&](pending_request& p) {
          p.promise.deliver(to_caf_error(
              {errc::queue_full,
               fmt::format("waited {} ms for a free slot on the backend {} (the wait budget); "
                           "the local LLMs are saturated",
                           st.settings.queue_wait.count(), st.settings.name),
               true},
              st.settings.name));
        });
        report_queue(self);
        if (!st.queue.empty())
          schedule_sweep(self, *st.queue.oldest());
      },
  };
}

} // namespace

backend_actor spawn_backend(caf::actor_system& sys, backend_settings settings,
                            std::shared_ptr<llm_client> client) {
  return sys.spawn(backend, std::move(settings), std::move(client));
}

backend_spec make_backend_spec(backend_settings settings, std::shared_ptr<llm_client> client) {
  auto name = settings.name;
  return {std::move(name),
          [settings = std::move(settings), client = std::move(client)](caf::actor_system& sys) {
            return spawn_backend(sys, settings, client);
          }};
}

} // namespace offload
