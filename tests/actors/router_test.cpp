#define CAF_SUITE router
#include <caf/test/dsl.hpp>

#include "actors/spawn.hpp"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <map>
#include <sstream>

using namespace offload;
using namespace std::chrono_literals;

// The router under the test clock, with fake backends whose health probes and model lists the
// test scripts: routing by model, alias and default; least-loaded choice and avoid_backend; the
// circuit breaker from closed to open, half-open and closed again; the only backend of a model
// never shut off; discovery at start, on a miss and periodically; and each state change logged
// once.

namespace {

// What one fake backend answers to the router.
struct endpoint_script {
  std::vector<std::string> models;
  bool list_ok = true;
  probe_status health = probe_status::up;
  bool probe_ok = true;
  // When set, model lists are held back until the backend gets (admin_done), which stands in
  // for the I/O thread's completion.
  bool hold_lists = false;
  std::vector<caf::typed_response_promise<admin_result>> held_lists;
  int probes = 0;
  int lists = 0;
};

using scripts = std::map<std::string, std::shared_ptr<endpoint_script>>;

struct fake_endpoint_state {
  std::shared_ptr<endpoint_script> script;
  static constexpr const char* name = "fake_endpoint";
};

backend_actor::behavior_type
fake_endpoint(backend_actor::stateful_pointer<fake_endpoint_state> self,
              std::shared_ptr<endpoint_script> script) {
  self->state.script = std::move(script);
  return {
      [](generate_atom, llm_request_ptr&) -> caf::result<llm_reply> { return llm_reply{}; },
      [](http_done_atom, uint64_t, llm_outcome&) {},
      [](sweep_atom) {},
      [self](health_probe_atom) {
        auto& s = *self->state.script;
        ++s.probes;
        admin_result r;
        r.ok = s.probe_ok;
        r.health = s.probe_ok ? s.health : probe_status::down;
        if (!s.probe_ok)
          r.error = {errc::backend_unreachable, "connection refused", true};
        return r;
      },
      [self](list_models_atom) -> caf::result<admin_result> {
        auto& s = *self->state.script;
        ++s.lists;
        if (s.hold_lists) {
          auto promise = self->make_response_promise<admin_result>();
          s.held_lists.push_back(promise);
          return promise;
        }
        admin_result r;
        r.ok = s.list_ok;
        if (s.list_ok)
          r.models = s.models;
        else
          r.error = {errc::backend_unreachable, "connection refused", true};
        return r;
      },
      [](loaded_models_atom) { return admin_result{}; },
      [](preload_atom, std::string&, std::string&) { return admin_result{}; },
      [](pull_model_atom, std::string&) { return admin_result{}; },
      [self](admin_done_atom, uint64_t, admin_result&) {
        auto& s = *self->state.script;
        admin_result r;
        r.ok = true;
        r.models = s.models;
        for (auto& p : s.held_lists)
          p.deliver(r);
        s.held_lists.clear();
      },
      [](admin_step_atom, uint64_t, pull_update&) {},
  };
}

struct fixture : test_coordinator_fixture<> {
  std::ostringstream log_text;
  std::shared_ptr<spdlog::logger> previous_logger = spdlog::default_logger();
  scripts endpoints;
  router_actor aut;

  fixture() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text);
    sink->set_pattern("%l %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("router-test", sink));
  }

  ~fixture() override {
    if (aut)
      caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
    consume_messages();
    spdlog::set_default_logger(previous_logger);
  }

  static router_settings settings() {
    router_settings s;
    s.default_model = "a";
    s.health_interval = 10s;
    s.discovery_interval = 60s;
    s.probe_timeout = 5s;
    s.rediscover_min_interval = 5s;
    s.breaker.consecutive_failures = 3;
    s.breaker.min_requests = 10;
    s.breaker.failure_rate = 0.5;
    s.breaker.window = 60s;
    s.breaker.cooldown = 30s;
    return s;
  }

  // A backend named `name` that reports `models`; `configured` are the models its spec names.
  backend_spec endpoint(const std::string& name, std::vector<std::string> models,
                        std::vector<std::string> configured = {}) {
    auto script = std::make_shared<endpoint_script>();
    script->models = std::move(models);
    endpoints[name] = script;
    backend_spec spec;
    spec.name = name;
    spec.spawn = [script](caf::actor_system& sys) { return sys.spawn(fake_endpoint, script); };
    spec.models = std::move(configured);
    spec.max_concurrency = 1;
    return spec;
  }

  void start(std::vector<backend_spec> specs, router_settings s = settings()) {
    aut = spawn_router(sys, std::move(specs), std::move(s));
    consume_messages();
  }

  // Asks for a route; nullopt (and `error` set) when the router refused, nullopt with no error
  // when it has not answered (yet).
  std::optional<route> try_route(const std::string& model, route_hint hint, caf::error* error) {
    auto handle = self->request(aut, caf::infinite, route_atom_v, model, hint);
    consume_messages();
    if (self->mailbox().empty())
      return std::nullopt;
    std::optional<route> out;
    handle.receive([&](route& r) { out = std::move(r); },
                   [&](caf::error& e) {
                     if (error != nullptr)
                       *error = e;
                   });
    return out;
  }

  route route_for(const std::string& model, route_hint hint = {}) {
    caf::error error;
    auto r = try_route(model, std::move(hint), &error);
    if (!r)
      CAF_FAIL("no route for " << model << ": " << from_caf_error(error).message);
    return *r;
  }

  task_error refusal(const std::string& model) {
    caf::error error;
    auto r = try_route(model, {}, &error);
    CAF_REQUIRE(!r);
    CAF_REQUIRE(error);
    return from_caf_error(error);
  }

  void report(const route& r, errc outcome) {
    self->send(aut, route_done_atom_v, attempt_report{r.backend_id, outcome});
    consume_messages();
  }

  // Asks whether the first round of probes and discoveries is done; the answer, or nullopt
  // while the router holds the request back.
  std::optional<router_status> try_ready() {
    auto handle = self->request(aut, caf::infinite, router_ready_atom_v);
    consume_messages();
    if (self->mailbox().empty())
      return std::nullopt;
    std::optional<router_status> out;
    handle.receive([&](router_status& s) { out = std::move(s); },
                   [](caf::error& e) { CAF_FAIL("no readiness: " << caf::to_string(e)); });
    return out;
  }

  // Answers the model lists the endpoints held back (hold_lists), then runs what follows; the
  // reply the test awaits must be in the mailbox by then.
  void release_held_lists() {
    for (const auto& b : status().backends)
      self->send(b.handle, admin_done_atom_v, uint64_t{0}, admin_result{});
    consume_messages();
    CAF_REQUIRE(!self->mailbox().empty());
  }

  router_status status() {
    auto handle = self->request(aut, caf::infinite, router_status_atom_v);
    consume_messages();
    router_status out;
    handle.receive([&](router_status& s) { out = std::move(s); },
                   [](caf::error& e) { CAF_FAIL("no status: " << caf::to_string(e)); });
    return out;
  }

  breaker_state breaker_of(const std::string& name) {
    for (const auto& b : status().backends)
      if (b.name == name)
        return b.breaker;
    CAF_FAIL("no backend " << name);
    return breaker_state::closed;
  }

  void wait(caf::timespan d) {
    advance_time(d);
    consume_messages();
  }

  size_t logged(const std::string& text) {
    auto all = log_text.str();
    size_t count = 0;
    for (auto pos = all.find(text); pos != std::string::npos; pos = all.find(text, pos + 1))
      ++count;
    return count;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(router_tests, fixture)

CAF_TEST(tasks are routed by model as the backends reported them) {
  start({endpoint("ollama", {"a:latest", "b"}), endpoint("openai", {"c"})});
  CAF_CHECK_EQUAL(route_for("b").name, "ollama");
  CAF_CHECK_EQUAL(route_for("c").name, "openai");
  // Ollama's implied tag: "a" and "a:latest" are the same model.
  CAF_CHECK_EQUAL(route_for("a").name, "ollama");
  CAF_CHECK_EQUAL(route_for("a:latest").name, "ollama");
  CAF_CHECK_EQUAL(logged("backend ollama has 2 model(s): a:latest, b"), 1u);
}

CAF_TEST(aliases and the default model resolve to real names) {
  auto s = settings();
  s.aliases = {{"fast", "c"}};
  start({endpoint("ollama", {"a", "b"}), endpoint("openai", {"c"})}, s);
  auto fast = route_for("fast");
  CAF_CHECK_EQUAL(fast.name, "openai");
  CAF_CHECK_EQUAL(fast.model, "c");
  auto none = route_for("");
  CAF_CHECK_EQUAL(none.name, "ollama");
  CAF_CHECK_EQUAL(none.model, "a");
}

CAF_TEST(configured models count without discovery) {
  auto s = settings();
  s.discovery_interval = 0s;
  start({endpoint("one", {}, {"x"}), endpoint("two", {}, {"y"})}, s);
  CAF_CHECK_EQUAL(route_for("y").name, "two");
  CAF_CHECK_EQUAL(endpoints["one"]->lists, 0);
}

CAF_TEST(an unknown model fails with the models and aliases that exist) {
  auto s = settings();
  s.aliases = {{"fast", "c"}};
  start({endpoint("ollama", {"a", "b"}), endpoint("openai", {"c"})}, s);
  auto error = refusal("nope");
  CAF_CHECK(error.code == errc::model_not_found);
  CAF_CHECK(!error.retryable);
  CAF_CHECK_NOT_EQUAL(error.message.find("\"nope\""), std::string::npos);
  CAF_CHECK_NOT_EQUAL(error.message.find("a, b, c"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(error.message.find("fast -> c"), std::string::npos);
}

CAF_TEST(a model nobody had triggers a refresh and is found if it appeared) {
  start({endpoint("ollama", {"a"}), endpoint("openai", {"c"})});
  CAF_CHECK_EQUAL(endpoints["openai"]->lists, 1);
  endpoints["openai"]->models = {"c", "new"};
  // Within rediscover_min_interval of the last discovery: refused at once, no refresh.
  CAF_CHECK(refusal("new").code == errc::model_not_found);
  CAF_CHECK_EQUAL(endpoints["openai"]->lists, 1);
  wait(5s);
  CAF_CHECK_EQUAL(route_for("new").name, "openai");
  CAF_CHECK_EQUAL(endpoints["openai"]->lists, 2);
}

CAF_TEST(routes wait for the first discovery instead of guessing) {
  auto ollama = endpoint("ollama", {"a"});
  auto openai = endpoint("openai", {"c"});
  endpoints["ollama"]->hold_lists = true;
  endpoints["openai"]->hold_lists = true;
  start({ollama, openai});
  caf::error error;
  auto handle = self->request(aut, caf::infinite, route_atom_v, std::string{"c"}, route_hint{});
  consume_messages();
  CAF_CHECK(self->mailbox().empty());
  release_held_lists();
  handle.receive([](route& r) { CAF_CHECK_EQUAL(r.name, "openai"); },
                 [](caf::error& e) { CAF_FAIL("refused: " << caf::to_string(e)); });
}

CAF_TEST(the model lists are refreshed periodically) {
  start({endpoint("ollama", {"a"})});
  endpoints["ollama"]->models = {"a", "z"};
  wait(60s);
  CAF_CHECK_EQUAL(endpoints["ollama"]->lists, 2);
  CAF_CHECK_EQUAL(route_for("z").name, "ollama");
  // An unchanged list is not logged again.
  wait(60s);
  CAF_CHECK_EQUAL(logged("has 2 model(s)"), 1u);
}

CAF_TEST(a backend that lost a model is asked for its models again) {
  start({endpoint("ollama", {"a", "b"})});
  endpoints["ollama"]->models = {"a"};
  wait(5s);
  report(route_for("b"), errc::model_not_found);
  CAF_CHECK_EQUAL(endpoints["ollama"]->lists, 2);
  CAF_CHECK(refusal("b").code == errc::model_not_found);
  // Not more often than rediscover_min_interval.
  report(route_for("a"), errc::model_not_found);
  CAF_CHECK_EQUAL(endpoints["ollama"]->lists, 2);
}

CAF_TEST(a backend that cannot list its models is tried for unknown ones) {
  auto silent = endpoint("silent", {});
  endpoints["silent"]->list_ok = false;
  start({endpoint("ollama", {"a"}), silent});
  CAF_CHECK_EQUAL(route_for("a").name, "ollama");
  CAF_CHECK_EQUAL(route_for("other").name, "silent");
  wait(60s); // another failed discovery: not logged again
  CAF_CHECK_EQUAL(logged("could not list its models"), 1u);
}

CAF_TEST(the least loaded backend gets the next attempt) {
  start({endpoint("one", {"m"}), endpoint("two", {"m"})});
  auto first = route_for("m");
  auto second = route_for("m");
  CAF_CHECK_NOT_EQUAL(first.name, second.name);
  report(first, errc::no_error);
  // `first` has nothing in flight now, `second` one.
  CAF_CHECK_EQUAL(route_for("m").name, first.name);
  report(second, errc::backend_http_error); // a failure ends an attempt too
  CAF_CHECK_EQUAL(route_for("m").name, second.name);
}

CAF_TEST(round robin and ordered strategies) {
  auto s = settings();
  s.strategy = routing_strategy::ordered;
  start({endpoint("one", {"m"}), endpoint("two", {"m"})}, s);
  CAF_CHECK_EQUAL(route_for("m").name, "one");
  CAF_CHECK_EQUAL(route_for("m").name, "one");
  // ordered: the second is the fallback of a retry.
  CAF_CHECK_EQUAL(route_for("m", {2, "one"}).name, "two");
}

CAF_TEST(a retry avoids the backend that failed it when another serves the model) {
  start({endpoint("one", {"m", "solo"}), endpoint("two", {"m"})});
  CAF_CHECK_EQUAL(route_for("m", {2, "one"}).name, "two");
  CAF_CHECK_EQUAL(route_for("m", {2, "two"}).name, "one");
  // Nobody else serves "solo": the same backend it is.
  CAF_CHECK_EQUAL(route_for("solo", {2, "one"}).name, "one");
}

CAF_TEST(failures open the breaker and after the cool down a probe closes it) {
  metrics::registry gauges{{"one", "two"}};
  auto one = endpoint("one", {"m"});
  one.metrics = gauges.backend("one");
  start({one, endpoint("two", {"m"})});
  auto& shown = *gauges.backend("one");
  CAF_CHECK_EQUAL(shown.health.value(), static_cast<int64_t>(metrics::backend_health::up));
  // Failures that say nothing about the backend do not count.
  for (int i = 0; i < 5; ++i)
    report(route_for("m", {1, "two"}), errc::model_not_found);
  CAF_CHECK(breaker_of("one") == breaker_state::closed);
  for (int i = 0; i < 3; ++i)
    report(route_for("m", {1, "two"}), errc::backend_unreachable);
  CAF_CHECK(breaker_of("one") == breaker_state::open);
  CAF_CHECK_EQUAL(logged("backend one: circuit breaker opened (3 failures in a row)"), 1u);
  CAF_CHECK_EQUAL(shown.breaker.value(), static_cast<int64_t>(metrics::breaker_position::open));
  CAF_CHECK_EQUAL(shown.breaker_opened.value(), 1u);
  // While open, "one" is avoided although it is idle and "two" is busy.
  CAF_CHECK_EQUAL(route_for("m").name, "two");
  CAF_CHECK_EQUAL(route_for("m").name, "two");
  wait(29s);
  CAF_CHECK(breaker_of("one") == breaker_state::open);
  auto probes_before = endpoints["one"]->probes;
  wait(1s);
  // Half-open: probed at once; the fake answers up, which closes it.
  CAF_CHECK_EQUAL(endpoints["one"]->probes, probes_before + 1);
  CAF_CHECK(breaker_of("one") == breaker_state::closed);
  CAF_CHECK_EQUAL(logged("backend one: circuit breaker half-open"), 1u);
  CAF_CHECK_EQUAL(logged("backend one: circuit breaker closed"), 1u);
  CAF_CHECK_EQUAL(logged("circuit breaker opened"), 1u);
  CAF_CHECK_EQUAL(shown.breaker.value(), static_cast<int64_t>(metrics::breaker_position::closed));
  CAF_CHECK_EQUAL(shown.breaker_opened.value(), 1u);
  auto s = status();
  CAF_CHECK_EQUAL(s.backends[0].breaker_opened, 1u);
  CAF_CHECK_EQUAL(s.backends[0].failures, 3u);
}

CAF_TEST(a failed probe after the cool down reopens the breaker) {
  start({endpoint("one", {"m"}), endpoint("two", {"m"})});
  for (int i = 0; i < 3; ++i)
    report(route_for("m", {1, "two"}), errc::connection_dropped);
  CAF_REQUIRE(breaker_of("one") == breaker_state::open);
  endpoints["one"]->probe_ok = false;
  wait(30s);
  CAF_CHECK(breaker_of("one") == breaker_state::open);
  CAF_CHECK_EQUAL(logged("circuit breaker opened"), 2u);
  endpoints["one"]->probe_ok = true;
  wait(30s);
  CAF_CHECK(breaker_of("one") == breaker_state::closed);
}

CAF_TEST(a high failure rate opens the breaker too) {
  start({endpoint("one", {"m"}), endpoint("two", {"m"})});
  // Alternating: never three failures in a row, but from the tenth attempt on at least half of
  // them failed; the next failure opens it.
  for (int i = 0; i < 10; ++i)
    report(route_for("m", {1, "two"}), i % 2 == 0 ? errc::backend_http_error : errc::no_error);
  CAF_CHECK(breaker_of("one") == breaker_state::closed);
  report(route_for("m", {1, "two"}), errc::backend_http_error);
  CAF_CHECK(breaker_of("one") == breaker_state::open);
  CAF_CHECK_EQUAL(logged("6 of 11 attempts"), 1u);
}

CAF_TEST(the only backend of a model is never shut off) {
  start({endpoint("one", {"solo"}), endpoint("two", {"other"})});
  for (int i = 0; i < 3; ++i)
    report(route_for("solo"), errc::backend_unreachable);
  CAF_REQUIRE(breaker_of("one") == breaker_state::open);
  // Still routed there, and said so once, not per task.
  for (int i = 0; i < 4; ++i)
    report(route_for("solo"), errc::backend_unreachable);
  CAF_CHECK_EQUAL(logged("no healthier backend serves solo"), 1u);
  CAF_CHECK_EQUAL(logged("circuit breaker opened"), 1u);
}

CAF_TEST(a backend whose probe fails is avoided and its state is logged once) {
  start({endpoint("one", {"m"}), endpoint("two", {"m"})});
  CAF_CHECK_EQUAL(logged("backend one is up"), 1u);
  endpoints["one"]->probe_ok = false;
  wait(10s);
  wait(10s);
  CAF_CHECK_EQUAL(logged("backend one is down"), 1u);
  for (int i = 0; i < 3; ++i)
    CAF_CHECK_EQUAL(route_for("m").name, "two");
  endpoints["one"]->probe_ok = true;
  wait(10s);
  CAF_CHECK_EQUAL(logged("backend one is up again"), 1u);
  // It came back: its models are asked for again.
  CAF_CHECK_EQUAL(endpoints["one"]->lists, 2);
}

CAF_TEST(a loading backend is a second choice) {
  auto loading = endpoint("loading", {"m"});
  endpoints["loading"]->health = probe_status::loading;
  start({loading, endpoint("ready", {"m"})});
  CAF_CHECK_EQUAL(logged("backend loading is loading its model"), 1u);
  for (int i = 0; i < 3; ++i)
    CAF_CHECK_EQUAL(route_for("m").name, "ready");
}

CAF_TEST(attempts abandoned by their task count neither for nor against a backend) {
  start({endpoint("one", {"m"})});
  for (int i = 0; i < 5; ++i)
    report(route_for("m"), errc::cancelled);
  auto s = status();
  CAF_CHECK(s.backends[0].breaker == breaker_state::closed);
  CAF_CHECK_EQUAL(s.backends[0].outstanding, 0u);
  CAF_CHECK_EQUAL(s.backends[0].failures, 0u);
  CAF_CHECK_EQUAL(s.backends[0].successes, 0u);
}

CAF_TEST(readiness waits for every backends first probe and discovery) {
  auto ollama = endpoint("ollama", {"a"});
  endpoints["ollama"]->hold_lists = true;
  endpoints["ollama"]->probe_ok = false;
  start({ollama, endpoint("openai", {"c"})});
  // The probes answered (one of them down), but one model list is still on its way.
  auto handle = self->request(aut, caf::infinite, router_ready_atom_v);
  consume_messages();
  CAF_CHECK(self->mailbox().empty());
  release_held_lists();
  handle.receive(
      [](router_status& s) {
        CAF_REQUIRE_EQUAL(s.backends.size(), 2u);
        CAF_CHECK(s.backends[0].health == probe_status::down);
        CAF_CHECK(s.backends[1].health == probe_status::up);
        CAF_CHECK(s.backends[0].models_known);
      },
      [](caf::error& e) { CAF_FAIL("no readiness: " << caf::to_string(e)); });
  // Later requests are answered at once.
  CAF_CHECK(try_ready().has_value());
}

CAF_TEST(a first discovery that times out counts as done for readiness) {
  auto slow = endpoint("slow", {"a"});
  endpoints["slow"]->hold_lists = true;
  start({slow});
  auto handle = self->request(aut, caf::infinite, router_ready_atom_v);
  consume_messages();
  CAF_CHECK(self->mailbox().empty());
  wait(5s); // probe_timeout
  CAF_REQUIRE(!self->mailbox().empty());
  handle.receive([](router_status& s) { CAF_CHECK(!s.backends[0].models_known); },
                 [](caf::error& e) { CAF_FAIL("no readiness: " << caf::to_string(e)); });
}

CAF_TEST(with probes and discovery off the router is ready at once) {
  auto s = settings();
  s.health_interval = 0s;
  s.discovery_interval = 0s;
  start({endpoint("one", {}, {"m"})}, s);
  CAF_CHECK(try_ready().has_value());
  CAF_CHECK_EQUAL(endpoints["one"]->probes, 0);
}

CAF_TEST(without backends every task fails with no_backend) {
  start({});
  CAF_CHECK(refusal("a").code == errc::no_backend);
}

CAF_TEST_FIXTURE_SCOPE_END()
