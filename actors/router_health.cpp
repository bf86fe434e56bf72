// What the router learns from the backends besides task outcomes: periodic health probes, model
// discovery (at start, periodically, when a task names a model nobody is known to have, and on
// request), and the cool-down timers of the circuit breakers. Every state change is logged once,
// when it happens, never per request.

#include "actors/router_state.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace offload {

namespace {

// Lists at most this many model names in one log line.
constexpr size_t max_logged_models = 20;

std::string join_models(const std::set<std::string>& names) {
  std::string out;
  size_t shown = 0;
  for (const auto& name : names) {
    if (shown == max_logged_models) {
      out += fmt::format(", ... ({} more)", names.size() - shown);
      break;
    }
    out += fmt::format("{}{}", shown == 0 ? "" : ", ", name);
    ++shown;
  }
  return out.empty() ? std::string{"none"} : out;
}

void on_probe(router_pointer self, uint32_t id, const admin_result& result) {
  auto& st = self->state;
  if (id >= st.backends.size())
    return;
  auto& b = st.backends[id];
  b.probe_pending = false;
  auto health = result.ok ? result.health : probe_status::down;
  set_health(self, id, health, result.ok ? result.detail : result.error.message);
  // A server still loading its model has not shown it can answer: the trial waits for more.
  if (health != probe_status::loading)
    if (auto change = b.breaker.probe_result(health == probe_status::up))
      on_breaker_change(self, id, *change);
  if (!b.first_probe_done) {
    b.first_probe_done = true;
    check_first_round(self);
  }
}

void on_models(router_pointer self, uint32_t id, const admin_result& result) {
  auto& st = self->state;
  if (id >= st.backends.size())
    return;
  auto& b = st.backends[id];
  b.discovery_pending = false;
  if (result.ok) {
    std::set<std::string> names{result.models.begin(), result.models.end()};
    if (!b.discovered_once || names != b.discovered) {
      spdlog::info("backend {} has {} model(s): {}", b.spec.name, names.size(), join_models(names));
      b.discovered = std::move(names);
      b.discovered_once = true;
      rebuild_model_index(self);
    }
    b.discovery_failing = false;
  } else if (!b.discovery_failing) {
    b.discovery_failing = true;
    spdlog::warn("backend {}: could not list its models ({}); {}", b.spec.name,
                 result.error.message,
                 b.models_known() ? "keeping the models known so far"
                                  : "it is tried for models no other backend is known to have");
  }
  settle_pending_routes(self);
  if (!b.first_discovery_done) {
    b.first_discovery_done = true;
    check_first_round(self);
  }
}

} // namespace

bool discovers(router_pointer self, uint32_t id) {
  auto& st = self->state;
  return st.settings.discovery_interval.count() > 0 && st.backends[id].spec.discover;
}

void start_health_loops(router_pointer self) {
  auto& st = self->state;
  // What will not run is done already; the rest is marked as its first answer comes.
  for (uint32_t id = 0; id < st.backends.size(); ++id) {
    st.backends[id].first_probe_done = st.settings.health_interval.count() == 0;
    st.backends[id].first_discovery_done = !discovers(self, id);
  }
  check_first_round(self);
  if (st.settings.health_interval.count() > 0) {
    for (uint32_t id = 0; id < st.backends.size(); ++id)
      probe_backend(self, id);
    self->delayed_send(self, st.settings.health_interval, probe_tick_atom_v, ++st.probe_generation);
  }
  if (st.settings.discovery_interval.count() > 0) {
    for (uint32_t id = 0; id < st.backends.size(); ++id)
      discover_backend(self, id);
    self->delayed_send(self, st.settings.discovery_interval, discover_tick_atom_v,
                       ++st.discover_generation);
  }
}

void handle_probe_tick(router_pointer self, uint64_t generation) {
  auto& st = self->state;
  if (generation != st.probe_generation || st.stopping)
    return;
  for (uint32_t id = 0; id < st.backends.size(); ++id)
    probe_backend(self, id);
  self->delayed_send(self, st.settings.health_interval, probe_tick_atom_v, generation);
}

void handle_discover_tick(router_pointer self, uint64_t generation) {
  auto& st = self->state;
  if (generation != st.discover_generation || st.stopping)
    return;
  for (uint32_t id = 0; id < st.backends.size(); ++id)
    discover_backend(self, id);
  self->delayed_send(self, st.settings.discovery_interval, discover_tick_atom_v, generation);
}

void handle_cooldown(router_pointer self, uint32_t id, uint64_t epoch) {
  auto& st = self->state;
  if (id >= st.backends.size() || st.stopping)
    return;
  auto& breaker = st.backends[id].breaker;
  if (breaker.epoch() == epoch && breaker.end_cooldown())
    on_breaker_change(self, id, breaker_state::half_open);
}

void probe_backend(router_pointer self, uint32_t id) {
  auto& st = self->state;
  auto& b = st.backends[id];
  if (b.probe_pending || st.stopping)
    return;
  b.probe_pending = true;
  self->request(b.handle, st.settings.probe_timeout, health_probe_atom_v)
      .then([self, id](admin_result& result) { on_probe(self, id, result); },
            [self, id](caf::error& err) {
              admin_result failed;
              failed.error = from_caf_error(err);
              if (err == caf::sec::request_timeout)
                failed.error.message = fmt::format("the health probe got no answer within {} ms",
                                                   self->state.settings.probe_timeout.count());
              on_probe(self, id, failed);
            });
}

void discover_backend(router_pointer self, uint32_t id) {
  auto& st = self->state;
  auto& b = st.backends[id];
  if (!discovers(self, id) || b.discovery_pending || st.stopping)
    return;
  b.discovery_pending = true;
  b.last_discovery = self->clock().now();
  self->request(b.handle, st.settings.probe_timeout, list_models_atom_v)
      .then([self, id](admin_result& result) { on_models(self, id, result); },
            [self, id](caf::error& err) {
              admin_result failed;
              failed.error = from_caf_error(err);
              if (err == caf::sec::request_timeout)
                failed.error.message = fmt::format("no model list within {} ms",
                                                   self->state.settings.probe_timeout.count());
              on_models(self, id, failed);
            });
}

void set_health(router_pointer self, uint32_t id, probe_status health, const std::string& detail) {
  auto& st = self->state;
  auto& b = st.backends[id];
  bool first = !b.health_known;
  b.health_known = true;
  if (!first && b.health == health)
    return;
  auto was = b.health;
  b.health = health;
  b.last_resort_logged = false;
  if (b.spec.metrics)
    b.spec.metrics->set_health(health == probe_status::up        ? metrics::backend_health::up
                               : health == probe_status::loading ? metrics::backend_health::loading
                                                                 : metrics::backend_health::down);
  auto note = detail.empty() ? std::string{} : fmt::format(" ({})", detail);
  switch (health) {
  case probe_status::up:
    spdlog::info("backend {} is {}{}", b.spec.name, first ? "up" : "up again", note);
    // It may have come back with other models, or not have listed them while it was down.
    if (!first && was == probe_status::down)
      discover_backend(self, id);
    break;
  case probe_status::loading:
    spdlog::info("backend {} is loading its model{}", b.spec.name, note);
    break;
  case probe_status::down:
    spdlog::warn("backend {} is down{}", b.spec.name, note);
    break;
  }
}

} // namespace offload
