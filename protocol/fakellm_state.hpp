#pragma once
// The fake LLM server's bookkeeping, as plain classes the server runs on its one I/O thread:
// slots and the queue in front of them, which models are "loaded", and the counters behind
// GET /_fake/stats. Not thread-safe; time is passed in, so tests control it.

#include "protocol/fakellm_route.hpp"
#include "protocol/fakellm_script.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace offload::fakellm {

// -- slots ---------------------------------------------------------------------------------------

// At most `capacity` generations hold a slot at once (0 = no limit); the rest wait first come,
// first served, at most `max_waiting` of them (unset = no limit).
class slot_pool {
public:
  using waiter_list = std::list<std::function<void()>>;
  using ticket = waiter_list::iterator;

  explicit slot_pool(size_t capacity, std::optional<size_t> max_waiting = std::nullopt)
      : capacity_(capacity)
      , max_waiting_(max_waiting) {}

  // Takes a slot if one is free and nobody is queued ahead.
  bool try_acquire();

  // Whether a request that found no free slot may queue, rather than being turned away.
  bool can_wait() const { return !max_waiting_ || waiters_.size() < *max_waiting_; }

  // Queues a request; `on_granted` runs once a slot has been taken on its behalf.
  ticket enqueue(std::function<void()> on_granted);

  // Leaves the queue (the client went away); the ticket is invalid afterwards.
  void cancel(ticket t) { waiters_.erase(t); }

  // Returns a slot, handing it straight to the first waiter so a newcomer cannot overtake.
  void release();

  // Empties the queue (destroying the callbacks) and stops granting slots, for shutdown.
  void close();

  size_t in_use() const { return in_use_; }
  size_t waiting() const { return waiters_.size(); }
  size_t max_in_use() const { return max_in_use_; }
  void reset_max() { max_in_use_ = in_use_; }

private:
  void take();

  size_t capacity_;
  std::optional<size_t> max_waiting_;
  size_t in_use_ = 0;
  size_t max_in_use_ = 0;
  waiter_list waiters_;
  bool closed_ = false;
};

// -- loaded models -------------------------------------------------------------------------------

// Ollama keeps a model in memory for keep_alive after its last request (5 minutes unless told).
inline constexpr std::chrono::minutes default_keep_alive{5};

// Which models count as loaded, for GET /api/ps: a model is loaded by a request for it and stays
// for its keep_alive.
class model_residency {
public:
  // `model` answered a request at `now`. keep_alive: unset = the default, negative = forever,
  // zero = unload now.
  void touch(const std::string& model, std::chrono::system_clock::time_point now,
             std::optional<std::chrono::milliseconds> keep_alive);

  // The models still loaded at `now`, by name.
  std::vector<std::pair<std::string, std::chrono::system_clock::time_point>>
  loaded(std::chrono::system_clock::time_point now) const;

private:
  std::map<std::string, std::chrono::system_clock::time_point> expiry_;
};

// -- stats ---------------------------------------------------------------------------------------

// One request as GET /_fake/stats lists it among the recent ones, with what was done to it.
struct request_record {
  uint64_t sequence = 0; // numbers the requests of the API endpoints from 1, in arrival order
  endpoint target = endpoint::not_found;
  std::string model;
  std::string prompt;   // the start of the last user message, to tell requests apart
  std::string rule;     // the plan rule that decided the response; empty when none did
  bool markers = false; // the prompt's markers decided it
  uint64_t attempt = 0; // the plan's count of this same request; 0 without a plan
  action applied;       // the answer, or the fault
};

inline constexpr size_t recent_requests_kept = 100;
inline constexpr size_t recent_prompt_chars = 120;

// A fault plan's state as the stats show it.
struct plan_summary {
  struct rule {
    std::string name;
    int line = 0;
    uint64_t seen = 0;
    uint64_t matched = 0;
  };
  std::string source;
  std::string description;
  uint64_t seed = 0;
  std::vector<rule> rules;
};

// Record or replay mode, as the stats show it.
struct proxy_summary {
  std::string mode;       // "record" or "replay"
  std::string directory;  // where the exchanges are stored
  uint64_t exchanges = 0; // recorded, or answered from a recording
  uint64_t missing = 0;   // replay: requests without a recording
  uint64_t failed = 0;    // record: exchanges the upstream did not complete
};

// Counters behind GET /_fake/stats. The first five fields are the original ones; tests rely on
// their names and meaning.
struct stats {
  uint64_t requests = 0;     // generation requests received on any API, valid or not
  size_t in_flight = 0;      // generations holding a slot now
  size_t max_concurrent = 0; // highest in_flight since start or the last reset
  size_t waiting = 0;        // requests queued for a slot now
  std::array<uint64_t, injectable_faults.size() + 1> faults{}; // applied, indexed by fault
  std::array<uint64_t, endpoint_count> endpoints{};            // requests, indexed by endpoint
  std::map<std::string, uint64_t> models; // requests naming each model, as named
  uint64_t rejected_busy = 0;             // turned away with 503: slots busy and queue full
  uint64_t rejected_loading = 0;          // turned away with 503 during the loading phase
  api_mode api = api_mode::both;
  // Requests per endpoint path and model (generation and pull requests).
  std::map<std::string, std::map<std::string, uint64_t>> endpoint_models;
  std::deque<request_record> recent;  // the last recent_requests_kept, oldest first
  std::optional<plan_summary> plan;   // filled in by the server's snapshot
  std::optional<proxy_summary> proxy; // filled in by the server's snapshot

  // Counts a request naming `model` at `target`.
  void count_model(endpoint target, const std::string& model);

  // Keeps `record` among the recent requests.
  void remember(request_record record);

  // Zeroes the counters; the gauges (in_flight, waiting) describe the present and stay.
  void reset_counters();
};

std::string make_stats_body(const stats& counters);

} // namespace offload::fakellm
