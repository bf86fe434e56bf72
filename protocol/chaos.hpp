#pragma once
// Chaos: faults the daemon injects into itself on purpose (`chaos:` in the configuration, off by
// default), so that the supervision tree — coordinators and their task actors, the router and its
// backends — is exercised at scale: task actors are killed, requests held back, backend actors
// crashed. This is the pure part: the settings and the decisions; the actors apply them.
//
// Every decision is a function of the chaos seed, the fault, a key (the task's trace id,
// "<session>/<call>/<task>") and the attempt number only, never of a random stream shared between
// actors. So the same seed injects the same faults into the same tasks whatever order the threads
// run them in, and a run can be repeated.

#include "runtime/defaults.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace offload::chaos {

enum class fault : uint8_t {
  kill_task,     // a task actor is killed while its first request is on its way
  delay_message, // a task's request to its backend is held back for a random time
  crash_backend, // a backend actor crashes as it accepts a request (the router restarts it)
};

inline constexpr std::array<fault, 3> all_faults = {fault::kill_task, fault::delay_message,
                                                    fault::crash_backend};

// The name used in the configuration, the logs and the `kind` label of /metrics.
std::string_view to_string(fault f);

struct settings {
  bool enabled = false;
  uint64_t seed = 0;
  // Probabilities in [0, 1]: per task (kill_task), per attempt (delay_message, crash_backend).
  double kill_task = 0;
  double delay_message = 0;
  double crash_backend = 0;
  // A held-back request waits a time drawn uniformly from [delay_min, delay_max].
  std::chrono::milliseconds delay_min = defaults::chaos_delay_min;
  std::chrono::milliseconds delay_max = defaults::chaos_delay_max;

  double probability(fault f) const;
  bool operator==(const settings&) const = default;
};

// Whether fault `f` strikes the decision point (`key`, `attempt`); always false when chaos is off.
bool strikes(const settings& s, fault f, std::string_view key, uint32_t attempt = 0);

// How long the request of attempt `attempt` of task `key` is held back: nullopt when
// delay_message does not strike it.
std::optional<std::chrono::milliseconds> delay_for(const settings& s, std::string_view key,
                                                   uint32_t attempt);

// The settings in one line, for the start-up warning: each probability, the delays and the seed.
std::string describe(const settings& s);

} // namespace offload::chaos
