#pragma once
// The state of the router actor and the functions its two source files share (router.cpp:
// supervision, routing and attempt reports; router_health.cpp: health probes, model discovery
// and the circuit breakers' timers). Internal to actors/.

#include "actors/circuit_breaker.hpp"
#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>

#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace offload {

struct routed_backend {
  backend_spec spec;
  backend_actor handle;
  uint64_t restarts = 0;
  circuit_breaker breaker;
  // Health as the last probe (or attempt) showed it; `health_known` once a probe answered.
  probe_status health = probe_status::up;
  bool health_known = false;
  bool probe_pending = false;
  // Models it reported (discovery), and whether a discovery ever succeeded.
  std::set<std::string> discovered;
  bool discovered_once = false;
  bool discovery_pending = false;
  bool discovery_failing = false; // logged once per streak of failures
  caf::actor_clock::time_point last_discovery{};
  // The first round (start-up) of its health probe and of its model discovery has answered,
  // failed or timed out, or was never going to run (probes or discovery off).
  bool first_probe_done = false;
  bool first_discovery_done = false;
  // Attempts routed to it that have not reported yet (least-loaded routing).
  size_t outstanding = 0;
  uint64_t successes = 0;
  uint64_t failures = 0;
  // "Only choice for a model, used although unhealthy" was logged since its state last changed.
  bool last_resort_logged = false;

  // Whether the models it serves are known (configured or discovered).
  bool models_known() const { return !spec.models.empty() || discovered_once; }
};

// A route request for a model no backend is known to have, waiting for a model discovery.
struct pending_route {
  std::string requested; // as the task named it (an alias, perhaps)
  std::string model;
  route_hint hint;
  caf::typed_response_promise<route> promise;
};

struct router_state {
  router_settings settings;
  // Every configured backend, in configuration order; its index is its id.
  std::vector<routed_backend> backends;
  // Model name -> the backends known to serve it, in id order.
  std::unordered_map<std::string, std::vector<uint32_t>> serving;
  std::vector<pending_route> pending;
  // Rotates round-robin choices and least-loaded ties.
  size_t next = 0;
  // Scratch space of every route choice, kept to spare the hot path allocations.
  std::vector<uint32_t> unknown;
  std::vector<uint32_t> group;
  // The periodic probe and discovery loops; stale ticks carry an old generation.
  uint64_t probe_generation = 0;
  uint64_t discover_generation = 0;
  // Whether every backend's first probe and discovery are done; who waits for that (rt_ready).
  bool first_round_done = false;
  std::vector<caf::typed_response_promise<router_status>> ready_waiters;
  // Shutting down: waiting for `alive` backends to stop, then quitting with `exit_reason`.
  bool stopping = false;
  size_t alive = 0;
  caf::error exit_reason;

  static constexpr const char* name = "router";
};

using router_pointer = router_actor::stateful_pointer<router_state>;

// -- router.cpp ----------------------------------------------------------------------------------

// Rebuilds the model index after a backend's models changed.
void rebuild_model_index(router_pointer self);
// Answers the route requests that waited for a discovery, now that one finished.
void settle_pending_routes(router_pointer self);
// The breaker of backend `id` changed state: log it once and act (cool-down, probe).
void on_breaker_change(router_pointer self, uint32_t id, breaker_state now);
// Answers those waiting for readiness once every backend's first probe and discovery are done.
void check_first_round(router_pointer self);

// -- router_health.cpp ---------------------------------------------------------------------------

// Starts the probe and discovery loops (when enabled) and the first round of each.
void start_health_loops(router_pointer self);
void handle_probe_tick(router_pointer self, uint64_t generation);
void handle_discover_tick(router_pointer self, uint64_t generation);
void handle_cooldown(router_pointer self, uint32_t id, uint64_t epoch);
// Probes backend `id` now (unless a probe is already on its way).
void probe_backend(router_pointer self, uint32_t id);
// Asks backend `id` for its models now (unless it is already asked or does not discover).
void discover_backend(router_pointer self, uint32_t id);
// Whether discovery is on for backend `id` (configured so, and the router discovers at all).
bool discovers(router_pointer self, uint32_t id);
// Records a change of health seen by an attempt or a probe; logs it once.
void set_health(router_pointer self, uint32_t id, probe_status health, const std::string& detail);

} // namespace offload
