#pragma once
// Coordinator spawning with an injectable task factory (tests replace the task actors).

#include "actors/spawn.hpp"

namespace offload {

// Spawns the actor for task `index`; the coordinator monitors what it returns.
using task_factory =
    std::function<caf::actor(batch_coordinator_actor coordinator, size_t index,
                             std::shared_ptr<const std::string> previous, task_deadline deadline)>;

// The factory used in production: spawn_task with the given router and settings.
task_factory default_task_factory(router_actor router, engine_settings_ptr settings,
                                  batch_spec_ptr spec, std::string trace_id);

batch_coordinator_actor spawn_batch_coordinator_with(caf::actor_system& sys, batch_spec_ptr spec,
                                                     engine_settings_ptr settings,
                                                     task_factory make_task, std::string trace_id,
                                                     progress_fn progress = {},
                                                     call_usage usage = {});

} // namespace offload
