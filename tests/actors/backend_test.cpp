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
                        std::string prompt, std::shared_ptr<std::vector<std::string>> log) {
  auto request = std::make_shared<llm_request>();
  request->model = "model";
  request->messages = {{"user", prompt}};
  request->trace_id = "trace";
  self->request(backend, std::chrono::seconds{3600}, generate_atom_v, llm_request_ptr{request})
      .then(
          [=](llm_reply& reply) {
            log->push_back(fmt::format("{}={}@{}", prompt, reply.text, reply.backend));
          },
          [=](caf::error& err) { log->push_back(fmt::format("{}=error", prompt)); });
  return {};
}

struct fixture : test_coordinator_fixture<> {
  std::shared_ptr<manual_client> client = std::make_shared<manual_client>();
  std::shared_ptr<std::vector<std::string>> log = std::make_shared<std::vector<std::string>>();
  backend_actor aut = spawn_backend(sys, {"fake-backend", 2}, client);

  caf::actor ask(std::string prompt) { return sys.spawn(requester, aut, std::move(prompt), log); }

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
  CAF_CHECK_EQUAL(*log, (std::vector<std::string>{"x=error"}));
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

CAF_TEST_FIXTURE_SCOPE_END()
