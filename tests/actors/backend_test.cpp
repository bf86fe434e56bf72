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
  request->trace_id = "trace";
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

CAF_TEST_FIXTURE_SCOPE_END()
