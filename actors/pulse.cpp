// A pulse actor calls its function at a fixed interval from a delayed_send loop to itself. It is
// long-lived, so the uncancellable timer of CAF 0.17 costs nothing; a stopped pulse simply drops
// its last tick.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>

namespace offload {

namespace {

struct pulse_state {
  std::chrono::milliseconds interval{0};
  std::function<void()> beat;
  static constexpr const char* name = "pulse";
};

pulse_actor::behavior_type pulse(pulse_actor::stateful_pointer<pulse_state> self,
                                 std::chrono::milliseconds interval, std::function<void()> beat) {
  self->state.interval = interval;
  self->state.beat = std::move(beat);
  self->send(self, heartbeat_atom_v, uint64_t{0});
  return {
      [self](heartbeat_atom, uint64_t n) {
        self->state.beat();
        self->delayed_send(self, self->state.interval, heartbeat_atom_v, n + 1);
      },
  };
}

} // namespace

pulse_actor spawn_pulse(caf::actor_system& sys, std::chrono::milliseconds interval,
                        std::function<void()> beat) {
  return sys.spawn(pulse, interval, std::move(beat));
}

} // namespace offload
