// The router supervises the backends and picks one for each task attempt. It spawns every
// backend from its spec and monitors it; a backend that dies is restarted at once (its requesters
// were already answered with backend_unavailable, or notice through their own monitor), so a
// crash costs the tasks on it one retry, not their results.
//
// Routing: a task's model (an alias or an empty name resolved first) is looked up in an index of
// which backends serve which model, built from the configuration and from model discovery
// (router_health.cpp). Among those backends the healthy ones (breaker closed, last probe up) are
// preferred, then those loading or on trial, and only when nothing else serves the model the
// unhealthy ones: the only backend of a model is never shut off entirely. Within the best group
// the strategy picks (least loaded, round-robin or ordered), steering a retry away from the
// backend that just failed it. Each task reports how its attempt ended, which keeps the load
// counts and feeds the backend's circuit breaker. A model nobody is known to have triggers a
// model refresh first; then the task fails with model_not_found listing what is available.

#include "actors/router_state.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace offload {

namespace {

void start_backend(router_pointer self, routed_backend& entry) {
  entry.handle = entry.spec.spawn(self->home_system());
  self->monitor(entry.handle);
}

std::string resolve_model(const router_state& st, const std::string& requested) {
  const auto& name = requested.empty() ? st.settings.default_model : requested;
  if (auto it = st.settings.aliases.find(name); it != st.settings.aliases.end())
    return it->second;
  return name;
}

// Ollama names without a tag mean ":latest", so both spellings find the same model.
const std::vector<uint32_t>* known_servers(const router_state& st, const std::string& model) {
  if (auto it = st.serving.find(model); it != st.serving.end())
    return &it->second;
  if (model.find(':') == std::string::npos)
    if (auto it = st.serving.find(model + ":latest"); it != st.serving.end())
      return &it->second;
  return nullptr;
}

// Backends whose models are not known (discovery off or failing, nothing configured), which are
// tried for models no other backend is known to have. One whose first discovery is still on its
// way is not one of them: the answer is awaited instead. Fills (and returns) a reused vector.
const std::vector<uint32_t>& unknown_servers(router_pointer self) {
  auto& st = self->state;
  st.unknown.clear();
  for (uint32_t id = 0; id < st.backends.size(); ++id) {
    const auto& b = st.backends[id];
    if (b.models_known())
      continue;
    if (discovers(self, id) && b.discovery_pending)
      continue;
    st.unknown.push_back(id);
  }
  return st.unknown;
}

// The backends that may serve `model`: those known to, else those whose models are unknown.
const std::vector<uint32_t>& candidates_for(router_pointer self, const std::string& model) {
  if (auto known = known_servers(self->state, model))
    return *known;
  return unknown_servers(self);
}

// 0: healthy; 1: usable but second choice (loading, or on trial after a cool-down); 2: open
// breaker or down, used only when nothing better serves the model.
int rank_of(const routed_backend& b) {
  if (b.breaker.state() == breaker_state::open || b.health == probe_status::down)
    return 2;
  if (b.breaker.state() == breaker_state::half_open || b.health == probe_status::loading)
    return 1;
  return 0;
}

size_t capacity_of(const routed_backend& b) {
  return std::max<size_t>(b.spec.max_concurrency, 1);
}

uint32_t pick(router_pointer self, const std::vector<uint32_t>& group) {
  auto& st = self->state;
  auto n = group.size();
  switch (st.settings.strategy) {
  case routing_strategy::ordered:
    return group.front();
  case routing_strategy::round_robin:
    return group[st.next++ % n];
  case routing_strategy::least_loaded:
    break;
  }
  // Fewest attempts in flight relative to the backend's capacity; ties rotate, so that idle
  // backends share the work.
  auto start = st.next++;
  uint32_t best = group[start % n];
  for (size_t i = 1; i < n; ++i) {
    auto id = group[(start + i) % n];
    const auto& a = st.backends[id];
    const auto& b = st.backends[best];
    if (a.outstanding * capacity_of(b) < b.outstanding * capacity_of(a))
      best = id;
  }
  return best;
}

// Runs for every attempt, so it allocates nothing once warm: the best-ranked candidates go into
// a vector the router keeps.
route choose(router_pointer self, const std::vector<uint32_t>& candidates, const route_hint& hint,
             const std::string& model) {
  auto& st = self->state;
  // The backend that just failed the task is left out when another one serves the model.
  bool drop_avoided = false;
  if (candidates.size() > 1 && !hint.avoid_backend.empty())
    for (auto id : candidates)
      drop_avoided = drop_avoided || st.backends[id].spec.name == hint.avoid_backend;
  auto eligible = [&](uint32_t id) {
    return !drop_avoided || st.backends[id].spec.name != hint.avoid_backend;
  };
  int best_rank = 3;
  for (auto id : candidates)
    if (eligible(id))
      best_rank = std::min(best_rank, rank_of(st.backends[id]));
  st.group.clear();
  for (auto id : candidates)
    if (eligible(id) && rank_of(st.backends[id]) == best_rank)
      st.group.push_back(id);
  auto id = pick(self, st.group);
  auto& chosen = st.backends[id];
  if (best_rank == 2 && !chosen.last_resort_logged) {
    chosen.last_resort_logged = true;
    spdlog::warn("backend {} is {} but no healthier backend serves {}; its tasks still go to it",
                 chosen.spec.name,
                 chosen.breaker.state() == breaker_state::open ? "avoided (circuit breaker open)"
                                                               : "down",
                 model);
  }
  ++chosen.outstanding;
  return route{chosen.handle, chosen.spec.name, model, id};
}

// The models and aliases to list when a model is not found.
std::string available_models(const router_state& st) {
  std::set<std::string> names;
  std::string unknown;
  for (const auto& b : st.backends) {
    names.insert(b.spec.models.begin(), b.spec.models.end());
    names.insert(b.discovered.begin(), b.discovered.end());
    if (!b.models_known())
      unknown += fmt::format("{}{}", unknown.empty() ? "" : ", ", b.spec.name);
  }
  std::string out = names.empty() ? std::string{"none"} : std::string{};
  for (const auto& name : names)
    out += fmt::format("{}{}", out.empty() ? "" : ", ", name);
  if (!st.settings.aliases.empty()) {
    out += "; aliases: ";
    bool first = true;
    for (const auto& [alias, target] : st.settings.aliases) {
      out += fmt::format("{}{} -> {}", first ? "" : ", ", alias, target);
      first = false;
    }
  }
  if (!unknown.empty())
    out += fmt::format(" (not counting {}, which did not report its models)", unknown);
  return out;
}

caf::error model_not_found(const router_state& st, const std::string& requested,
                           const std::string& model) {
  auto named = requested == model || requested.empty()
                   ? fmt::format("\"{}\"", model)
                   : fmt::format("\"{}\" (alias of \"{}\")", requested, model);
  return to_caf_error({errc::model_not_found,
                       fmt::format("no backend serves the model {}; available models: {}. Name "
                                   "one of these, or download it with pull_model",
                                   named, available_models(st)),
                       false});
}

// A model nobody is known to have: worth waiting for a discovery that is on its way, or for a
// fresh one if the last was not too recent (the model may just have been pulled).
bool awaits_discovery(router_pointer self) {
  auto& st = self->state;
  bool waiting = false;
  auto now = self->clock().now();
  for (uint32_t id = 0; id < st.backends.size(); ++id) {
    if (!discovers(self, id))
      continue;
    auto& b = st.backends[id];
    if (!b.discovery_pending && (b.last_discovery == caf::actor_clock::time_point{} ||
                                 now - b.last_discovery >= st.settings.rediscover_min_interval))
      discover_backend(self, id);
    waiting = waiting || b.discovery_pending;
  }
  return waiting;
}

void record_attempt(router_pointer self, const attempt_report& report) {
  auto& st = self->state;
  if (report.backend_id >= st.backends.size())
    return;
  auto& b = st.backends[report.backend_id];
  if (b.outstanding > 0)
    --b.outstanding;
  bool failed = counts_against_backend(report.outcome);
  if (report.outcome == errc::model_not_found && discovers(self, report.backend_id) &&
      self->clock().now() - b.last_discovery >= st.settings.rediscover_min_interval)
    discover_backend(self, report.backend_id); // it lost a model we thought it had
  if (!failed && report.outcome != errc::no_error)
    return; // says nothing about the backend
  if (failed) {
    ++b.failures;
  } else {
    ++b.successes;
    if (b.health != probe_status::up)
      set_health(self, report.backend_id, probe_status::up, "it answered a task");
  }
  if (auto change = b.breaker.record(self->clock().now(), failed))
    on_breaker_change(self, report.backend_id, *change);
}

router_status make_status(const router_state& st) {
  router_status out;
  out.default_model = st.settings.default_model;
  out.aliases = st.settings.aliases;
  for (const auto& b : st.backends) {
    backend_status s;
    s.name = b.spec.name;
    s.kind = b.spec.kind;
    s.handle = b.handle;
    s.breaker = b.breaker.state();
    s.health = b.health;
    s.models_known = b.models_known();
    std::set<std::string> models{b.spec.models.begin(), b.spec.models.end()};
    models.insert(b.discovered.begin(), b.discovered.end());
    s.models.assign(models.begin(), models.end());
    s.outstanding = b.outstanding;
    s.restarts = b.restarts;
    s.breaker_opened = b.breaker.times_opened();
    s.successes = b.successes;
    s.failures = b.failures;
    out.backends.push_back(std::move(s));
  }
  return out;
}

router_actor::behavior_type router(router_pointer self, std::vector<backend_spec> specs,
                                   router_settings settings) {
  auto& st = self->state;
  st.settings = std::move(settings);
  for (auto& spec : specs) {
    routed_backend entry;
    entry.spec = std::move(spec);
    entry.breaker = circuit_breaker{st.settings.breaker};
    st.backends.push_back(std::move(entry));
  }
  for (auto& entry : st.backends)
    start_backend(self, entry);
  rebuild_model_index(self);
  start_health_loops(self);
  // Shutdown: stop the backends and quit once all are gone, so that whoever waits for the router
  // knows no backend still holds a connection.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    if (st.stopping)
      return;
    st.stopping = true;
    st.exit_reason = msg.reason;
    for (auto& p : st.pending)
      p.promise.deliver(
          to_caf_error({errc::cancelled, "offload is shutting down", false}, std::string{}));
    st.pending.clear();
    for (auto& waiter : st.ready_waiters)
      waiter.deliver(make_status(st));
    st.ready_waiters.clear();
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
      if (entry.spec.metrics)
        entry.spec.metrics->restarts.inc();
      spdlog::warn("backend {} stopped ({}); restarting it (restart #{})", entry.spec.name,
                   caf::to_string(msg.reason), entry.restarts);
      start_backend(self, entry);
      return;
    }
  });
  return {
      [self](route_atom, const std::string& requested,
             const route_hint& hint) -> caf::result<route> {
        auto& st = self->state;
        if (st.backends.empty())
          return to_caf_error({errc::no_backend,
                               "no LLM backend is configured; start offload with --backend",
                               false});
        auto model = resolve_model(st, requested);
        const auto& candidates = candidates_for(self, model);
        if (!candidates.empty())
          return choose(self, candidates, hint, model);
        if (!awaits_discovery(self))
          return model_not_found(st, requested, model);
        auto promise = self->make_response_promise<route>();
        st.pending.push_back(pending_route{requested, model, hint, promise});
        return promise;
      },
      [self](route_done_atom, const attempt_report& report) { record_attempt(self, report); },
      [self](router_status_atom) { return make_status(self->state); },
      [self](router_ready_atom) -> caf::result<router_status> {
        auto& st = self->state;
        if (st.first_round_done || st.stopping)
          return make_status(st);
        auto promise = self->make_response_promise<router_status>();
        st.ready_waiters.push_back(promise);
        return promise;
      },
      [self](rediscover_atom, const std::string& name) {
        auto& st = self->state;
        for (uint32_t id = 0; id < st.backends.size(); ++id)
          if (name.empty() || st.backends[id].spec.name == name)
            discover_backend(self, id);
      },
      [self](probe_tick_atom, uint64_t generation) { handle_probe_tick(self, generation); },
      [self](discover_tick_atom, uint64_t generation) { handle_discover_tick(self, generation); },
      [self](cooldown_atom, uint32_t id, uint64_t epoch) { handle_cooldown(self, id, epoch); },
  };
}

} // namespace

void rebuild_model_index(router_pointer self) {
  auto& st = self->state;
  st.serving.clear();
  auto add = [&](const std::string& name, uint32_t id) {
    auto& ids = st.serving[name];
    if (ids.empty() || ids.back() != id)
      ids.push_back(id);
  };
  for (uint32_t id = 0; id < st.backends.size(); ++id) {
    const auto& b = st.backends[id];
    std::set<std::string> names{b.spec.models.begin(), b.spec.models.end()};
    names.insert(b.discovered.begin(), b.discovered.end());
    for (const auto& name : names) {
      add(name, id);
      constexpr std::string_view latest = ":latest";
      if (name.size() > latest.size() &&
          name.compare(name.size() - latest.size(), latest.size(), latest) == 0)
        add(name.substr(0, name.size() - latest.size()), id);
    }
  }
}

void settle_pending_routes(router_pointer self) {
  auto& st = self->state;
  if (st.pending.empty())
    return;
  bool discovering = false;
  for (uint32_t id = 0; id < st.backends.size(); ++id)
    discovering = discovering || (discovers(self, id) && st.backends[id].discovery_pending);
  auto waiting = std::move(st.pending);
  st.pending.clear();
  for (auto& p : waiting) {
    const auto& candidates = candidates_for(self, p.model);
    if (!candidates.empty())
      p.promise.deliver(choose(self, candidates, p.hint, p.model));
    else if (discovering)
      st.pending.push_back(std::move(p));
    else
      p.promise.deliver(model_not_found(st, p.requested, p.model));
  }
}

void check_first_round(router_pointer self) {
  auto& st = self->state;
  if (st.first_round_done)
    return;
  for (const auto& b : st.backends)
    if (!b.first_probe_done || !b.first_discovery_done)
      return;
  st.first_round_done = true;
  auto waiters = std::move(st.ready_waiters);
  st.ready_waiters.clear();
  for (auto& waiter : waiters)
    waiter.deliver(make_status(st));
}

void on_breaker_change(router_pointer self, uint32_t id, breaker_state now) {
  auto& st = self->state;
  auto& b = st.backends[id];
  b.last_resort_logged = false;
  if (b.spec.metrics)
    b.spec.metrics->set_breaker(now == breaker_state::open ? metrics::breaker_position::open
                                : now == breaker_state::half_open
                                    ? metrics::breaker_position::half_open
                                    : metrics::breaker_position::closed);
  switch (now) {
  case breaker_state::open:
    if (b.spec.metrics)
      b.spec.metrics->breaker_opened.inc();
    spdlog::warn("backend {}: circuit breaker opened ({}); avoiding it for {} ms", b.spec.name,
                 b.breaker.reason(), st.settings.breaker.cooldown.count());
    self->delayed_send(self, st.settings.breaker.cooldown, cooldown_atom_v, id, b.breaker.epoch());
    break;
  case breaker_state::half_open:
    spdlog::info("backend {}: circuit breaker half-open; probing it", b.spec.name);
    probe_backend(self, id);
    break;
  case breaker_state::closed:
    spdlog::info("backend {}: circuit breaker closed; in use again", b.spec.name);
    break;
  }
}

bool counts_against_backend(errc code) {
  switch (code) {
  case errc::backend_unreachable:
  case errc::backend_http_error:
  case errc::connection_dropped:
  case errc::malformed_stream:
  case errc::timeout:
  case errc::backend_overloaded:
  case errc::backend_unavailable:
    return true;
  default:
    return false;
  }
}

std::optional<routing_strategy> parse_routing_strategy(std::string_view name) {
  if (name == "least_loaded")
    return routing_strategy::least_loaded;
  if (name == "round_robin")
    return routing_strategy::round_robin;
  if (name == "ordered")
    return routing_strategy::ordered;
  return std::nullopt;
}

std::string_view to_string(routing_strategy strategy) {
  switch (strategy) {
  case routing_strategy::least_loaded:
    return "least_loaded";
  case routing_strategy::round_robin:
    return "round_robin";
  case routing_strategy::ordered:
    return "ordered";
  }
  return "unknown";
}

router_actor spawn_router(caf::actor_system& sys, std::vector<backend_spec> backends,
                          router_settings settings) {
  return sys.spawn(router, std::move(backends), std::move(settings));
}

} // namespace offload
