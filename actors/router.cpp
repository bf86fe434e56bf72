// The router picks a backend for each generation request and delegates it there, so the backend
// answers the task directly. For now it rotates over the configured backends; routing by model,
// health and load builds on this same interface.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>

namespace offload {

namespace {

struct router_state {
  // Every configured backend, in configuration order.
  std::vector<backend_actor> backends;
  // Index of the backend that gets the next request.
  size_t next = 0;

  static constexpr const char* name = "router";
};

router_actor::behavior_type router(router_actor::stateful_pointer<router_state> self,
                                   std::vector<backend_actor> backends) {
  self->state.backends = std::move(backends);
  return {
      [self](generate_atom, llm_request_ptr& request) -> caf::delegated<llm_reply> {
        auto& st = self->state;
        if (st.backends.empty()) {
          auto rp = self->make_response_promise<llm_reply>();
          rp.deliver(
              to_caf_error({errc::no_backend,
                            "no LLM backend is configured; start offload with --backend", false}));
          return {};
        }
        auto& backend = st.backends[st.next++ % st.backends.size()];
        return self->delegate(backend, generate_atom_v, std::move(request));
      },
  };
}

} // namespace

router_actor spawn_router(caf::actor_system& sys, std::vector<backend_actor> backends) {
  return sys.spawn(router, std::move(backends));
}

} // namespace offload
