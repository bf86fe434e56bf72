// A backend actor owns one LLM endpoint: it admits at most `max_concurrency` exchanges at once,
// queues the rest in arrival order, and hands each admitted request to its llm_client, whose
// completion comes back as an (http_done) message. A requester that dies (task timed out,
// batch cancelled) is noticed through a monitor: its queued request is dropped and its running
// exchange aborted, so no slot is ever spent on an answer nobody will read.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

#include <deque>
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
  bool abandoned = false; // the requester is gone; the slot frees when the abort completes
};

struct backend_state {
  backend_settings settings;
  std::shared_ptr<llm_client> client;
  // Requests waiting for a slot, oldest first.
  std::deque<pending_request> queue;
  // Exchanges holding a slot, by id.
  std::unordered_map<uint64_t, running_exchange> running;
  uint64_t next_id = 1;

  static constexpr const char* name = "backend";
};

using backend_pointer = backend_actor::stateful_pointer<backend_state>;

void pump(backend_pointer self) {
  auto& st = self->state;
  while (st.running.size() < st.settings.max_concurrency && !st.queue.empty()) {
    auto next = std::move(st.queue.front());
    st.queue.pop_front();
    auto handle = caf::actor_cast<backend_actor>(self);
    auto id = next.id;
    // The callback runs on an I/O thread: it only posts a message back to this actor.
    auto exchange = st.client->start(next.request, [handle, id](llm_outcome outcome) {
      caf::anon_send(handle, http_done_atom_v, id, std::move(outcome));
    });
    st.running.emplace(
        id, running_exchange{std::move(next.promise), next.requester, std::move(exchange), false});
  }
}

void drop_requests_of(backend_pointer self, const caf::actor_addr& requester) {
  auto& st = self->state;
  std::erase_if(st.queue, [&](const pending_request& p) { return p.requester == requester; });
  for (auto& [id, run] : st.running) {
    if (run.requester == requester && !run.abandoned) {
      run.abandoned = true;
      if (run.exchange)
        run.exchange->cancel();
    }
  }
}

backend_actor::behavior_type backend(backend_pointer self, backend_settings settings,
                                     std::shared_ptr<llm_client> client) {
  self->state.settings = std::move(settings);
  self->state.client = std::move(client);
  if (self->state.settings.max_concurrency == 0)
    self->state.settings.max_concurrency = 1;
  self->set_down_handler([self](caf::down_msg& msg) { drop_requests_of(self, msg.source); });
  return {
      [self](generate_atom, llm_request_ptr& request) -> caf::result<llm_reply> {
        auto& st = self->state;
        auto requester = caf::actor_cast<caf::actor_addr>(self->current_sender());
        if (requester)
          self->monitor(requester);
        auto promise = self->make_response_promise<llm_reply>();
        st.queue.push_back(pending_request{st.next_id++, std::move(request), promise, requester});
        pump(self);
        return promise;
      },
      [self](http_done_atom, uint64_t id, llm_outcome& outcome) {
        auto& st = self->state;
        auto it = st.running.find(id);
        if (it == st.running.end())
          return;
        auto run = std::move(it->second);
        st.running.erase(it);
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
  };
}

} // namespace

backend_actor spawn_backend(caf::actor_system& sys, backend_settings settings,
                            std::shared_ptr<llm_client> client) {
  return sys.spawn(backend, std::move(settings), std::move(client));
}

} // namespace offload
