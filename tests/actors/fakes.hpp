#pragma once
// Test doubles shared by the actor tests: a backend that answers from the prompt text alone.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

namespace offload::test {

// The last user message of a request: where the task text (and its markers) lives.
inline const std::string& user_text(const llm_request& request) {
  for (auto it = request.messages.rbegin(); it != request.messages.rend(); ++it)
    if (it->role == "user")
      return it->content;
  static const std::string none;
  return none;
}

struct scripted_backend_state {
  // The user text of every request, in arrival order.
  std::shared_ptr<std::vector<std::string>> seen;
  // Replies that were never delivered ("hang"), kept so that the requester waits forever.
  std::vector<caf::typed_response_promise<llm_reply>> hanging;
  static constexpr const char* name = "scripted_backend";
};

// A backend that answers from the prompt text alone: "echo:<user text>", unless the text contains
// "fail" (HTTP 500), "hang" (never answers), "busyN" (the first N attempts fail with
// backend_overloaded), "retryafter" (the first attempt is refused with Retry-After: 3), "missing"
// (404 model not found) or "crash" (the first attempt makes the backend throw).
inline backend_actor::behavior_type
scripted_backend(backend_actor::stateful_pointer<scripted_backend_state> self,
                 std::shared_ptr<std::vector<std::string>> seen) {
  self->state.seen = std::move(seen);
  return {
      [self](generate_atom, llm_request_ptr& request) -> caf::result<llm_reply> {
        const auto& text = user_text(*request);
        self->state.seen->push_back(text);
        // Counted over every incarnation of the backend (it may have been restarted).
        auto attempt = std::count(self->state.seen->begin(), self->state.seen->end(), text);
        if (auto pos = text.find("busy"); pos != std::string::npos) {
          auto failures = std::atoi(text.c_str() + pos + 4);
          if (attempt <= failures)
            return to_caf_error({errc::backend_overloaded, "server busy", true}, "scripted");
        }
        if (text.find("retryafter") != std::string::npos && attempt == 1) {
          task_error busy{errc::backend_overloaded, "HTTP 429: slow down", true};
          busy.retry_after_ms = 3000;
          return to_caf_error(busy, "scripted");
        }
        if (text.find("crash") != std::string::npos && attempt == 1)
          throw std::runtime_error("injected backend crash");
        if (text.find("missing") != std::string::npos)
          return to_caf_error({errc::model_not_found, "model not found", false}, "scripted");
        if (text.find("fail") != std::string::npos)
          return to_caf_error({errc::backend_http_error, "HTTP 500 from the LLM server", true},
                              "scripted");
        if (text.find("hang") != std::string::npos) {
          auto promise = self->make_response_promise<llm_reply>();
          self->state.hanging.push_back(promise);
          return promise;
        }
        llm_reply reply;
        reply.text = "echo:" + text;
        reply.model = request->model;
        reply.backend = "scripted";
        reply.tokens_in = 1;
        reply.tokens_out = 2;
        return reply;
      },
      [](http_done_atom, uint64_t, llm_outcome&) {},
      [](sweep_atom) {},
      [](health_probe_atom) {
        admin_result up;
        up.ok = true;
        up.health = probe_status::up;
        return up;
      },
      [](list_models_atom) { return admin_result{}; },
      // The model tools: one loaded model; preloads succeed; a pull reports two steps to its
      // requester, then succeeds, unless the model's name contains "missing".
      [](loaded_models_atom) {
        admin_result r;
        r.ok = true;
        r.loaded.push_back({"test-model", 1000, 1000, "2030-01-01T00:00:00Z", 4096});
        return r;
      },
      [](preload_atom, std::string&, std::string& keep_alive) {
        admin_result r;
        r.ok = true;
        r.detail = keep_alive.empty() ? "-1" : keep_alive;
        return r;
      },
      [self](pull_model_atom, std::string& model) {
        admin_result r;
        if (model.find("missing") != std::string::npos) {
          r.error = {errc::backend_error, "pull model manifest: file does not exist", false};
          return r;
        }
        auto requester = caf::actor_cast<model_tool_actor>(self->current_sender());
        self->send(requester, pull_progress_atom_v, pull_update{"pulling manifest", 0, 0});
        self->send(requester, pull_progress_atom_v, pull_update{"pulling 1a", 100, 100});
        r.ok = true;
        r.detail = "success";
        return r;
      },
      [](admin_done_atom, uint64_t, admin_result&) {},
      [](admin_step_atom, uint64_t, pull_update&) {},
  };
}

// Router settings for tests that do not exercise health or discovery: no timers at all, so
// the test scheduler's run() terminates.
inline router_settings quiet_router_settings() {
  router_settings settings;
  settings.health_interval = std::chrono::milliseconds{0};
  settings.discovery_interval = std::chrono::milliseconds{0};
  settings.default_model = "test-model";
  return settings;
}

// A router over one scripted backend (restarted by the router if it crashes).
inline router_actor spawn_scripted_router(caf::actor_system& sys,
                                          std::shared_ptr<std::vector<std::string>> seen) {
  backend_spec spec;
  spec.name = "scripted";
  spec.spawn = [seen](caf::actor_system& s) { return s.spawn(scripted_backend, seen); };
  std::vector<backend_spec> specs;
  specs.push_back(std::move(spec));
  return spawn_router(sys, std::move(specs), quiet_router_settings());
}

// An llm_client that answers every request at once with "echo:<user text>" (its completion
// reaches the backend as a message, as from the I/O thread).
struct echo_client : llm_client {
  struct done_exchange : llm_exchange {
    void cancel() override {}
  };
  std::shared_ptr<llm_exchange> start(llm_request_ptr request,
                                      std::function<void(llm_outcome)> done) override {
    llm_outcome outcome;
    outcome.ok = true;
    outcome.reply.text = "echo:" + user_text(*request);
    outcome.reply.model = request->model;
    done(std::move(outcome));
    return std::make_shared<done_exchange>();
  }
};

// A router over one real backend actor named "real" (with an echo_client and these chaos
// settings, crashes counted in `crashes`), restarted by the router whenever it dies.
inline router_actor spawn_echo_router(caf::actor_system& sys, chaos::settings chaos,
                                      metrics::counter* crashes) {
  backend_settings settings;
  settings.name = "real";
  settings.chaos = chaos;
  settings.chaos_crashes = crashes;
  std::vector<backend_spec> specs;
  specs.push_back(make_backend_spec(std::move(settings), std::make_shared<echo_client>()));
  return spawn_router(sys, std::move(specs), quiet_router_settings());
}

inline engine_settings_ptr test_settings(std::chrono::milliseconds task_timeout,
                                         std::chrono::milliseconds batch_timeout) {
  auto settings = std::make_shared<engine_settings>();
  settings->default_model = "test-model";
  settings->task_timeout = task_timeout;
  settings->batch_timeout = batch_timeout;
  settings->retry.jitter = 0;       // exact backoff delays
  settings->retry.max_attempts = 1; // tests of retries ask for them
  settings->progress_heartbeat = std::chrono::seconds{2};
  return settings;
}

inline batch_spec_ptr make_spec(std::vector<std::string> tasks, bool sequential = false) {
  auto spec = std::make_shared<batch_spec>();
  spec->tool = "batch_offload";
  spec->sequential = sequential;
  for (auto& t : tasks)
    spec->tasks.push_back(task_spec{std::move(t), "", "", "", "", ""});
  return spec;
}

} // namespace offload::test
