#define CAF_SUITE batch_coordinator
#include <caf/test/dsl.hpp>

#include "actors/batch_coordinator.hpp"
#include "actors/usage_db.hpp"
#include "tests/actors/counter_fixtures.hpp"
#include "tests/actors/fakes.hpp"

#include <set>

using namespace offload;
using namespace offload::test;
using namespace std::chrono_literals;

namespace {

struct fixture : test_coordinator_fixture<> {
  std::shared_ptr<std::vector<std::string>> seen = std::make_shared<std::vector<std::string>>();
  router_actor router = spawn_scripted_router(sys, seen);
  engine_settings_ptr settings = test_settings(5s, 60s);
  std::optional<batch_result> result;

  ~fixture() override {
    caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
    if (ledger)
      caf::anon_send_exit(ledger, caf::exit_reason::user_shutdown);
    consume_messages();
  }

  batch_coordinator_actor spawn_aut(batch_spec_ptr spec, task_factory factory = nullptr) {
    if (!factory)
      factory = default_task_factory(router, settings, spec, "test");
    return spawn_batch_coordinator_with(sys, spec, settings, std::move(factory), "test");
  }

  // A coordinator whose tasks are recorded in a ledger (on the test scheduler) at `file`.
  batch_coordinator_actor spawn_recorded(batch_spec_ptr spec, const temp_db& file) {
    ledger = spawn_usage_ledger(sys, file.path, store_threading::scheduled);
    auto prices = std::make_shared<const price_table>(default_price_table());
    auto clock = [] { return std::chrono::system_clock::from_time_t(1'800'000'020); };
    call_usage usage{{ledger, "run-x", prices, clock}, "session-1", "alice", 7};
    return spawn_batch_coordinator_with(sys, spec, settings,
                                        default_task_factory(router, settings, spec, "test"),
                                        "test", {}, std::move(usage));
  }

  // What the ledger committed, read by a connection of its own, in task order.
  static std::vector<usage_record> recorded(const temp_db& file) {
    usage_db db{file.path, 100ms, sqlite_connection::access::read_only};
    auto out = db.records(0);
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.task_index < b.task_index; });
    return out;
  }

  usage_ledger_actor ledger;

  const task_result& task(size_t i) {
    CAF_REQUIRE(result.has_value());
    return result->tasks.at(i);
  }
};

// Reads the coordinator's answer from `handle` (it must have arrived).
template <class Handle>
void read_result(Handle& handle, std::optional<batch_result>& out) {
  handle.receive([&out](batch_result& r) { out = std::move(r); },
                 [](caf::error& err) { CAF_FAIL("coordinator failed: " << caf::to_string(err)); });
}

// A task actor that throws as soon as it runs: an exception inside a task.
caf::behavior throwing_task(caf::event_based_actor*) {
  throw std::runtime_error("boom");
}

// Runs `spec` on a fresh coordinator until it answers (no time needs to pass).
batch_result run_to_end(fixture& f, batch_spec_ptr spec) {
  auto aut = f.spawn_aut(spec);
  auto handle = f.self->request(aut, caf::infinite, run_batch_atom_v);
  f.consume_messages();
  std::optional<batch_result> out;
  read_result(handle, out);
  CAF_REQUIRE(out.has_value());
  return std::move(*out);
}

// The fixture's settings with these chaos settings and a fresh metrics registry.
std::shared_ptr<metrics::registry> use_chaos(fixture& f, chaos::settings chaos) {
  auto changed = std::make_shared<engine_settings>(*f.settings);
  changed->chaos = chaos;
  changed->metrics = std::make_shared<metrics::registry>();
  f.settings = changed;
  return changed->metrics;
}

chaos::settings killing(double probability, uint64_t seed = 1) {
  chaos::settings chaos;
  chaos.enabled = true;
  chaos.seed = seed;
  chaos.kill_task = probability;
  return chaos;
}

std::vector<std::string> numbered_tasks(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back("t" + std::to_string(i));
  return out;
}

std::set<size_t> killed_tasks(const batch_result& result) {
  std::set<size_t> out;
  for (const auto& t : result.tasks)
    if (t.error.code == errc::task_killed)
      out.insert(t.index);
  return out;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(batch_coordinator_tests, fixture)

CAF_TEST(chaos kill_task at 1 kills every task while its request runs and each is answered) {
  auto counts = use_chaos(*this, killing(1.0));
  auto out = run_to_end(*this, make_spec({"a", "b", "c"}));
  CAF_REQUIRE_EQUAL(out.tasks.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto& t = out.tasks[i];
    CAF_CHECK_EQUAL(t.index, i);
    CAF_CHECK(t.status == task_status::error);
    CAF_CHECK(t.error.code == errc::task_killed);
    CAF_CHECK(t.error.retryable);
    CAF_CHECK_EQUAL(t.error.message.rfind("chaos: the task was killed on purpose", 0), 0u);
  }
  // Each died with its request on its way: the backend saw all three.
  CAF_CHECK_EQUAL(seen->size(), 3u);
  CAF_CHECK_EQUAL(counts->chaos_events(chaos::fault::kill_task).value(), 3u);
  CAF_CHECK_EQUAL(counts->tasks(errc::task_killed).value(), 3u);
  CAF_CHECK_EQUAL(counts->chaos_events(chaos::fault::delay_message).value(), 0u);
}

CAF_TEST(chaos at probability 0 or turned off changes nothing) {
  auto off = killing(1.0);
  off.enabled = false;
  off.delay_message = 1.0;
  for (auto chaos : {killing(0.0), off}) {
    auto counts = use_chaos(*this, chaos);
    auto out = run_to_end(*this, make_spec({"a", "b"}));
    for (const auto& t : out.tasks)
      CAF_CHECK(t.status == task_status::ok);
    for (auto kind : chaos::all_faults)
      CAF_CHECK_EQUAL(counts->chaos_events(kind).value(), 0u);
  }
}

CAF_TEST(the same seed kills the same tasks in parallel and in a chain and others are unaffected) {
  const size_t n = 10;
  use_chaos(*this, killing(0.5, 2024));
  auto parallel = run_to_end(*this, make_spec(numbered_tasks(n)));
  auto again = run_to_end(*this, make_spec(numbered_tasks(n)));
  auto chain = run_to_end(*this, make_spec(numbered_tasks(n), true));
  auto killed = killed_tasks(parallel);
  CAF_CHECK(!killed.empty());
  CAF_CHECK_LESS(killed.size(), n);
  CAF_CHECK(killed_tasks(again) == killed);
  // Another order of events (one task after the other), the same victims.
  CAF_CHECK(killed_tasks(chain) == killed);
  for (size_t i = 0; i < n; ++i)
    if (killed.count(i) == 0) {
      CAF_CHECK(parallel.tasks[i].status == task_status::ok);
      CAF_CHECK_EQUAL(parallel.tasks[i].text, "echo:t" + std::to_string(i));
    }
  // Another seed, other victims.
  use_chaos(*this, killing(0.5, 2025));
  CAF_CHECK(killed_tasks(run_to_end(*this, make_spec(numbered_tasks(n)))) != killed);
}

CAF_TEST(every task of a healthy batch succeeds in input order) {
  auto aut = spawn_aut(make_spec({"a", "b", "c"}));
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  read_result(handle, result);
  CAF_REQUIRE_EQUAL(result->tasks.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    CAF_CHECK_EQUAL(task(i).index, i);
    CAF_CHECK(task(i).status == task_status::ok);
    CAF_CHECK_EQUAL(task(i).backend, "scripted");
    CAF_CHECK_EQUAL(task(i).model, "test-model");
  }
  CAF_CHECK_EQUAL(task(0).text, "echo:a");
  CAF_CHECK_EQUAL(task(2).text, "echo:c");
}

CAF_TEST(a failing task becomes its own error while siblings succeed) {
  auto aut = spawn_aut(make_spec({"one", "please fail", "three"}));
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  read_result(handle, result);
  CAF_CHECK(task(0).status == task_status::ok);
  CAF_CHECK(task(1).status == task_status::error);
  CAF_CHECK(task(1).error.code == errc::backend_http_error);
  CAF_CHECK(task(1).error.retryable);
  CAF_CHECK_EQUAL(task(1).error.message, "HTTP 500 from the LLM server");
  CAF_CHECK(task(2).status == task_status::ok);
  CAF_CHECK_EQUAL(task(2).text, "echo:three");
}

CAF_TEST(a task that throws becomes a crashed task while siblings succeed) {
  auto spec = make_spec({"ok one", "throws", "ok two"});
  auto normal = default_task_factory(router, settings, spec, "test");
  auto factory = [&, normal](batch_coordinator_actor coordinator, size_t index,
                             std::shared_ptr<const std::string> previous, task_deadline deadline) {
    if (index == 1)
      return sys.spawn(throwing_task);
    return normal(coordinator, index, std::move(previous), deadline);
  };
  auto aut = spawn_aut(spec, factory);
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  read_result(handle, result);
  CAF_CHECK(task(0).status == task_status::ok);
  CAF_CHECK(task(1).status == task_status::error);
  CAF_CHECK(task(1).error.code == errc::task_crashed);
  CAF_CHECK(task(2).status == task_status::ok);
}

CAF_TEST(a killed task becomes a crashed task) {
  auto spec = make_spec({"hang here", "fine"});
  auto normal = default_task_factory(router, settings, spec, "test");
  caf::actor victim;
  auto factory = [&, normal](batch_coordinator_actor coordinator, size_t index,
                             std::shared_ptr<const std::string> previous, task_deadline deadline) {
    auto task = normal(coordinator, index, std::move(previous), deadline);
    if (index == 0)
      victim = task;
    return task;
  };
  auto aut = spawn_aut(spec, factory);
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  CAF_REQUIRE(victim != nullptr);
  caf::anon_send_exit(victim, caf::exit_reason::kill);
  consume_messages();
  read_result(handle, result);
  CAF_CHECK(task(0).error.code == errc::task_crashed);
  CAF_CHECK(task(1).status == task_status::ok);
}

CAF_TEST(a task past its deadline times out while siblings succeed) {
  auto aut = spawn_aut(make_spec({"first", "hang forever", "third"}));
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  // Two tasks reported; the hanging one holds the batch open until its deadline.
  CAF_CHECK(self->mailbox().empty());
  CAF_CHECK(trigger_timeout()); // the task's 5 s request timeout (it comes before the batch's)
  consume_messages();
  read_result(handle, result);
  CAF_CHECK(task(0).status == task_status::ok);
  CAF_CHECK(task(1).status == task_status::error);
  CAF_CHECK(task(1).error.code == errc::timeout);
  CAF_CHECK(task(1).error.retryable);
  CAF_CHECK(task(2).status == task_status::ok);
}

CAF_TEST(the batch deadline answers for tasks that are still running) {
  settings = test_settings(120s, 10s); // the batch deadline comes first
  auto aut = spawn_aut(make_spec({"hang a", "done", "hang b"}));
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  // Both hanging tasks got what was left of the batch deadline (10 s), not their own 120 s.
  CAF_CHECK_EQUAL(trigger_timeouts(), 2u);
  consume_messages();
  read_result(handle, result);
  CAF_CHECK(task(0).error.code == errc::timeout);
  CAF_CHECK(task(1).status == task_status::ok);
  CAF_CHECK(task(2).error.code == errc::timeout);
  CAF_CHECK_NOT_EQUAL(task(2).error.message.find("within 10000 ms"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(task(2).error.message.find("batch deadline"), std::string::npos);
}

CAF_TEST(sequential tasks see the previous successful result) {
  auto aut = spawn_aut(make_spec({"step one", "please fail", "step three"}, true));
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  read_result(handle, result);
  CAF_CHECK(task(0).status == task_status::ok);
  CAF_CHECK(task(1).status == task_status::error);
  CAF_CHECK(task(2).status == task_status::ok);
  // Task 3 got task 1's answer (the last successful one), not task 2's failure.
  CAF_CHECK_NOT_EQUAL(task(2).text.find("step three"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(task(2).text.find("echo:step one"), std::string::npos);
  CAF_CHECK_EQUAL(task(0).text.find("Result of the previous step"), std::string::npos);
}

CAF_TEST(sequential tasks run one at a time) {
  auto aut = spawn_aut(make_spec({"hang first", "second"}, true));
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  // Only the first task was started; the second waits for it.
  CAF_CHECK_EQUAL(seen->size(), 1u);
  CAF_CHECK(trigger_timeout());
  consume_messages();
  CAF_REQUIRE_EQUAL(seen->size(), 2u);
  CAF_CHECK_EQUAL(seen->at(1), "second");
  read_result(handle, result);
  CAF_CHECK(task(0).error.code == errc::timeout);
  CAF_CHECK(task(1).status == task_status::ok);
}

CAF_TEST(a sequential chain never runs past the batch deadline) {
  settings = test_settings(6s, 10s);
  auto aut = spawn_aut(make_spec({"hang one", "hang two", "never started"}, true));
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  CAF_CHECK(trigger_timeout()); // task 1 uses its full 6 s
  consume_messages();
  CAF_CHECK(trigger_timeout()); // task 2 only gets the 4 s left of the batch
  consume_messages();
  read_result(handle, result);
  CAF_CHECK_NOT_EQUAL(task(0).error.message.find("within 6000 ms (the task timeout)"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(task(1).error.message.find("within 4000 ms"), std::string::npos);
  CAF_CHECK(task(2).error.code == errc::timeout);
  CAF_CHECK_NOT_EQUAL(task(2).error.message.find("before this task could start"),
                      std::string::npos);
  CAF_CHECK_EQUAL(seen->size(), 2u);
}

CAF_TEST(stop_on_error ends a chain at the first failure and skips the rest) {
  auto spec = std::make_shared<batch_spec>(*make_spec({"one", "fail two", "three", "four"}, true));
  spec->stop_on_error = true;
  auto aut = spawn_aut(spec);
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  read_result(handle, result);
  CAF_CHECK(task(0).status == task_status::ok);
  CAF_CHECK(task(1).status == task_status::error);
  for (size_t i : {2u, 3u}) {
    CAF_CHECK(task(i).status == task_status::skipped);
    CAF_CHECK(task(i).error.code == errc::skipped);
    CAF_CHECK_NOT_EQUAL(task(i).error.message.find("task 2 failed"), std::string::npos);
  }
  // The skipped tasks never reached a backend.
  CAF_REQUIRE_EQUAL(seen->size(), 2u);
  CAF_CHECK_EQUAL(seen->at(1).rfind("fail two", 0), 0u);
}

CAF_TEST(without stop_on_error a chain runs past a failure) {
  auto aut = spawn_aut(make_spec({"fail one", "two"}, true));
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  read_result(handle, result);
  CAF_CHECK(task(1).status == task_status::ok);
}

CAF_TEST(cancel answers at once with finished tasks kept and the rest cancelled) {
  auto aut = spawn_aut(make_spec({"quick", "hang one", "hang two"}));
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  CAF_CHECK(self->mailbox().empty());
  self->send(aut, cancel_atom_v);
  consume_messages();
  read_result(handle, result);
  CAF_CHECK(task(0).status == task_status::ok);
  CAF_CHECK(task(1).status == task_status::cancelled);
  CAF_CHECK(task(2).status == task_status::cancelled);
  CAF_CHECK(task(2).error.code == errc::cancelled);
}

CAF_TEST(cancel of a chain cancels the tasks that never started too) {
  auto aut = spawn_aut(make_spec({"hang first", "second", "third"}, true));
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  self->send(aut, cancel_atom_v);
  consume_messages();
  read_result(handle, result);
  for (size_t i = 0; i < 3; ++i)
    CAF_CHECK(task(i).status == task_status::cancelled);
  CAF_CHECK_EQUAL(seen->size(), 1u);
}

CAF_TEST(progress is reported after every task outcome) {
  auto reports = std::make_shared<std::vector<std::pair<size_t, size_t>>>();
  auto spec = make_spec({"a", "b", "hang c"});
  auto aut = spawn_batch_coordinator_with(
      sys, spec, settings, default_task_factory(router, settings, spec, "test"), "test",
      [reports](size_t done, size_t total) { reports->emplace_back(done, total); });
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  CAF_CHECK_EQUAL(reports->size(), 2u);
  trigger_timeouts();
  consume_messages();
  read_result(handle, result);
  using pairs = std::vector<std::pair<size_t, size_t>>;
  CAF_CHECK(*reports == (pairs{{1, 3}, {2, 3}, {3, 3}}));
}

CAF_TEST(every finished task is in the ledger once with its call when the batch answers) {
  temp_db file{"offload-coordinator-usage"};
  auto aut = spawn_recorded(make_spec({"a", "please fail", "c"}), file);
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  read_result(handle, result);
  auto records = recorded(file);
  CAF_REQUIRE_EQUAL(records.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto& r = records[i];
    CAF_CHECK_EQUAL(r.task_index, i);
    CAF_CHECK_EQUAL(r.run_id, "run-x");
    CAF_CHECK_EQUAL(r.session, "session-1");
    CAF_CHECK_EQUAL(r.agent, "alice");
    CAF_CHECK_EQUAL(r.call_no, 7u);
    CAF_CHECK_EQUAL(r.tool, "batch_offload");
    CAF_CHECK_EQUAL(r.model, "test-model");
    CAF_CHECK_EQUAL(r.tokens_in, task(i).tokens_in);
    CAF_CHECK_EQUAL(r.tokens_out, task(i).tokens_out);
    CAF_CHECK_EQUAL(r.attempts, task(i).attempts);
  }
  CAF_CHECK_EQUAL(records[0].outcome, "ok");
  CAF_CHECK_EQUAL(records[0].backend, "scripted");
  CAF_CHECK(records[0].saved_usd > 0);
  CAF_CHECK_EQUAL(records[1].outcome, "error");
  CAF_CHECK_EQUAL(records[1].error_code, "backend_http_error");
  CAF_CHECK_EQUAL(records[1].saved_usd, 0.0);
}

CAF_TEST(skipped tasks are recorded with the model they would have used) {
  temp_db file{"offload-coordinator-usage"};
  auto spec = std::make_shared<batch_spec>(*make_spec({"please fail", "never runs"}, true));
  spec->stop_on_error = true;
  spec->tasks[1].model = "other-model";
  auto aut = spawn_recorded(spec, file);
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  read_result(handle, result);
  auto records = recorded(file);
  CAF_REQUIRE_EQUAL(records.size(), 2u);
  CAF_CHECK_EQUAL(records[0].outcome, "error");
  CAF_CHECK_EQUAL(records[1].outcome, "skipped");
  CAF_CHECK_EQUAL(records[1].error_code, "skipped");
  CAF_CHECK_EQUAL(records[1].model, "other-model");
  CAF_CHECK_EQUAL(records[1].backend, "");
}

CAF_TEST(a cancelled batch records its unfinished tasks as cancelled) {
  temp_db file{"offload-coordinator-usage"};
  auto aut = spawn_recorded(make_spec({"quick", "hang"}), file);
  auto handle = self->request(aut, caf::infinite, run_batch_atom_v);
  consume_messages();
  self->send(aut, cancel_atom_v);
  consume_messages();
  read_result(handle, result);
  auto records = recorded(file);
  CAF_REQUIRE_EQUAL(records.size(), 2u);
  CAF_CHECK_EQUAL(records[0].outcome, "ok");
  CAF_CHECK_EQUAL(records[1].outcome, "cancelled");
  CAF_CHECK_EQUAL(records[1].error_code, "cancelled");
  CAF_CHECK_EQUAL(records[1].model, "test-model");
}

CAF_TEST_FIXTURE_SCOPE_END()
