// A backend actor owns one LLM endpoint: it admits at most `max_concurrency` exchanges at once
// and hands each admitted request to its llm_client, whose completion comes back as an
// (http_done) message. Requests that find every slot busy wait in a fair_queue (round-robin per
// session, interactive first, aging), bounded in length and in waiting time: a request that
// cannot be served soon fails fast with queue_full instead of hanging. A requester that dies (task
// timed out, batch cancelled) is noticed through a monitor: its queued request is dropped and its
// running exchange aborted, so no slot is ever spent on an answer nobody will read. If the actor
// itself fails, every requester is answered with backend_unavailable before it goes, so that tasks
// can fail over instead of waiting for their deadline. With chaos on, it crashes on purpose as it
// accepts a request now and then (chaos.crash_backend), so that exactly this is exercised.
//
// The backend also owns its endpoint's management requests (endpoint_admin): health probes and
// model lists for the router, loaded models, preloads and pulls for the model tools. They do not
// take slots; a pull's progress is relayed to its requester, and a requester that dies has its
// request aborted, as for completions.

#include "actors/fair_queue.hpp"
#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
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

struct running_admin {
  caf::typed_response_promise<admin_result> promise;
  caf::actor_addr requester; // set when the requester is watched (model tools, not the router)
  std::shared_ptr<llm_exchange> exchange;
};

struct backend_state {
  backend_settings settings;
  std::shared_ptr<llm_client> client;
  std::shared_ptr<endpoint_admin> admin; // may be null
  // Management requests on their way, by id.
  std::unordered_map<uint64_t, running_admin> admin_running;
  uint64_t next_admin_id = 1;
  // Requests waiting for a slot.
  fair_queue<pending_request> queue;
  // Exchanges holding a slot, by id.
  std::unordered_map<uint64_t, running_exchange> running;
  uint64_t next_id = 1;
  // A sweep tick is scheduled (it reschedules itself while requests wait).
  bool sweep_pending = false;

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
  self->delayed_send(self, std::max(due, decltype(due){std::chrono::milliseconds{1}}),
                     sweep_atom_v);
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
  for (auto& [id, run] : st.admin_running)
    if (run.requester == requester && run.exchange)
      run.exchange->cancel();
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
  for (auto& [id, run] : st.admin_running) {
    run.promise.deliver(error);
    if (run.exchange)
      run.exchange->cancel();
  }
  st.admin_running.clear();
}

// Starts a management request: `start(id, done)` hands it to the endpoint_admin, whose completion
// comes back as (admin_done, id, result). A watched requester that dies has it aborted.
template <class Start>
caf::result<admin_result> start_admin(backend_pointer self, bool watch_requester, Start start) {
  auto& st = self->state;
  auto id = st.next_admin_id++;
  caf::actor_addr requester;
  if (watch_requester) {
    requester = caf::actor_cast<caf::actor_addr>(self->current_sender());
    if (requester)
      self->monitor(requester);
  }
  auto promise = self->make_response_promise<admin_result>();
  st.admin_running.emplace(id, running_admin{promise, requester, nullptr});
  auto handle = caf::actor_cast<backend_actor>(self);
  // The callback runs on an I/O thread (or at once, in tests): it only posts a message back.
  auto exchange = start(id, [handle, id](admin_result result) {
    caf::anon_send(handle, admin_done_atom_v, id, std::move(result));
  });
  if (auto it = st.admin_running.find(id); it != st.admin_running.end())
    it->second.exchange = std::move(exchange);
  return promise;
}

admin_result unsupported(const backend_pointer self, std::string_view what) {
  admin_result result;
  result.error = {errc::invalid_argument,
                  fmt::format("the backend {} cannot {}", self->state.settings.name, what), false};
  return result;
}

// Chaos: the actor crashes as it accepts `request`, as it would on a bug: the exception handler
// answers every other requester with backend_unavailable, the router restarts the backend, and
// the requester of `request` notices through its monitor (all of them retry).
[[noreturn]] void crash_on_purpose(backend_pointer self, const llm_request& request) {
  auto& st = self->state;
  spdlog::warn("chaos: crashed backend {} as it accepted the request of task {} (attempt {}); "
               "the router restarts it",
               st.settings.name, request.trace_id, request.attempt);
  if (st.settings.chaos_crashes)
    st.settings.chaos_crashes->inc();
  throw std::runtime_error(fmt::format("chaos: crashed on purpose (chaos.crash_backend is {})",
                                       st.settings.chaos.crash_backend));
}

backend_actor::behavior_type backend(backend_pointer self, backend_settings settings,
                                     std::shared_ptr<llm_client> client,
                                     std::shared_ptr<endpoint_admin> admin) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.client = std::move(client);
  st.admin = std::move(admin);
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
    auto what = describe_exception(eptr);
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
        if (chaos::strikes(st.settings.chaos, chaos::fault::crash_backend, request->trace_id,
                           request->attempt))
          crash_on_purpose(self, *request);
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
      [self](sweep_atom) {
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
      [self](health_probe_atom) -> caf::result<admin_result> {
        auto& admin = self->state.admin;
        if (!admin) {
          admin_result assumed; // nothing to probe with: taken to be up
          assumed.ok = true;
          assumed.health = probe_status::up;
          return assumed;
        }
        return start_admin(self, false,
                           [&](uint64_t, auto done) { return admin->probe(std::move(done)); });
      },
      [self](list_models_atom) -> caf::result<admin_result> {
        auto& admin = self->state.admin;
        if (!admin)
          return unsupported(self, "list its models");
        return start_admin(
            self, false, [&](uint64_t, auto done) { return admin->list_models(std::move(done)); });
      },
      [self](loaded_models_atom) -> caf::result<admin_result> {
        auto& admin = self->state.admin;
        if (!admin)
          return unsupported(self, "list its loaded models");
        return start_admin(
            self, true, [&](uint64_t, auto done) { return admin->loaded_models(std::move(done)); });
      },
      [self](preload_atom, std::string& model,
             std::string& keep_alive) -> caf::result<admin_result> {
        auto& admin = self->state.admin;
        if (!admin)
          return unsupported(self, "preload models");
        return start_admin(self, true, [&](uint64_t, auto done) {
          return admin->preload(std::move(model), std::move(keep_alive), std::move(done));
        });
      },
      [self](pull_model_atom, std::string& model) -> caf::result<admin_result> {
        auto& admin = self->state.admin;
        if (!admin)
          return unsupported(self, "pull models");
        auto handle = caf::actor_cast<backend_actor>(self);
        return start_admin(self, true, [&](uint64_t id, auto done) {
          return admin->pull(
              std::move(model),
              [handle, id](pull_update update) {
                caf::anon_send(handle, admin_step_atom_v, id, std::move(update));
              },
              std::move(done));
        });
      },
      [self](admin_done_atom, uint64_t id, admin_result& result) {
        auto& st = self->state;
        auto it = st.admin_running.find(id);
        if (it == st.admin_running.end())
          return;
        auto run = std::move(it->second);
        st.admin_running.erase(it);
        run.promise.deliver(std::move(result));
      },
      [self](admin_step_atom, uint64_t id, pull_update& update) {
        auto& st = self->state;
        auto it = st.admin_running.find(id);
        if (it == st.admin_running.end() || !it->second.requester)
          return;
        auto requester = caf::actor_cast<model_tool_actor>(it->second.requester);
        self->send(requester, pull_progress_atom_v, std::move(update));
      },
  };
}

} // namespace

backend_actor spawn_backend(caf::actor_system& sys, backend_settings settings,
                            std::shared_ptr<llm_client> client,
                            std::shared_ptr<endpoint_admin> admin) {
  return sys.spawn(backend, std::move(settings), std::move(client), std::move(admin));
}

backend_spec make_backend_spec(backend_settings settings, std::shared_ptr<llm_client> client,
                               std::shared_ptr<endpoint_admin> admin) {
  backend_spec spec;
  spec.name = settings.name;
  spec.max_concurrency = settings.max_concurrency;
  spec.metrics = settings.metrics;
  spec.spawn = [settings = std::move(settings), client = std::move(client),
                admin = std::move(admin)](caf::actor_system& sys) {
    return spawn_backend(sys, settings, client, admin);
  };
  return spec;
}

} // namespace offload
