#pragma once
// Process metrics, served as Prometheus text by GET /metrics. Updating a metric is one relaxed
// atomic operation, so any thread (actors, the I/O thread) may do it on a hot path without locks.
// Every label value comes from a small set fixed at start-up (transports, task outcomes, HTTP
// status codes, the configured backends), so nothing at run time can grow the registry.
//
// Families:
//   offload_sessions{transport}               gauge      connected MCP sessions
//   offload_inflight_calls                    gauge      tools/call requests still running
//   offload_tasks_total{outcome}              counter    finished tasks: "ok" or an error code
//   offload_backend_request_seconds{backend}  histogram  one LLM exchange, start to end
//   offload_backend_queue_depth{backend}      gauge      requests waiting for a backend slot
//   offload_backend_health{backend,state}     gauge      1 for the state the last probe showed
//   offload_backend_breaker_state{backend}    gauge      0 closed, 1 half-open, 2 open
//   offload_backend_breaker_opened_total{backend} counter times the breaker opened
//   offload_backend_restarts_total{backend}   counter    backend actors restarted after dying
//   offload_http_requests_total{code}         counter    HTTP responses by status code
//   offload_chaos_events_total{kind}          counter    faults injected on purpose (chaos:)

#include "protocol/chaos.hpp"
#include "protocol/errors.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace offload::metrics {

class counter {
public:
  void inc(uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<uint64_t> value_{0};
};

class gauge {
public:
  void set(int64_t value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void add(int64_t delta = 1) noexcept { value_.fetch_add(delta, std::memory_order_relaxed); }
  void sub(int64_t delta = 1) noexcept { value_.fetch_sub(delta, std::memory_order_relaxed); }
  int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<int64_t> value_{0};
};

// Durations in fixed buckets. The bounds span a cached answer (5 ms) to a long generation on a
// cold model (5 min), the range an LLM exchange really takes.
class histogram {
public:
  static constexpr std::array<double, 14> bounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                    1,     2.5,  5,     10,   30,  60,   300};

  void observe(std::chrono::nanoseconds elapsed) noexcept;
  void observe_seconds(double seconds) noexcept;

  struct reading {
    std::array<uint64_t, bounds.size() + 1> cumulative{}; // per bound, then +Inf (= count)
    double sum_seconds = 0;
  };
  reading read() const noexcept;

private:
  std::array<std::atomic<uint64_t>, bounds.size() + 1> buckets_{}; // not cumulative; last: +Inf
  std::atomic<uint64_t> sum_micros_{0}; // integer, so that adding needs no compare-exchange loop
};

enum class transport_kind : uint8_t { stdio, http };

// A backend's health as its probes show it (`unknown` until the first probe answered).
enum class backend_health : int64_t { unknown, up, loading, down };
// Its circuit breaker, numbered so that a larger value is worse.
enum class breaker_position : int64_t { closed, half_open, open };

// The metrics of one configured backend.
struct backend_metrics {
  std::string name;
  histogram request_seconds;
  gauge queue_depth;
  gauge health;  // a backend_health
  gauge breaker; // a breaker_position
  counter breaker_opened;
  counter restarts;

  void set_health(backend_health now) noexcept { health.set(static_cast<int64_t>(now)); }
  void set_breaker(breaker_position now) noexcept { breaker.set(static_cast<int64_t>(now)); }
};

class registry {
public:
  // `backends` are the configured backends' names, the only values of the `backend` label.
  explicit registry(const std::vector<std::string>& backends = {});
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  gauge& sessions(transport_kind transport) noexcept;
  gauge& inflight_calls() noexcept { return inflight_calls_; }
  // A task finished: errc::no_error counts as outcome "ok", every other code under its name.
  counter& tasks(errc outcome) noexcept;
  // The backend's metrics, or null for a name that was not configured. Look it up once and keep
  // the pointer: it stays valid as long as the registry.
  backend_metrics* backend(std::string_view name) noexcept;
  // Backends whose last probe found them up and whose breaker is closed.
  size_t healthy_backends() const noexcept;
  size_t backend_count() const noexcept { return backends_.size(); }
  // A response with this status; codes outside the fixed set count as code="other".
  counter& http_requests(unsigned status) noexcept;
  // A fault chaos testing injected (kill_task, delay_message, crash_backend).
  counter& chaos_events(chaos::fault kind) noexcept;

  // Prometheus text exposition format 0.0.4, every family with HELP and TYPE, every known label
  // value present (zeros included, so that rate() sees a series from the start).
  std::string render() const;

  static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

private:
  static constexpr std::array<unsigned, 14> http_codes = {200, 202, 400, 401, 403, 404, 405,
                                                          406, 409, 413, 415, 429, 500, 503};

  std::array<gauge, 2> sessions_;
  gauge inflight_calls_;
  std::array<counter, 256> tasks_; // indexed by errc's value; only named codes are rendered
  std::vector<std::unique_ptr<backend_metrics>> backends_;
  std::array<counter, http_codes.size() + 1> http_requests_; // last: "other"
  std::array<counter, chaos::all_faults.size()> chaos_events_;
};

using registry_ptr = std::shared_ptr<registry>;

} // namespace offload::metrics
