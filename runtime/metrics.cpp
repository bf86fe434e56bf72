#include "runtime/metrics.hpp"

#include "protocol/prometheus.hpp"

#include <fmt/format.h>

#include <iterator>

namespace offload::metrics {

// Label values are configuration text (backend names): escaped as the format requires.
using prometheus::append_family_header;
using prometheus::escape_label_value;

namespace {

constexpr std::array<std::string_view, 2> transport_names = {"stdio", "http"};
// Indexed by backend_health.
constexpr std::array<std::string_view, 4> health_names = {"unknown", "up", "loading", "down"};

} // namespace

void histogram::observe(std::chrono::nanoseconds elapsed) noexcept {
  observe_seconds(std::chrono::duration<double>(elapsed).count());
}

void histogram::observe_seconds(double seconds) noexcept {
  if (!(seconds >= 0))
    seconds = 0; // a clock step backwards, or NaN: count it in the lowest bucket
  size_t slot = 0;
  while (slot < bounds.size() && seconds > bounds[slot])
    ++slot;
  buckets_[slot].fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

histogram::reading histogram::read() const noexcept {
  reading out;
  uint64_t running = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out.cumulative[i] = running;
  }
  out.sum_seconds = static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
  return out;
}

registry::registry(const std::vector<std::string>& backends) {
  for (const auto& name : backends) {
    auto entry = std::make_unique<backend_metrics>();
    entry->name = name;
    backends_.push_back(std::move(entry));
  }
}

gauge& registry::sessions(transport_kind transport) noexcept {
  return sessions_[static_cast<size_t>(transport)];
}

counter& registry::tasks(errc outcome) noexcept {
  return tasks_[static_cast<size_t>(outcome)];
}

backend_metrics* registry::backend(std::string_view name) noexcept {
  for (auto& entry : backends_)
    if (entry->name == name)
      return entry.get();
  return nullptr;
}

size_t registry::healthy_backends() const noexcept {
  size_t healthy = 0;
  for (const auto& entry : backends_)
    if (entry->health.value() == static_cast<int64_t>(backend_health::up) &&
        entry->breaker.value() == static_cast<int64_t>(breaker_position::closed))
      ++healthy;
  return healthy;
}

counter& registry::http_requests(unsigned status) noexcept {
  for (size_t i = 0; i < http_codes.size(); ++i)
    if (http_codes[i] == status)
      return http_requests_[i];
  return http_requests_.back();
}

counter& registry::chaos_events(chaos::fault kind) noexcept {
  return chaos_events_[static_cast<size_t>(kind)];
}

std::string registry::render() const {
  std::string out;
  auto it = std::back_inserter(out);

  append_family_header(out, "offload_sessions", "gauge", "Connected MCP sessions by transport.");
  for (size_t i = 0; i < transport_names.size(); ++i)
    fmt::format_to(it, "offload_sessions{{transport=\"{}\"}} {}\n", transport_names[i],
                   sessions_[i].value());

  append_family_header(out, "offload_inflight_calls", "gauge",
                       "tools/call requests still running.");
  fmt::format_to(it, "offload_inflight_calls {}\n", inflight_calls_.value());

  append_family_header(out, "offload_tasks_total", "counter",
                       "Finished tasks by outcome: ok, or the error code the agent saw.");
  for (size_t code = 0; code < tasks_.size(); ++code) {
    auto name = to_string(static_cast<errc>(code));
    if (name == "unknown")
      continue; // not a defined code
    fmt::format_to(it, "offload_tasks_total{{outcome=\"{}\"}} {}\n",
                   code == 0 ? std::string_view{"ok"} : name, tasks_[code].value());
  }

  append_family_header(out, "offload_backend_request_seconds", "histogram",
                       "Duration of one exchange with an LLM backend.");
  for (const auto& backend : backends_) {
    auto label = escape_label_value(backend->name);
    auto reading = backend->request_seconds.read();
    for (size_t i = 0; i < histogram::bounds.size(); ++i)
      fmt::format_to(it, "offload_backend_request_seconds_bucket{{backend=\"{}\",le=\"{}\"}} {}\n",
                     label, histogram::bounds[i], reading.cumulative[i]);
    fmt::format_to(it, "offload_backend_request_seconds_bucket{{backend=\"{}\",le=\"+Inf\"}} {}\n",
                   label, reading.cumulative.back());
    fmt::format_to(it, "offload_backend_request_seconds_sum{{backend=\"{}\"}} {}\n", label,
                   reading.sum_seconds);
    fmt::format_to(it, "offload_backend_request_seconds_count{{backend=\"{}\"}} {}\n", label,
                   reading.cumulative.back());
  }

  // A family with one sample per backend: offload_<name>{backend="..."} value.
  auto per_backend = [&](std::string_view name, std::string_view type, std::string_view help,
                         auto value_of) {
    append_family_header(out, name, type, help);
    for (const auto& backend : backends_)
      fmt::format_to(it, "{}{{backend=\"{}\"}} {}\n", name, escape_label_value(backend->name),
                     value_of(*backend));
  };
  per_backend("offload_backend_queue_depth", "gauge", "Requests waiting for a backend slot.",
              [](const backend_metrics& b) { return b.queue_depth.value(); });

  append_family_header(out, "offload_backend_health", "gauge",
                       "1 for the backend's state as its last health probe showed it "
                       "(unknown before the first answer), 0 for the others.");
  for (const auto& backend : backends_) {
    auto label = escape_label_value(backend->name);
    auto now = backend->health.value();
    for (size_t i = 0; i < health_names.size(); ++i)
      fmt::format_to(it, "offload_backend_health{{backend=\"{}\",state=\"{}\"}} {}\n", label,
                     health_names[i], now == static_cast<int64_t>(i) ? 1 : 0);
  }
  per_backend("offload_backend_breaker_state", "gauge",
              "The backend's circuit breaker: 0 closed, 1 half-open, 2 open.",
              [](const backend_metrics& b) { return b.breaker.value(); });
  per_backend("offload_backend_breaker_opened_total", "counter",
              "Times the backend's circuit breaker opened.",
              [](const backend_metrics& b) { return b.breaker_opened.value(); });
  per_backend("offload_backend_restarts_total", "counter",
              "Times the backend's actor was restarted after it stopped.",
              [](const backend_metrics& b) { return b.restarts.value(); });

  append_family_header(out, "offload_http_requests_total", "counter",
                       "HTTP responses by status code.");
  for (size_t i = 0; i < http_codes.size(); ++i)
    fmt::format_to(it, "offload_http_requests_total{{code=\"{}\"}} {}\n", http_codes[i],
                   http_requests_[i].value());
  fmt::format_to(it, "offload_http_requests_total{{code=\"other\"}} {}\n",
                 http_requests_.back().value());

  append_family_header(out, "offload_chaos_events_total", "counter",
                       "Faults injected on purpose by chaos testing (the chaos: section).");
  for (auto kind : chaos::all_faults)
    fmt::format_to(it, "offload_chaos_events_total{{kind=\"{}\"}} {}\n", chaos::to_string(kind),
                   chaos_events_[static_cast<size_t>(kind)].value());
  return out;
}

} // namespace offload::metrics
