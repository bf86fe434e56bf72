#define CAF_SUITE backend
#include <caf/test/dsl.hpp>

#include "actors/spawn.hpp"

#include <fmt/format.h>

using namespace offload;
using namespace std::chrono_literals;

namespace {

// An llm_client that records exchanges and lets the test decide when and how each ends.
struct manual_client : llm_client {
  struct exchange : llm_exchange {
    std::string prompt;
    std::function<void(llm_outcome)> done;
    bool cancelled = false;
    void cancel() override {
      cancelled = true;
      auto finish = std::move(done);
      if (finish)
        finish(llm_outcome{false, {}, {errc::cancelled, "cancelled", false}});
    }
  };
  std::vector<std::shared_ptr<exchange>> started;

  std::shared_ptr<llm_exchange> start(llm_request_ptr request,
                                      std::function<void(llm_outcome)> done) override {
    auto ex = std::make_shared<exchange>();
    ex->prompt = request->messages.back().content;
    ex->done = std::move(done);
    started.push_back(ex);
    return ex;
  }

  void answer(size_t i, std::string text) {
    llm_outcome outcome;
    outcome.ok = true;
    outcome.reply.text = std::move(text);
    auto finish = std::move(started.at(i)->done);
    finish(std::move(outcome));
  }
};

// An endpoint_admin that records each management request and lets the test end it.
struct manual_admin : endpoint_admin {
  struct op : llm_exchange {
    std::string what;
    done_fn done;
    std::function<void(pull_update)> progress;
    bool cancelled = false;
    void cancel() override {
      cancelled = true;
      auto finish = std::move(done);
      if (finish) {
        admin_result r;
        r.error = {errc::cancelled, "cancelled", false};
        finish(std::move(r));
      }
    }
  };
  std::vector<std::shared_ptr<op>> ops;

  std::shared_ptr<llm_exchange> record(std::string what, done_fn done,
                                       std::function<void(pull_update)> progress = {}) {
    auto o = std::make_shared<op>();
    o->what = std::move(what);
    o->done = std::move(done);
    o->progress = std::move(progress);
    ops.push_back(o);
    return o;
  }
  std::shared_ptr<llm_exchange> probe(done_fn done) override { return record("probe", done); }
  std::shared_ptr<llm_exchange> list_models(done_fn done) override { return record("list", done); }
  std::shared_ptr<llm_exchange> loaded_models(done_fn done) override {
    return record("loaded", done);
  }
  std::shared_ptr<llm_exchange> preload(std::string model, std::string keep_alive,
                                        done_fn done) override {
    return record("preload " + model + " " + keep_alive, done);
  }
  std::shared_ptr<llm_exchange> pull(std::string model, std::function<void(pull_update)> progress,
                                     done_fn done) override {
    return record("pull " + model, done, std::move(progress));
  }

  void finish(size_t i, admin_result r) {
    auto finish = std::move(ops.at(i)->done);
    finish(std::move(r));
  }
};

struct puller_state {
  static constexpr const char* name = "puller";
};

// Asks the backend to pull a model and then waits; killed by the test.
caf::behavior puller(caf::stateful_actor<puller_state>* self, backend_actor backend) {
  self->request(backend, caf::infinite, pull_model_atom_v, std::string{"m"})
      .then([](admin_result&) {}, [](caf::error&) {});
  return {[](pull_progress_atom, pull_update&) {}};
}

struct requester_state {
  static constexpr const char* name = "requester";
};

// Asks the backend for one completion and records what came back in `log`.
caf::behavior requester(caf::stateful_actor<requester_state>* self, backend_actor backend,
                        std::string prompt, std::shared_ptr<std::vector<std::string>> log,
                        std::string session, request_priority priority) {
  auto request = std::make_shared<llm_request>();
  request->model = "model";
  request->messages = {{"user", prompt}};
  request->trace_id = prompt; // chaos decides by trace id
  request->fairness_key = std::move(session);
  request->priority = priority;
  self->request(backend, std::chrono::seconds{3600}, generate_atom_v, llm_request_ptr{request})
      .then(
          [=](llm_reply& reply) {
            log->push_back(fmt::format("{}={}@{}", prompt, reply.text, reply.backend));
          },
          [=](caf::error& err) {
            log->push_back(fmt::format("{}=error:{}", prompt, to_string(from_caf_error(err).code)));
          });
  return {};
}

struct fixture : test_coordinator_fixture<> {
  std::shared_ptr<manual_client> client = std::make_shared<manual_client>();
  std::shared_ptr<std::vector<std::string>> log = std::make_shared<std::vector<std::string>>();
  backend_actor aut = spawn_backend(sys, {"fake-backend", 2}, client);

  caf::actor ask(std::string prompt, std::string session = "s",
                 request_priority priority = request_priority::batch) {
    return sys.spawn(requester, aut, std::move(prompt), log, std::move(session), priority);
  }

  // Replaces the backend under test by one with these settings.
  void use(backend_settings settings) {
    caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
    consume_messages();
    aut = spawn_backend(sys, std::move(settings), client);
  }

  // The prompts of the exchanges started so far, in order.
  std::vector<std::string> started() const {
    std::vector<std::string> out;
    for (const auto& ex : client->started)
      out.push_back(ex->prompt);
    return out;
  }

  // Answers the newest started exchange and lets the backend start the next one.
  void finish_latest() {
    client->answer(client->started.size() - 1, "ok");
    consume_messages();
  }

  ~fixture() override {
    caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
    consume_messages();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(backend_tests, fixture)

CAF_TEST(at most max_concurrency exchanges run and the rest wait in order) {
  ask("a");
  ask("b");
  ask("c");
  consume_messages();
  CAF_REQUIRE_EQUAL(client->started.size(), 2u);
  CAF_CHECK_EQUAL(client->started[0]->prompt, "a");
  CAF_CHECK_EQUAL(client->started[1]->prompt, "b");
  client->answer(1, "B");
  consume_messages();
  CAF_REQUIRE_EQUAL(client->started.size(), 3u);
  CAF_CHECK_EQUAL(client->started[2]->prompt, "c");
  client->answer(0, "A");
  client->answer(2, "C");
  consume_messages();
  CAF_CHECK_EQUAL(
      *log, (std::vector<std::string>{"b=B@fake-backend", "a=A@fake-backend", "c=C@fake-backend"}));
}

CAF_TEST(errors from the client reach the requester) {
  ask("x");
  consume_messages();
  llm_outcome outcome;
  outcome.error = task_error{errc::malformed_stream, "garbage", false};
  auto finish = std::move(client->started.at(0)->done);
  finish(std::move(outcome));
  consume_messages();
  CAF_CHECK_EQUAL(*log, (std::vector<std::string>{"x=error:malformed_stream"}));
}

CAF_TEST(a requester that dies has its running exchange aborted and its slot reused) {
  auto first = ask("first");
  ask("second");
  ask("third");
  consume_messages();
  CAF_REQUIRE_EQUAL(client->started.size(), 2u);
  caf::anon_send_exit(first, caf::exit_reason::kill);
  consume_messages();
  CAF_CHECK(client->started[0]->cancelled);
  // The aborted exchange freed its slot: the queued request starts.
  CAF_REQUIRE_EQUAL(client->started.size(), 3u);
  CAF_CHECK_EQUAL(client->started[2]->prompt, "third");
}

CAF_TEST(a queued request whose requester dies never starts) {
  ask("a");
  ask("b");
  auto queued = ask("queued");
  consume_messages();
  caf::anon_send_exit(queued, caf::exit_reason::kill);
  consume_messages();
  client->answer(0, "A");
  consume_messages();
  CAF_CHECK_EQUAL(client->started.size(), 2u);
}

CAF_TEST(one slot is shared round robin between sessions) {
  use({"one-slot", 1});
  for (auto name : {"a1", "a2", "a3", "a4"})
    ask(name, "A");
  for (auto name : {"b1", "b2"})
    ask(name, "B");
  consume_messages();
  for (int i = 0; i < 5; ++i)
    finish_latest();
  // A's four tasks arrived first, yet B's two are interleaved with them.
  CAF_CHECK_EQUAL(started(), (std::vector<std::string>{"a1", "a2", "b1", "a3", "b2", "a4"}));
}

CAF_TEST(interactive requests go before waiting batch tasks) {
  use({"one-slot", 1});
  ask("busy", "A");
  ask("batch1", "A");
  ask("batch2", "B");
  ask("single", "C", request_priority::interactive);
  consume_messages();
  finish_latest();
  CAF_CHECK_EQUAL(started(), (std::vector<std::string>{"busy", "single"}));
}

CAF_TEST(a batch task that waited past the aging threshold goes before newer interactive ones) {
  backend_settings settings{"one-slot", 1};
  settings.aging = 5s;
  use(settings);
  ask("busy", "A");
  ask("old-batch", "A");
  consume_messages();
  advance_time(6s);
  ask("new-single", "B", request_priority::interactive);
  consume_messages();
  finish_latest();
  CAF_CHECK_EQUAL(started(), (std::vector<std::string>{"busy", "old-batch"}));
}

CAF_TEST(a full queue fails the next request at once with queue_full) {
  backend_settings settings{"small", 1};
  settings.max_queue = 2;
  use(settings);
  ask("running");
  ask("waiting1");
  ask("waiting2");
  ask("one-too-many");
  consume_messages();
  CAF_CHECK_EQUAL(*log, (std::vector<std::string>{"one-too-many=error:queue_full"}));
  CAF_CHECK_EQUAL(client->started.size(), 1u);
}

CAF_TEST(a request that waits past the wait budget fails with queue_full) {
  backend_settings settings{"slow", 1};
  settings.queue_wait = 10s;
  use(settings);
  ask("running");
  ask("waiting");
  consume_messages();
  advance_time(9s);
  consume_messages();
  CAF_CHECK(log->empty());
  advance_time(1s);
  consume_messages();
  CAF_CHECK_EQUAL(*log, (std::vector<std::string>{"waiting=error:queue_full"}));
  // The running exchange is unaffected and its slot serves the next request.
  finish_latest();
  CAF_CHECK_EQUAL(log->back(), "running=ok@slow");
}

CAF_TEST(a backend that is stopped answers everyone with backend_unavailable) {
  use({"doomed", 1});
  ask("running");
  ask("waiting");
  consume_messages();
  caf::anon_send_exit(aut, caf::exit_reason::unhandled_exception);
  consume_messages();
  CAF_CHECK(client->started[0]->cancelled);
  std::sort(log->begin(), log->end());
  CAF_CHECK_EQUAL(*log, (std::vector<std::string>{"running=error:backend_unavailable",
                                                  "waiting=error:backend_unavailable"}));
}

CAF_TEST(without an admin the backend reports itself up and knows no models) {
  auto probe = self->request(aut, caf::infinite, health_probe_atom_v);
  auto list = self->request(aut, caf::infinite, list_models_atom_v);
  consume_messages();
  probe.receive([](admin_result& r) { CAF_CHECK(r.ok && r.health == probe_status::up); },
                [](caf::error& e) { CAF_FAIL(caf::to_string(e)); });
  list.receive(
      [](admin_result& r) {
        CAF_CHECK(!r.ok);
        CAF_CHECK(r.error.code == errc::invalid_argument);
      },
      [](caf::error& e) { CAF_FAIL(caf::to_string(e)); });
}

CAF_TEST(management requests go to the admin without taking slots) {
  auto admin = std::make_shared<manual_admin>();
  caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
  consume_messages();
  aut = spawn_backend(sys, {"fake-backend", 1}, client, admin);
  ask("busy");
  consume_messages();
  auto preload =
      self->request(aut, caf::infinite, preload_atom_v, std::string{"m"}, std::string{"5m"});
  consume_messages();
  CAF_REQUIRE_EQUAL(admin->ops.size(), 1u);
  CAF_CHECK_EQUAL(admin->ops[0]->what, "preload m 5m");
  admin_result loaded;
  loaded.ok = true;
  loaded.detail = "5m";
  admin->finish(0, loaded);
  consume_messages();
  preload.receive([](admin_result& r) { CAF_CHECK_EQUAL(r.detail, "5m"); },
                  [](caf::error& e) { CAF_FAIL(caf::to_string(e)); });
  // The completion still holds the only slot.
  CAF_CHECK_EQUAL(client->started.size(), 1u);
}

CAF_TEST(a pull relays its progress to the requester before its answer) {
  auto admin = std::make_shared<manual_admin>();
  caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
  consume_messages();
  aut = spawn_backend(sys, {"fake-backend", 1}, client, admin);
  auto pull = self->request(aut, caf::infinite, pull_model_atom_v, std::string{"m"});
  consume_messages();
  CAF_REQUIRE_EQUAL(admin->ops.size(), 1u);
  admin->ops[0]->progress({"pulling manifest", 0, 0});
  admin->ops[0]->progress({"pulling 1a", 50, 100});
  admin_result ok;
  ok.ok = true;
  ok.detail = "success";
  admin->finish(0, ok);
  consume_messages();
  std::vector<std::string> seen;
  for (int i = 0; i < 2; ++i)
    self->receive([&](pull_progress_atom, pull_update& u) {
      seen.push_back(u.status + "@" + std::to_string(u.completed));
    });
  CAF_CHECK_EQUAL(seen, (std::vector<std::string>{"pulling manifest@0", "pulling 1a@50"}));
  pull.receive([](admin_result& r) { CAF_CHECK_EQUAL(r.detail, "success"); },
               [](caf::error& e) { CAF_FAIL(caf::to_string(e)); });
}

CAF_TEST(a pull whose requester dies is aborted) {
  auto admin = std::make_shared<manual_admin>();
  caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
  consume_messages();
  aut = spawn_backend(sys, {"fake-backend", 1}, client, admin);
  auto who = sys.spawn(puller, aut);
  consume_messages();
  CAF_REQUIRE_EQUAL(admin->ops.size(), 1u);
  CAF_CHECK(!admin->ops[0]->cancelled);
  caf::anon_send_exit(who, caf::exit_reason::user_shutdown);
  consume_messages();
  CAF_CHECK(admin->ops[0]->cancelled);
}

CAF_TEST(chaos crash_backend crashes the backend as it accepts a request and everyone hears) {
  metrics::counter crashes;
  backend_settings settings{"doomed", 1};
  settings.chaos.enabled = true;
  settings.chaos.crash_backend = 0.5;
  settings.chaos_crashes = &crashes;
  // Prompts (= trace ids) the seed lets through, and one it crashes the backend on.
  std::vector<std::string> spared;
  std::string fatal;
  for (int i = 0; spared.size() < 2 || fatal.empty(); ++i) {
    auto key = fmt::format("p{}", i);
    if (chaos::strikes(settings.chaos, chaos::fault::crash_backend, key, 1))
      fatal = fatal.empty() ? key : fatal;
    else if (spared.size() < 2)
      spared.push_back(key);
  }
  use(settings);
  ask(spared[0]); // runs
  ask(spared[1]); // waits for the slot
  consume_messages();
  CAF_REQUIRE_EQUAL(client->started.size(), 1u);
  CAF_CHECK_EQUAL(crashes.value(), 0u);
  ask(fatal);
  consume_messages();
  CAF_CHECK_EQUAL(crashes.value(), 1u);
  CAF_CHECK(client->started[0]->cancelled);
  CAF_CHECK_EQUAL(client->started.size(), 1u); // the fatal request never started
  auto heard = [&](const std::string& line) {
    return std::find(log->begin(), log->end(), line) != log->end();
  };
  CAF_CHECK_EQUAL(log->size(), 3u);
  CAF_CHECK(heard(spared[0] + "=error:backend_unavailable"));
  CAF_CHECK(heard(spared[1] + "=error:backend_unavailable"));
  // The request it crashed on is answered with the actor's exit reason (a task treats that as
  // backend_unavailable too, and also notices through its monitor).
  CAF_CHECK(heard(fatal + "=error:internal"));
  // The actor is gone: the next request is refused at once.
  ask(spared[0]);
  consume_messages();
  CAF_CHECK_EQUAL(log->back(), spared[0] + "=error:backend_unavailable");
}

CAF_TEST(chaos crash_backend at 0 or turned off never crashes the backend) {
  metrics::counter crashes;
  backend_settings settings{"spared", 1};
  settings.chaos.crash_backend = 1.0; // but chaos is off
  settings.chaos_crashes = &crashes;
  use(settings);
  ask("a");
  consume_messages();
  finish_latest();
  settings.chaos.enabled = true;
  settings.chaos.crash_backend = 0.0;
  use(settings);
  ask("b");
  consume_messages();
  finish_latest();
  CAF_CHECK_EQUAL(*log, (std::vector<std::string>{"a=ok@spared", "b=ok@spared"}));
  CAF_CHECK_EQUAL(crashes.value(), 0u);
}

CAF_TEST_FIXTURE_SCOPE_END()
