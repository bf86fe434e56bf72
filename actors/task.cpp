// A task actor runs one task of a batch: it builds the prompt, asks the router which backend to
// use, asks that backend for a completion under the task's deadline, and reports the outcome to
// its coordinator before it quits. Retryable failures (a busy, loading, unreachable or restarting
// server) are tried again after a jittered exponential backoff that honours Retry-After, on
// another backend when there is one, for as long as attempts and the deadline allow. Whatever
// goes wrong becomes that task's result, never the batch's. With chaos on (protocol/chaos.hpp), a
// task may hold its request back for a while, or kill itself once its first request is on its way.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <random>

namespace offload {

namespace {

using task_clock = caf::actor_clock;

// The report a routed attempt owes the router (for its load counts and circuit breakers):
// exactly one per route, when the attempt ends, or as `cancelled` when the task ends (deadline,
// cancelled batch, crash) before it heard back.
class attempt_ticket {
public:
  attempt_ticket() = default;
  attempt_ticket(const attempt_ticket&) = delete;
  attempt_ticket& operator=(const attempt_ticket&) = delete;
  ~attempt_ticket() { settle(errc::cancelled); }

  void issue(router_actor router, uint32_t backend_id) {
    settle(errc::cancelled);
    router_ = std::move(router);
    backend_id_ = backend_id;
    armed_ = true;
  }

  void settle(errc outcome) {
    if (!armed_)
      return;
    armed_ = false;
    caf::anon_send(router_, route_done_atom_v, attempt_report{backend_id_, outcome});
  }

private:
  router_actor router_;
  uint32_t backend_id_ = 0;
  bool armed_ = false;
};

struct task_state {
  // The coordinator that receives this task's one and only report.
  batch_coordinator_actor coordinator;
  router_actor router;
  engine_settings_ptr settings;
  llm_request_ptr request;
  task_deadline deadline;
  // When the task started and when it must be done, by the actor clock (deterministic in tests).
  task_clock::time_point started;
  task_clock::time_point deadline_at;
  size_t index = 0;
  std::string model;    // as the task names it (perhaps an alias)
  std::string resolved; // the model the router resolved it to
  std::string trace_id;
  // Requests sent so far; responses of earlier attempts are ignored.
  uint32_t attempt = 0;
  // The backend serving the current attempt (monitored while it does), and its name.
  backend_actor backend;
  std::string backend_name;
  attempt_ticket ticket;
  bool waiting = false; // an attempt's request is outstanding
  // Chaos: this task is killed once its first request is on its way (chaos.kill_task).
  bool doomed = false;
  // Chaos: the route of the current attempt while its request is held back (delay_message).
  std::optional<route> held;
  std::minstd_rand rng; // retry jitter, seeded per task for repeatable runs
  std::vector<std::string> warnings;
  guard_verdict guard;

  static constexpr const char* name = "task";
};

using task_pointer = caf::stateful_actor<task_state>*;

void report(task_pointer self, task_result result) {
  auto& st = self->state;
  result.guard = std::move(st.guard);
  if (st.settings->redact_secrets) {
    // Every answer and error text leaves through here: no secret a model echoed reaches the
    // agent (or the logs).
    auto redacted = guards::redact_secrets(result.text);
    auto in_error = guards::redact_secrets(result.error.message);
    result.guard.redactions = redacted.count + in_error.count;
    result.guard.redacted_kinds = std::move(redacted.kinds);
    for (auto& kind : in_error.kinds)
      if (std::find(result.guard.redacted_kinds.begin(), result.guard.redacted_kinds.end(), kind) ==
          result.guard.redacted_kinds.end())
        result.guard.redacted_kinds.push_back(std::move(kind));
    if (result.guard.redactions > 0)
      spdlog::info("task {}: {} secret(s) redacted from the answer", st.trace_id,
                   result.guard.redactions);
  }
  result.index = st.index;
  result.attempts = st.attempt;
  if (result.model.empty())
    result.model = st.resolved.empty() ? st.model : st.resolved;
  if (result.backend.empty())
    result.backend = st.backend_name;
  result.warnings = std::move(st.warnings);
  auto elapsed = self->clock().now() - st.started;
  result.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
  self->send(st.coordinator, task_done_atom_v, std::move(result));
  self->quit();
}

void report_error(task_pointer self, task_error error) {
  task_result result;
  result.status = task_status::error;
  result.error = std::move(error);
  report(self, std::move(result));
}

task_error deadline_error(task_pointer self) {
  const auto& d = self->state.deadline;
  return {errc::timeout,
          fmt::format("the task did not finish within {} ms ({}); the local LLM may be overloaded "
                      "or still loading the model",
                      d.timeout.count(),
                      d.set_by_batch ? "what was left of the batch deadline" : "the task timeout"),
          true};
}

// Failures worth another attempt: the server may well answer the same request later or another
// server may answer it now. A dropped connection (a server that died or restarted mid-answer) is
// one of them: generating again has no side effects. Deadlines, bad input and streams that
// could not be parsed are not retried.
bool worth_retrying(const task_error& error) {
  switch (error.code) {
  case errc::connection_dropped:
  case errc::backend_unreachable:
  case errc::backend_overloaded:
  case errc::model_loading:
  case errc::backend_unavailable:
    return true;
  case errc::backend_http_error:
    return error.retryable; // 5xx, 408, 429
  default:
    return false;
  }
}

// Delay before attempt `next` (2, 3, ...): base * 2^(next-2), capped, minus up to `jitter` of
// itself at random, and never less than the server's Retry-After.
std::chrono::milliseconds backoff(task_pointer self, uint32_t next, const task_error& error) {
  const auto& retry = self->state.settings->retry;
  auto delay = retry.base_backoff * (int64_t{1} << std::min<uint32_t>(next - 2, 20));
  delay = std::min(delay, retry.max_backoff);
  if (retry.jitter > 0) {
    std::uniform_real_distribution<double> unit{0.0, 1.0};
    auto cut = static_cast<double>(delay.count()) * retry.jitter * unit(self->state.rng);
    delay -= std::chrono::milliseconds{static_cast<int64_t>(cut)};
  }
  return std::max(delay, std::chrono::milliseconds{error.retry_after_ms});
}

void start_attempt(task_pointer self);

// Decides between another attempt and giving up after `error` from backend `backend`.
void handle_failure(task_pointer self, task_error error, const std::string& backend) {
  auto& st = self->state;
  st.waiting = false;
  if (!backend.empty())
    st.backend_name = backend;
  if (worth_retrying(error) && st.attempt < st.settings->retry.max_attempts) {
    auto delay = backoff(self, st.attempt + 1, error);
    if (self->clock().now() + delay < st.deadline_at) {
      spdlog::debug("task {}: attempt {} failed ({}: {}); retrying in {} ms", st.trace_id,
                    st.attempt, to_string(error.code), error.message, delay.count());
      self->delayed_send(self, delay, retry_atom_v);
      return;
    }
    error.message += fmt::format(" (not retried: the next attempt, in {} ms, would not finish "
                                 "before the deadline)",
                                 delay.count());
  }
  if (st.attempt > 1)
    error.message += fmt::format(" [after {} attempts]", st.attempt);
  report_error(self, std::move(error));
}

void handle_caf_error(task_pointer self, const caf::error& err) {
  if (err == caf::sec::request_timeout) {
    // Our deadline, not the backend's fault.
    self->state.ticket.settle(errc::cancelled);
    report_error(self, deadline_error(self));
    return;
  }
  std::string backend;
  auto error = from_caf_error(err, &backend);
  if (error.code == errc::internal) {
    // Not one of our errors: the backend actor failed while handling the request (CAF answers
    // with its exit reason). The router restarts it, so this is worth another attempt.
    error = {errc::backend_unavailable,
             fmt::format("the backend {} failed while serving this task ({})",
                         self->state.backend_name, caf::to_string(err)),
             true};
  }
  self->state.ticket.settle(error.code);
  handle_failure(self, std::move(error), backend);
}

// The batch a task belongs to, for logs: its trace id without the task's index.
std::string_view batch_of(const std::string& trace_id) {
  std::string_view id{trace_id};
  return id.substr(0, id.rfind('/'));
}

void count_chaos(task_pointer self, chaos::fault kind) {
  if (self->state.settings->metrics)
    self->state.settings->metrics->chaos_events(kind).inc();
}

// Chaos: the task dies with task_killed as its exit reason, while its request is with the backend
// (which notices through its monitor, dropping or aborting the request). Its coordinator's
// monitor turns the death into the task's result, as for any task that dies.
void kill_on_purpose(task_pointer self) {
  auto& st = self->state;
  st.doomed = false;
  spdlog::warn("chaos: killed task {} of batch {} (its request was on its way to {})", st.index,
               batch_of(st.trace_id), st.backend_name);
  count_chaos(self, chaos::fault::kill_task);
  self->quit(to_caf_error({errc::task_killed,
                           fmt::format("chaos: the task was killed on purpose (chaos.kill_task is "
                                       "{}); this is fault injection, not a failure of the "
                                       "local LLM",
                                       st.settings->chaos.kill_task),
                           true}));
}

// Sends the current attempt's request to the chosen backend (its route_done ticket is issued).
void send_to_backend(task_pointer self, route chosen) {
  auto& st = self->state;
  if (chosen.model != st.request->model || st.request->attempt != st.attempt) {
    // An alias or the default: the server must be asked for the real name. A retry carries its
    // attempt number (a copy per retry; retries are rare and wait out a backoff anyway).
    auto renamed = std::make_shared<llm_request>(*st.request);
    renamed->model = chosen.model;
    renamed->attempt = st.attempt;
    st.request = std::move(renamed);
  }
  st.resolved = chosen.model;
  auto remaining = st.deadline_at - self->clock().now();
  if (remaining <= decltype(remaining)::zero()) {
    report_error(self, deadline_error(self));
    return;
  }
  st.backend = chosen.backend;
  st.backend_name = chosen.name;
  // The monitor turns a backend that dies mid-request into a quick retry instead of a wait for
  // the deadline.
  self->monitor(st.backend);
  auto attempt = st.attempt;
  self->request(st.backend, remaining, generate_atom_v, st.request)
      .then(
          [self, attempt](llm_reply& reply) {
            auto& st = self->state;
            if (attempt != st.attempt || !st.waiting)
              return;
            self->demonitor(st.backend.address());
            st.ticket.settle(errc::no_error);
            task_result result;
            result.status = task_status::ok;
            result.text = std::move(reply.text);
            result.model = std::move(reply.model);
            result.backend = std::move(reply.backend);
            result.tokens_in = reply.tokens_in;
            result.tokens_out = reply.tokens_out;
            report(self, std::move(result));
          },
          [self, attempt](caf::error& err) {
            auto& st = self->state;
            if (attempt != st.attempt || !st.waiting)
              return;
            self->demonitor(st.backend.address());
            handle_caf_error(self, err);
          });
  if (st.doomed)
    kill_on_purpose(self);
}

// The router chose a backend for the current attempt: send the request now, or (chaos) hold it
// back first. The attempt owes the router its report from here on, whatever happens.
void on_route(task_pointer self, route chosen) {
  auto& st = self->state;
  st.ticket.issue(st.router, chosen.backend_id);
  auto delay = chaos::delay_for(st.settings->chaos, st.trace_id, st.attempt);
  if (!delay) {
    send_to_backend(self, std::move(chosen));
    return;
  }
  // Never past the deadline: the request then fails with the task's timeout when it would go.
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(st.deadline_at - self->clock().now());
  delay = std::max(std::min(*delay, left), std::chrono::milliseconds{0});
  spdlog::warn("chaos: delayed the request of task {} of batch {} (attempt {}) by {} ms", st.index,
               batch_of(st.trace_id), st.attempt, delay->count());
  count_chaos(self, chaos::fault::delay_message);
  st.held = std::move(chosen);
  self->delayed_send(self, *delay, chaos_send_atom_v, st.attempt);
}

void start_attempt(task_pointer self) {
  auto& st = self->state;
  auto remaining = st.deadline_at - self->clock().now();
  if (remaining <= decltype(remaining)::zero()) {
    report_error(self, deadline_error(self));
    return;
  }
  auto attempt = ++st.attempt;
  st.waiting = true;
  route_hint hint{attempt, attempt > 1 ? st.backend_name : std::string{}};
  // No timeout on this one: the router answers at once (or its death errors at once), and in CAF
  // 0.17 every request timeout stays scheduled, holding the actor, until it expires.
  self->request(st.router, caf::infinite, route_atom_v, st.model, hint)
      .then(
          [self, attempt](route& chosen) {
            auto& st = self->state;
            if (attempt == st.attempt && st.waiting)
              on_route(self, std::move(chosen));
            else // the router counted it: tell it nothing came of it
              caf::anon_send(st.router, route_done_atom_v,
                             attempt_report{chosen.backend_id, errc::cancelled});
          },
          [self, attempt](caf::error& err) {
            if (attempt == self->state.attempt && self->state.waiting)
              handle_caf_error(self, err);
          });
}

// The injection guard over the task's own input (not a previous step's answer: that came from
// our own model). Returns false when the task must not run.
bool passes_injection_guard(task_pointer self, const task_spec& task) {
  auto& st = self->state;
  auto mode = st.settings->injection_guard;
  if (mode == guards::guard_mode::off)
    return true;
  auto findings = guards::scan_for_injection(task.task);
  for (auto& finding : guards::scan_for_injection(task.context))
    if (std::none_of(findings.begin(), findings.end(),
                     [&](const auto& f) { return f.category == finding.category; }))
      findings.push_back(std::move(finding));
  if (findings.empty()) {
    st.guard.injection = "clean";
    return true;
  }
  for (const auto& finding : findings) {
    st.guard.injection_findings.push_back(finding.category);
    spdlog::warn("task {}: possible prompt injection ({}): {:?}", st.trace_id, finding.category,
                 finding.excerpt);
  }
  if (!guards::should_block(mode, findings)) {
    st.guard.injection = "warned";
    return true;
  }
  st.guard.injection = "blocked";
  report_error(self, {errc::prompt_injection,
                      fmt::format("the input looks like a prompt injection ({}), so it was not "
                                  "sent to the local LLM; rephrase the task, or ask the operator "
                                  "to set the injection guard to warn",
                                  guards::describe(findings)),
                      false});
  return false;
}

caf::behavior task_behavior(task_pointer self, batch_coordinator_actor coordinator,
                            batch_spec_ptr spec, size_t index,
                            std::shared_ptr<const std::string> previous, router_actor router,
                            engine_settings_ptr settings, task_deadline deadline,
                            std::string trace_id) {
  auto& st = self->state;
  st.coordinator = std::move(coordinator);
  st.router = std::move(router);
  st.settings = std::move(settings);
  st.started = self->clock().now();
  st.deadline = deadline;
  st.deadline_at = st.started + deadline.timeout;
  st.index = index;
  st.trace_id = std::move(trace_id);
  st.rng.seed(static_cast<std::minstd_rand::result_type>(st.settings->seed ^
                                                         std::hash<std::string>{}(st.trace_id)));
  const auto& task = spec->tasks.at(index);
  st.model = task.model.empty() ? st.settings->default_model : task.model;
  if (!passes_injection_guard(self, task))
    return {};
  // Decided from the seed and the trace id alone, so the same tasks die in every run.
  st.doomed = chaos::strikes(st.settings->chaos, chaos::fault::kill_task, st.trace_id);

  auto request = std::make_shared<llm_request>();
  request->model = st.model;
  request->trace_id = st.trace_id;
  request->fairness_key = spec->owner;
  request->priority =
      spec->tool == "batch_offload" ? request_priority::batch : request_priority::interactive;
  request->first_token_timeout = std::chrono::milliseconds{spec->deadlines.first_token_timeout_ms};
  request->idle_timeout = std::chrono::milliseconds{spec->deadlines.idle_timeout_ms};
  if (spec->tool == "compress_context") {
    auto it = st.settings->context_chars.find(st.model);
    auto window =
        it != st.settings->context_chars.end() ? it->second : st.settings->default_context_chars;
    if (auto fitted = fit_to_context(task, context_budget(window, task, spec->target_chars))) {
      st.warnings.push_back(std::move(fitted->warning));
      request->messages = build_messages(fitted->task, nullptr);
    } else {
      request->messages = build_messages(task, nullptr);
    }
  } else {
    request->messages = build_messages(task, previous.get());
  }
  st.request = std::move(request);

  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    if (!st.waiting || msg.source != st.backend.address())
      return;
    st.ticket.settle(errc::backend_unavailable);
    handle_failure(self,
                   {errc::backend_unavailable,
                    fmt::format("the backend {} stopped while serving this task", st.backend_name),
                    true},
                   st.backend_name);
  });
  start_attempt(self);
  return {
      [self](retry_atom) { start_attempt(self); },
      [self](chaos_send_atom, uint32_t attempt) {
        auto& st = self->state;
        if (attempt != st.attempt || !st.waiting || !st.held)
          return;
        auto chosen = std::move(*st.held);
        st.held.reset();
        send_to_backend(self, std::move(chosen));
      },
  };
}

} // namespace

caf::actor spawn_task(caf::actor_system& sys, batch_coordinator_actor coordinator,
                      batch_spec_ptr spec, size_t index,
                      std::shared_ptr<const std::string> previous, router_actor router,
                      engine_settings_ptr settings, task_deadline deadline, std::string trace_id) {
  return sys.spawn(task_behavior, std::move(coordinator), std::move(spec), index,
                   std::move(previous), std::move(router), std::move(settings), deadline,
                   std::move(trace_id));
}

} // namespace offload
