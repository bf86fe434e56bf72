// A model_tool actor runs one list_loaded_models, preload_model or pull_model call: it asks the
// router which backends exist (and which models they serve), sends the management requests to
// the backends concerned, and answers once with the tools/call result. A pull's progress is
// relayed to the session as it comes, at most every pull_progress_interval (and whenever the
// status changes). The actor goes away with its session; a backend that dies answers its
// requests itself (or is noticed through a monitor), so the call always ends.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

namespace offload {

namespace {

using namespace model_tools;

// (The first member must not be an actor handle: CAF would try to construct the state from the
// actor's own pointer.)
struct model_tool_state {
  model_tool_args args;
  router_actor router;
  mcp_session_actor session; // progress goes here, when set
  uint64_t call_no = 0;
  caf::typed_response_promise<tool_answer> promise;
  bool answered = false;
  caf::actor_clock::time_point started;
  // Answers gathered from several backends, in the order asked.
  std::vector<backend_loaded> loaded;
  std::vector<backend_preloaded> preloaded;
  std::string keep_alive; // as a backend reported using it
  size_t waiting = 0;
  // A pull: its backend (monitored) and the latest progress.
  backend_actor pulling;
  pull_outcome pull;
  pull_update last_update;
  caf::actor_clock::time_point last_relayed;
  std::string last_relayed_status;

  static constexpr const char* name = "model_tool";
};

using tool_pointer = model_tool_actor::stateful_pointer<model_tool_state>;

void answer(tool_pointer self, json result) {
  auto& st = self->state;
  if (st.answered)
    return;
  st.answered = true;
  st.promise.deliver(tool_answer{std::move(result)});
  self->quit();
}

void fail(tool_pointer self, task_error error) {
  answer(self, render_failure(self->state.args.tool, error));
}

std::string resolve(const router_status& status, const std::string& model) {
  if (auto it = status.aliases.find(model); it != status.aliases.end())
    return it->second;
  return model;
}

bool serves(const backend_status& b, const std::string& model) {
  auto has = [&](const std::string& name) {
    return std::find(b.models.begin(), b.models.end(), name) != b.models.end();
  };
  return has(model) || (model.find(':') == std::string::npos && has(model + ":latest"));
}

std::string names_of(const router_status& status) {
  std::string out;
  for (const auto& b : status.backends)
    out += fmt::format("{}{} ({})", out.empty() ? "" : ", ", b.name, b.kind);
  return out.empty() ? std::string{"none"} : out;
}

std::string models_of(const router_status& status) {
  std::set<std::string> names;
  for (const auto& b : status.backends)
    names.insert(b.models.begin(), b.models.end());
  std::string out;
  for (const auto& name : names)
    out += fmt::format("{}{}", out.empty() ? "" : ", ", name);
  return out.empty() ? std::string{"none"} : out;
}

// The backends the call is restricted to (all, or the one named); nullopt (after answering) when
// the name matches none.
std::optional<std::vector<backend_status>> selected(tool_pointer self,
                                                    const router_status& status) {
  const auto& wanted = self->state.args.backend;
  if (wanted.empty())
    return status.backends;
  for (const auto& b : status.backends)
    if (b.name == wanted)
      return std::vector<backend_status>{b};
  fail(self, {errc::invalid_argument,
              fmt::format("backend: there is no backend named \"{}\"; the backends are: {}", wanted,
                          names_of(status)),
              false});
  return std::nullopt;
}

void list_loaded(tool_pointer self, const router_status& status) {
  auto targets = selected(self, status);
  if (!targets)
    return;
  auto& st = self->state;
  if (targets->empty()) {
    answer(self, render_loaded({}));
    return;
  }
  st.loaded.resize(targets->size());
  st.waiting = targets->size();
  for (size_t i = 0; i < targets->size(); ++i) {
    const auto& b = (*targets)[i];
    st.loaded[i].backend = b.name;
    st.loaded[i].kind = b.kind;
    auto done = [self] {
      if (--self->state.waiting == 0)
        answer(self, render_loaded(self->state.loaded));
    };
    self->request(b.handle, defaults::probe_timeout * 2, loaded_models_atom_v)
        .then(
            [self, i, done](admin_result& result) {
              auto& entry = self->state.loaded[i];
              entry.ok = result.ok;
              entry.error = result.error.message;
              entry.note = result.detail;
              entry.models = std::move(result.loaded);
              done();
            },
            [self, i, done](caf::error& err) {
              self->state.loaded[i].error = from_caf_error(err).message;
              done();
            });
  }
}

void preload(tool_pointer self, const router_status& status) {
  auto targets = selected(self, status);
  if (!targets)
    return;
  auto& st = self->state;
  auto model = resolve(status, st.args.model);
  std::vector<backend_status> with_model;
  std::vector<backend_status> unknown;
  std::vector<backend_preloaded> self_loading; // OpenAI-compatible servers that have it
  for (const auto& b : *targets) {
    bool has = serves(b, model);
    if (b.kind != "ollama") {
      if (has || !st.args.backend.empty())
        self_loading.push_back({b.name, true, "",
                                "an OpenAI-compatible server loads its models itself; nothing "
                                "to preload"});
      continue;
    }
    if (has)
      with_model.push_back(b);
    else if (!b.models_known || !st.args.backend.empty())
      unknown.push_back(b);
  }
  auto asked = with_model.empty() ? unknown : with_model;
  if (asked.empty()) {
    if (!self_loading.empty()) {
      answer(self, render_preload(model, st.args.keep_alive, self_loading));
      return;
    }
    fail(self, {errc::model_not_found,
                fmt::format("no Ollama backend has the model \"{}\"; the models available are: "
                            "{}. Download it with pull_model first",
                            model, models_of(status)),
                false});
    return;
  }
  st.preloaded = std::move(self_loading);
  auto first = st.preloaded.size();
  st.preloaded.resize(first + asked.size());
  st.waiting = asked.size();
  st.keep_alive = st.args.keep_alive;
  for (size_t k = 0; k < asked.size(); ++k) {
    auto i = first + k;
    st.preloaded[i].backend = asked[k].name;
    auto done = [self, model] {
      auto& st = self->state;
      if (--st.waiting == 0)
        answer(self, render_preload(model, st.keep_alive, st.preloaded));
    };
    self->request(asked[k].handle, defaults::preload_timeout + defaults::probe_timeout,
                  preload_atom_v, model, st.args.keep_alive)
        .then(
            [self, i, done](admin_result& result) {
              auto& entry = self->state.preloaded[i];
              entry.ok = result.ok;
              entry.error = result.error.message;
              if (result.ok && !result.detail.empty())
                self->state.keep_alive = result.detail;
              done();
            },
            [self, i, done](caf::error& err) {
              self->state.preloaded[i].error = from_caf_error(err).message;
              done();
            });
  }
}

void relay_progress(tool_pointer self, const pull_update& update) {
  auto& st = self->state;
  st.last_update = update;
  if (!st.session)
    return;
  auto now = self->clock().now();
  bool new_status = update.status != st.last_relayed_status;
  if (!new_status && now - st.last_relayed < defaults::pull_progress_interval)
    return;
  st.last_relayed = now;
  st.last_relayed_status = update.status;
  auto message = update.total > 0
                     ? fmt::format("{}: {} of {}", update.status, format_bytes(update.completed),
                                   format_bytes(update.total))
                     : update.status;
  self->send(st.session, tool_progress_atom_v, st.call_no, static_cast<double>(update.completed),
             static_cast<double>(update.total), std::move(message));
}

void pull(tool_pointer self, const router_status& status) {
  auto targets = selected(self, status);
  if (!targets)
    return;
  auto& st = self->state;
  std::optional<backend_status> chosen;
  for (const auto& b : *targets) {
    if (b.kind != "ollama")
      continue;
    bool healthy = b.health == probe_status::up && b.breaker != breaker_state::open;
    if (!chosen || (healthy && !(chosen->health == probe_status::up &&
                                 chosen->breaker != breaker_state::open)))
      chosen = b;
  }
  if (!chosen) {
    fail(self, {errc::invalid_argument,
                fmt::format("pulling needs an Ollama backend, and {}; the backends are: {}",
                            st.args.backend.empty() ? "none is configured"
                                                    : "\"" + st.args.backend + "\" is not one",
                            names_of(status)),
                false});
    return;
  }
  st.pull.model = resolve(status, st.args.model);
  st.pull.backend = chosen->name;
  st.pulling = chosen->handle;
  self->monitor(st.pulling);
  spdlog::info("pull_model: pulling {} on {}", st.pull.model, st.pull.backend);
  // No timeout here: the backend's HTTP exchange has its own (pull_timeout, pull_idle_timeout),
  // and the monitor covers the backend dying.
  self->request(st.pulling, caf::infinite, pull_model_atom_v, st.pull.model)
      .then(
          [self](admin_result& result) {
            auto& st = self->state;
            auto& out = st.pull;
            out.ok = result.ok;
            out.error = result.error;
            out.status = result.detail.empty() ? st.last_update.status : result.detail;
            out.completed_bytes = st.last_update.completed;
            out.total_bytes = st.last_update.total;
            out.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  self->clock().now() - st.started)
                                  .count();
            if (result.ok) {
              spdlog::info("pull_model: {} is on {} now", out.model, out.backend);
              // The router learns of the new model now rather than at its next discovery.
              self->send(st.router, rediscover_atom_v, out.backend);
            } else {
              spdlog::warn("pull_model: pulling {} on {} failed: {}", out.model, out.backend,
                           out.error.message);
            }
            answer(self, render_pull(out));
          },
          [self](caf::error& err) {
            auto& out = self->state.pull;
            out.error = from_caf_error(err);
            answer(self, render_pull(out));
          });
}

model_tool_actor::behavior_type model_tool(tool_pointer self, router_actor router,
                                           model_tool_args args, mcp_session_actor session,
                                           uint64_t call_no) {
  auto& st = self->state;
  st.router = std::move(router);
  st.args = std::move(args);
  st.session = std::move(session);
  st.call_no = call_no;
  st.started = self->clock().now();
  if (st.session)
    self->monitor(st.session);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    if (st.session && msg.source == st.session.address()) {
      self->quit(); // nobody left to answer; the backends abort our requests
      return;
    }
    if (st.pulling && msg.source == st.pulling.address()) {
      st.pull.error = {errc::backend_unavailable,
                       fmt::format("the backend {} stopped during the pull", st.pull.backend),
                       true};
      answer(self, render_pull(st.pull));
    }
  });
  self->set_exception_handler([self](std::exception_ptr& eptr) -> caf::error {
    auto what = describe_exception(eptr);
    spdlog::error("{}: internal error: {}", self->state.args.tool, what);
    fail(self, {errc::internal, what, false});
    return caf::make_error(caf::sec::runtime_error, what);
  });
  return {
      [self](run_tool_atom) -> caf::result<tool_answer> {
        auto& st = self->state;
        st.promise = self->make_response_promise<tool_answer>();
        self->request(st.router, defaults::probe_timeout, router_status_atom_v)
            .then(
                [self](router_status& status) {
                  const auto& tool = self->state.args.tool;
                  if (tool == "list_loaded_models")
                    list_loaded(self, status);
                  else if (tool == "preload_model")
                    preload(self, status);
                  else
                    pull(self, status);
                },
                [self](caf::error& err) { fail(self, from_caf_error(err)); });
        return st.promise;
      },
      [self](pull_progress_atom, pull_update& update) { relay_progress(self, update); },
      [self](cancel_atom) {
        fail(self, {errc::cancelled, "offload is shutting down; the call was cancelled", false});
      },
  };
}

} // namespace

model_tool_actor spawn_model_tool(caf::actor_system& sys, router_actor router, model_tool_args args,
                                  mcp_session_actor session, uint64_t call_no) {
  return sys.spawn(model_tool, std::move(router), std::move(args), std::move(session), call_no);
}

} // namespace offload
