// A batch coordinator owns one batch_offload / offload_work call: it spawns one task actor per
// task (all at once in parallel mode, one after another in sequential mode), monitors them, and
// turns every way a task can end into that task's result. It answers exactly once, when every
// task has an outcome. The batch deadline is enforced through the tasks' own deadlines (each is
// cut to what is left of the batch's), so the coordinator needs no timer of its own: a delayed
// message in CAF 0.17 cannot be cancelled and would keep every finished batch alive until it
// fired.

#include "actors/batch_coordinator.hpp"

#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unordered_map>

namespace offload {

namespace {

struct batch_coordinator_state {
  batch_spec_ptr spec;
  engine_settings_ptr settings;
  std::string trace_id;
  task_factory make_task;
  // One slot per task, filled once with its outcome.
  std::vector<std::optional<task_result>> results;
  size_t finished = 0;
  // Task actors still running, by address, with the index they work on.
  std::unordered_map<caf::actor_addr, std::pair<size_t, caf::actor>> running;
  // Sequential mode: the next task to start and the last successful answer.
  size_t next_index = 0;
  std::shared_ptr<const std::string> last_ok;
  caf::typed_response_promise<batch_result> promise;
  bool started = false;
  caf::actor_clock::time_point started_at;
  caf::actor_clock::time_point deadline; // started_at + batch_timeout
  // The call's timeouts: its overrides, or the configured defaults.
  std::chrono::milliseconds task_timeout{0};
  std::chrono::milliseconds batch_timeout{0};
  // Told after each task outcome (may be empty).
  progress_fn progress;
  // Sequential + stop_on_error: the task whose failure stopped the chain, once one has.
  std::optional<size_t> chain_broken_at;
  // Where each finished task is recorded (no ledger: nowhere), and whose call this is.
  call_usage usage;

  static constexpr const char* name = "batch_coordinator";
};

using coordinator_pointer = batch_coordinator_actor::stateful_pointer<batch_coordinator_state>;

task_result failed(errc code, std::string message) {
  task_result r;
  r.status = task_status::error;
  r.error = task_error{code, std::move(message), is_retryable(code)};
  return r;
}

// Starts task `index` with its deadline cut to what is left of the batch's. Returns false when
// the batch deadline already passed (the task is then not started).
bool start_task(coordinator_pointer self, size_t index) {
  auto& st = self->state;
  using std::chrono::milliseconds;
  auto left = std::chrono::duration_cast<milliseconds>(st.deadline - self->clock().now());
  if (left <= milliseconds::zero())
    return false;
  task_deadline deadline{std::min(st.task_timeout, left), left < st.task_timeout};
  auto previous = st.spec->sequential ? st.last_ok : nullptr;
  auto task = st.make_task(caf::actor_cast<batch_coordinator_actor>(self), index,
                           std::move(previous), deadline);
  // Monitor, never link: a task's death is data for this batch, not a reason to die.
  self->monitor(task);
  st.running.emplace(task.address(), std::make_pair(index, task));
  return true;
}

void deliver(coordinator_pointer self) {
  auto& st = self->state;
  batch_result out;
  out.tasks.reserve(st.results.size());
  for (auto& r : st.results)
    out.tasks.push_back(std::move(*r));
  auto elapsed = self->clock().now() - st.started_at;
  out.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
  size_t ok = 0;
  for (const auto& t : out.tasks)
    ok += t.status == task_status::ok ? 1 : 0;
  spdlog::info("batch {} finished: {}/{} tasks ok in {} ms", st.trace_id, ok, out.tasks.size(),
               out.duration_ms);
  st.promise.deliver(std::move(out));
  self->quit();
}

// Answers once the ledger has committed this batch's records, so that a result the agent has
// seen is never missing from the ledger, even if the daemon is killed right after.
void finish_batch(coordinator_pointer self) {
  const auto& ledger = self->state.usage.usage.ledger;
  if (!ledger) {
    deliver(self);
    return;
  }
  self->request(ledger, defaults::ledger_sync_timeout, ledger_sync_atom_v)
      .then([self](bool) { deliver(self); },
            [self](caf::error& err) {
              spdlog::error("batch {}: the usage ledger did not confirm its records: {}",
                            self->state.trace_id, caf::to_string(err));
              deliver(self);
            });
}

// Sends the record of a finished task to the ledger, if there is one.
void record_usage(coordinator_pointer self, const task_result& result) {
  auto& st = self->state;
  const auto& usage = st.usage.usage;
  if (!usage.ledger)
    return;
  auto record =
      make_usage_record(result, st.spec->tool, usage.prices ? *usage.prices : price_table{});
  record.time = usage.now ? usage.now() : std::chrono::system_clock::now();
  record.run_id = usage.run_id;
  record.session = st.usage.session;
  record.agent = st.usage.agent;
  record.call_no = st.usage.call_no;
  if (record.model.empty()) { // never asked of a backend: the model it would have used
    const auto& asked = st.spec->tasks[result.index].model;
    record.model = asked.empty() ? st.settings->default_model : asked;
  }
  self->send(usage.ledger, ledger_record_atom_v, std::move(record));
}

void store(coordinator_pointer self, size_t index, task_result result) {
  auto& st = self->state;
  result.index = index;
  if (result.status == task_status::ok && st.spec->sequential)
    st.last_ok = std::make_shared<const std::string>(result.text);
  if (result.status != task_status::ok)
    spdlog::info("task {}/{} {}: [{}] {}", st.trace_id, index, to_string(result.status),
                 to_string(result.error.code), result.error.message);
  if (result.status == task_status::error && st.spec->stop_on_error && !st.chain_broken_at)
    st.chain_broken_at = index;
  if (st.settings->metrics)
    st.settings->metrics
        ->tasks(result.status == task_status::ok ? errc::no_error : result.error.code)
        .inc();
  record_usage(self, result);
  st.results[index] = std::move(result);
  ++st.finished;
  if (st.progress)
    st.progress(st.finished, st.results.size());
}

task_result with_status(task_status status, errc code, std::string message) {
  auto r = failed(code, std::move(message));
  r.status = status;
  return r;
}

// Sequential mode: starts the next task, or writes off those the batch deadline left no time.
void start_next(coordinator_pointer self) {
  auto& st = self->state;
  while (st.next_index < st.results.size() && st.running.empty()) {
    auto index = st.next_index++;
    if (st.chain_broken_at) {
      store(self, index,
            with_status(task_status::skipped, errc::skipped,
                        fmt::format("not run: task {} failed and stop_on_error is set",
                                    *st.chain_broken_at + 1)));
      continue;
    }
    if (!start_task(self, index))
      store(self, index,
            failed(errc::timeout, fmt::format("the batch deadline of {} ms passed before this "
                                              "task could start",
                                              st.batch_timeout.count())));
  }
}

// Records task `index`'s outcome (the first one wins) and starts more work or finishes.
void record(coordinator_pointer self, size_t index, task_result result) {
  auto& st = self->state;
  if (index >= st.results.size() || st.results[index])
    return;
  store(self, index, std::move(result));
  if (st.spec->sequential)
    start_next(self);
  if (st.finished == st.results.size())
    finish_batch(self);
}

} // namespace

task_factory default_task_factory(router_actor router, engine_settings_ptr settings,
                                  batch_spec_ptr spec, std::string trace_id) {
  return [=](batch_coordinator_actor coordinator, size_t index,
             std::shared_ptr<const std::string> previous, task_deadline deadline) {
    auto& sys = coordinator->home_system();
    return spawn_task(sys, coordinator, spec, index, std::move(previous), router, settings,
                      deadline, fmt::format("{}/{}", trace_id, index));
  };
}

namespace {

batch_coordinator_actor::behavior_type
batch_coordinator(coordinator_pointer self, batch_spec_ptr spec, engine_settings_ptr settings,
                  task_factory make_task, std::string trace_id, progress_fn progress,
                  call_usage usage) {
  auto& st = self->state;
  st.usage = std::move(usage);
  st.spec = std::move(spec);
  st.settings = std::move(settings);
  st.make_task = std::move(make_task);
  st.trace_id = std::move(trace_id);
  st.progress = std::move(progress);
  st.results.resize(st.spec->tasks.size());
  using std::chrono::milliseconds;
  const auto& overrides = st.spec->deadlines;
  st.task_timeout = overrides.task_timeout_ms > 0 ? milliseconds{overrides.task_timeout_ms}
                                                  : st.settings->task_timeout;
  st.batch_timeout = overrides.batch_timeout_ms > 0 ? milliseconds{overrides.batch_timeout_ms}
                                                    : st.settings->batch_timeout;

  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    auto it = st.running.find(msg.source);
    if (it == st.running.end())
      return;
    auto index = it->second.first;
    st.running.erase(it);
    // Killed on purpose by chaos testing: the task's exit reason says so, and how.
    if (auto killed = from_caf_error(msg.reason); killed.code == errc::task_killed) {
      task_result r;
      r.status = task_status::error;
      r.error = std::move(killed);
      record(self, index, std::move(r));
      return;
    }
    // The task died without reporting: an exception, a kill, or a bug. That is its result.
    record(self, index,
           failed(errc::task_crashed,
                  fmt::format("the task stopped unexpectedly ({})", caf::to_string(msg.reason))));
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Cancelled from outside (session ended, daemon stopping): take the tasks down with us.
    for (auto& [addr, entry] : self->state.running)
      self->send_exit(entry.second, msg.reason);
    self->quit(msg.reason);
  });

  return {
      [self](run_batch_atom) -> caf::result<batch_result> {
        auto& st = self->state;
        if (st.started)
          return caf::make_error(caf::sec::invalid_argument, "batch already started");
        st.started = true;
        st.started_at = self->clock().now();
        st.deadline = st.started_at + st.batch_timeout;
        st.promise = self->make_response_promise<batch_result>();
        if (st.spec->sequential) {
          start_next(self);
        } else {
          for (size_t i = 0; i < st.results.size(); ++i)
            if (!start_task(self, i))
              store(self, i, failed(errc::timeout, "the batch deadline is zero"));
        }
        if (st.finished == st.results.size())
          finish_batch(self);
        return st.promise;
      },
      [self](task_done_atom, task_result& result) {
        auto& st = self->state;
        auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        auto it = st.running.find(sender);
        if (it == st.running.end())
          return; // not one of ours, or already written off
        auto index = it->second.first;
        st.running.erase(it);
        record(self, index, std::move(result));
      },
      [self](cancel_atom) {
        auto& st = self->state;
        if (!st.started || st.finished == st.results.size())
          return;
        spdlog::info("batch {} cancelled with {} task(s) unfinished", st.trace_id,
                     st.results.size() - st.finished);
        // Stop the running tasks (their backends abort the HTTP requests when they notice) and
        // answer for every task that has no outcome yet.
        for (auto& [addr, entry] : st.running) {
          self->demonitor(entry.second);
          self->send_exit(entry.second, caf::exit_reason::user_shutdown);
        }
        st.running.clear();
        for (size_t i = 0; i < st.results.size(); ++i)
          if (!st.results[i])
            store(self, i,
                  with_status(task_status::cancelled, errc::cancelled,
                              "cancelled before it finished (the daemon is shutting down or the "
                              "caller cancelled the batch)"));
        finish_batch(self);
      },
  };
}

} // namespace

batch_coordinator_actor spawn_batch_coordinator_with(caf::actor_system& sys, batch_spec_ptr spec,
                                                     engine_settings_ptr settings,
                                                     task_factory make_task, std::string trace_id,
                                                     progress_fn progress, call_usage usage) {
  return sys.spawn(batch_coordinator, std::move(spec), std::move(settings), std::move(make_task),
                   std::move(trace_id), std::move(progress), std::move(usage));
}

batch_coordinator_actor spawn_batch_coordinator(caf::actor_system& sys, batch_spec_ptr spec,
                                                router_actor router, engine_settings_ptr settings,
                                                std::string trace_id, progress_fn progress,
                                                call_usage usage) {
  auto factory = default_task_factory(std::move(router), settings, spec, trace_id);
  return spawn_batch_coordinator_with(sys, std::move(spec), std::move(settings), std::move(factory),
                                      std::move(trace_id), std::move(progress), std::move(usage));
}

} // namespace offload
