// The router supervises the backends and picks one for each task. It spawns every backend from
// its spec and monitors it; a backend that dies is restarted at once (its requesters were already
// answered with backend_unavailable, or notice through their own monitor), so a crash costs the
// tasks on it one retry, not their results. For now it rotates over the backends, steering a
// retry away from the backend that just failed it; routing by model, health and load builds on
// this same interface.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace offload {

namespace {

struct supervised_backend {
  backend_spec spec;
  backend_actor handle;
  uint64_t restarts = 0;
};

struct router_state {
  // Every configured backend, in configuration order.
  std::vector<supervised_backend> backends;
  // Index of the backend that gets the next request.
  size_t next = 0;
  // Shutting down: waiting for `alive` backends to stop, then quitting with `exit_reason`.
  bool stopping = false;
  size_t alive = 0;
  caf::error exit_reason;

  static constexpr const char* name = "router";
};

using router_pointer = router_actor::stateful_pointer<router_state>;

void start_backend(router_pointer self, supervised_backend& entry) {
  entry.handle = entry.spec.spawn(self->home_system());
  self->monitor(entry.handle);
}

router_actor::behavior_type router(router_pointer self, std::vector<backend_spec> specs) {
  for (auto& spec : specs)
    self->state.backends.push_back(supervised_backend{std::move(spec), {}, 0});
  for (auto& entry : self->state.backends)
    start_backend(self, entry);
  // Shutdown: stop the backends and quit once all are gone, so that whoever waits for the router
  // knows no backend still holds a connection.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    if (st.stopping)
      return;
    st.stopping = true;
    st.exit_reason = msg.reason;
    st.alive = st.backends.size();
    for (auto& entry : st.backends)
      self->send_exit(entry.handle, msg.reason);
    if (st.alive == 0)
      self->quit(msg.reason);
  });
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    if (st.stopping) {
      if (--st.alive == 0)
        self->quit(st.exit_reason);
      return;
    }
    for (auto& entry : st.backends) {
      if (entry.handle.address() != msg.source)
        continue;
      ++entry.restarts;
      spdlog::warn("backend {} stopped ({}); restarting it (restart #{})", entry.spec.name,
                   caf::to_string(msg.reason), entry.restarts);
      start_backend(self, entry);
      return;
    }
  });
  return {
      [self](route_atom, const std::string& model, const route_hint& hint) -> caf::result<route> {
        auto& st = self->state;
        if (st.backends.empty())
          return to_caf_error({errc::no_backend,
                               "no LLM backend is configured; start offload with --backend",
                               false});
        // Round-robin, skipping the backend that just failed this task when there is another.
        auto n = st.backends.size();
        for (size_t tried = 0; tried < n; ++tried) {
          auto& entry = st.backends[st.next++ % n];
          if (n > 1 && !hint.avoid_backend.empty() && entry.spec.name == hint.avoid_backend)
            continue;
          return route{entry.handle, entry.spec.name};
        }
        auto& entry = st.backends[st.next++ % n];
        return route{entry.handle, entry.spec.name};
      },
  };
}

} // namespace

router_actor spawn_router(caf::actor_system& sys, std::vector<backend_spec> backends) {
  return sys.spawn(router, std::move(backends));
}

} // namespace offload
