#define CAF_SUITE mcp_session
#include <caf/test/dsl.hpp>

#include "actors/usage_db.hpp"
#include "protocol/mcp.hpp"
#include "tests/actors/counter_fixtures.hpp"
#include "tests/actors/fakes.hpp"

#include <nlohmann/json.hpp>

using namespace offload;
using namespace offload::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

struct fixture : test_coordinator_fixture<> {
  std::shared_ptr<std::vector<std::string>> seen = std::make_shared<std::vector<std::string>>();
  router_actor router = spawn_scripted_router(sys, seen);
  std::shared_ptr<std::vector<std::string>> sent = std::make_shared<std::vector<std::string>>();
  // The `related` tag of each sent message, in the same order.
  std::shared_ptr<std::vector<std::string>> related = std::make_shared<std::vector<std::string>>();
  mcp_session_actor aut = make_session({});
  // Injected wall clock of the policy counters.
  std::chrono::system_clock::time_point wall_now =
      std::chrono::system_clock::from_time_t(1'800'000'020); // a UTC minute boundary plus 20 s
  bucket_registry_actor registry;

  mcp_session_actor make_session(policy_context policy, usage_context usage = {}) {
    return spawn_mcp_session(
        sys, {"test", "9.9.9", "agent-a"},
        [out = sent, tags = related](std::string text, const std::string& tag) {
          out->push_back(std::move(text));
          tags->push_back(tag);
        },
        router, test_settings(5s, 60s), std::move(policy), std::move(usage));
  }

  // Replaces the session under test by one that records usage in a ledger at `file`.
  void use_ledger(const temp_db& file) {
    caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
    ledger = spawn_usage_ledger(sys, file.path, store_threading::scheduled);
    auto prices = std::make_shared<const price_table>(default_price_table());
    aut = make_session({}, usage_context{ledger, "run-t", prices, [this] { return wall_now; }});
    consume_messages();
    initialize();
  }
  usage_ledger_actor ledger;

  // Replaces the session under test by one that enforces `yaml`, and initializes it.
  void use_policy(const std::string& yaml) {
    auto parsed = parse_policy(yaml, "test.yaml");
    CAF_REQUIRE(parsed.value != nullptr);
    caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
    auto clock = [this] { return wall_now; };
    registry = spawn_bucket_registry(sys, clock);
    aut = make_session(policy_context{parsed.value, registry, clock, {}});
    consume_messages();
    initialize();
  }

  ~fixture() override {
    caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
    if (registry)
      caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
    if (ledger)
      caf::anon_send_exit(ledger, caf::exit_reason::user_shutdown);
    consume_messages();
  }

  // Sends one line to the session and returns everything it wrote in response.
  std::vector<json> exchange(const std::string& line) {
    sent->clear();
    related->clear();
    self->send(aut, mcp_in_atom_v, line);
    consume_messages();
    std::vector<json> out;
    for (const auto& text : *sent) {
      CAF_CHECK_EQUAL(text.find('\n'), std::string::npos);
      out.push_back(json::parse(text));
    }
    return out;
  }

  json one(const std::string& line) {
    auto out = exchange(line);
    CAF_REQUIRE_EQUAL(out.size(), 1u);
    return out[0];
  }

  void initialize() {
    auto reply = one(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":)"
                     R"({"protocolVersion":"2025-06-18","capabilities":{},)"
                     R"("clientInfo":{"name":"t","version":"1"}}})");
    CAF_REQUIRE(reply.contains("result"));
    CAF_REQUIRE(exchange(R"({"jsonrpc":"2.0","method":"notifications/initialized"})").empty());
  }

  json call(int id, const json& name, const json& args) {
    json msg = {{"jsonrpc", "2.0"},
                {"id", id},
                {"method", "tools/call"},
                {"params", {{"name", name}, {"arguments", args}}}};
    return one(msg.dump());
  }
};

int error_code(const json& reply) {
  CAF_REQUIRE(reply.contains("error"));
  return reply["error"]["code"].get<int>();
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(mcp_session_tests, fixture)

CAF_TEST(initialize negotiates the version and reports the server) {
  auto reply = one(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":)"
                   R"({"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{}}})");
  CAF_CHECK_EQUAL(reply["id"].get<int>(), 1);
  CAF_CHECK_EQUAL(reply["result"]["protocolVersion"].get<std::string>(), "2025-03-26");
  CAF_CHECK_EQUAL(reply["result"]["serverInfo"]["version"].get<std::string>(), "9.9.9");
  CAF_CHECK(reply["result"]["capabilities"].contains("tools"));
  auto again = one(R"({"jsonrpc":"2.0","id":2,"method":"initialize","params":)"
                   R"({"protocolVersion":"2025-03-26"}})");
  CAF_CHECK_EQUAL(error_code(again), -32600);
}

CAF_TEST(malformed json gets a parse error and the session keeps working) {
  auto reply = one("{\"jsonrpc\":\"2.0\",\"id\":1,");
  CAF_CHECK_EQUAL(error_code(reply), -32700);
  CAF_CHECK(reply["id"].is_null());
  auto pong = one(R"({"jsonrpc":"2.0","id":"p","method":"ping"})");
  CAF_CHECK(pong["result"].is_object());
}

CAF_TEST(requests before initialize are refused except ping) {
  CAF_CHECK_EQUAL(error_code(one(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})")), -32600);
  CAF_CHECK(one(R"({"jsonrpc":"2.0","id":2,"method":"ping"})").contains("result"));
}

CAF_TEST(unknown methods and bad params get precise errors) {
  initialize();
  CAF_CHECK_EQUAL(error_code(one(R"({"jsonrpc":"2.0","id":1,"method":"nope/nope"})")), -32601);
  CAF_CHECK_EQUAL(error_code(one(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{}})")),
                  -32602);
  auto unknown = call(3, "no_such_tool", json::object());
  CAF_CHECK_EQUAL(error_code(unknown), -32602);
  CAF_CHECK_NOT_EQUAL(unknown["error"]["message"].get<std::string>().find("batch_offload"),
                      std::string::npos);
  CAF_CHECK_EQUAL(error_code(one(R"([{"jsonrpc":"2.0","id":4,"method":"ping"}])")), -32600);
}

CAF_TEST(notifications and stray responses get no reply) {
  initialize();
  CAF_CHECK(exchange(R"({"jsonrpc":"2.0","method":"notifications/whatever"})").empty());
  CAF_CHECK(exchange(R"({"jsonrpc":"2.0","id":5,"result":{}})").empty());
}

CAF_TEST(tools list shows every tool in one page by default) {
  initialize();
  auto reply = one(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  CAF_CHECK_EQUAL(reply["result"]["tools"], mcp::tool_catalogue());
  CAF_CHECK(!reply["result"].contains("nextCursor"));
}

CAF_TEST(tools list pages with a cursor and rejects a bad one) {
  auto settings = std::make_shared<engine_settings>(*test_settings(5s, 60s));
  settings->tools_page_size = 2;
  caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
  aut = spawn_mcp_session(
      sys, {"test", "9.9.9", ""},
      [out = sent](std::string text, const std::string&) { out->push_back(std::move(text)); },
      router, settings, {});
  initialize();
  // Page after page, two tools each, until there is no next cursor: the whole catalogue, once.
  json names = json::array();
  json next = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}};
  for (int page = 0; page < 10; ++page) {
    auto reply = one(next.dump());
    const auto& tools = reply["result"]["tools"];
    CAF_REQUIRE(tools.size() >= 1 && tools.size() <= 2);
    for (const auto& tool : tools)
      names.push_back(tool["name"]);
    if (!reply["result"].contains("nextCursor"))
      break;
    CAF_REQUIRE_EQUAL(tools.size(), 2u);
    next["params"] = {{"cursor", reply["result"]["nextCursor"]}};
  }
  json all = json::array();
  for (const auto& tool : mcp::tool_catalogue())
    all.push_back(tool["name"]);
  CAF_CHECK_EQUAL(names, all);
  CAF_CHECK_EQUAL(error_code(one(R"({"jsonrpc":"2.0","id":3,"method":"tools/list",)"
                                 R"("params":{"cursor":"bogus"}})")),
                  -32602);
}

CAF_TEST(the model tools run on the router s backends) {
  initialize();
  auto loaded = call(20, "list_loaded_models", json::object());
  const auto& result = loaded["result"];
  CAF_CHECK(!result["isError"].get<bool>());
  CAF_REQUIRE_EQUAL(result["structuredContent"]["models"].size(), 1u);
  CAF_CHECK_EQUAL(result["structuredContent"]["models"][0]["backend"].get<std::string>(),
                  "scripted");
  auto preloaded = call(21, "preload_model", json{{"model", "test-model"}});
  CAF_CHECK(!preloaded["result"]["isError"].get<bool>());
  CAF_CHECK_EQUAL(preloaded["result"]["structuredContent"]["keep_alive"].get<std::string>(), "-1");
  auto invalid = call(22, "pull_model", json::object());
  CAF_CHECK(invalid["result"]["isError"].get<bool>());
  CAF_CHECK_EQUAL(invalid["result"]["content"][0]["text"].get<std::string>().rfind(
                      "Invalid arguments for pull_model: model:", 0),
                  0u);
  auto missing = call(23, "pull_model", json{{"model", "missing:1b"}});
  CAF_CHECK(missing["result"]["isError"].get<bool>());
}

CAF_TEST(a pull relays progress to a call that asked for it) {
  initialize();
  auto out = exchange(R"({"jsonrpc":"2.0","id":30,"method":"tools/call","params":)"
                      R"({"name":"pull_model","arguments":{"model":"m"},)"
                      R"("_meta":{"progressToken":"tok"}}})");
  CAF_REQUIRE_EQUAL(out.size(), 3u);
  CAF_CHECK_EQUAL(out[0]["method"].get<std::string>(), "notifications/progress");
  CAF_CHECK_EQUAL(out[0]["params"]["progressToken"].get<std::string>(), "tok");
  CAF_CHECK_EQUAL(out[0]["params"]["message"].get<std::string>(), "pulling manifest");
  CAF_CHECK(!out[0]["params"].contains("total"));
  CAF_CHECK_EQUAL(out[1]["params"]["progress"].get<double>(), 100.0);
  CAF_CHECK_EQUAL(out[1]["params"]["total"].get<double>(), 100.0);
  CAF_CHECK_EQUAL(out[2]["id"].get<int>(), 30);
  CAF_CHECK_EQUAL(out[2]["result"]["structuredContent"]["status"].get<std::string>(), "success");
  // Every message of the call is tagged with its request.
  CAF_CHECK_EQUAL(*related, (std::vector<std::string>{"30", "30", "30"}));
  // Without a token, no notifications.
  auto quiet = call(31, "pull_model", json{{"model", "m"}});
  CAF_CHECK(!quiet["result"]["isError"].get<bool>());
}

CAF_TEST(bad tool arguments are an error result naming the field) {
  initialize();
  auto reply = call(1, "batch_offload", json{{"tasks", json::array()}});
  CAF_CHECK(reply["result"]["isError"].get<bool>());
  auto text = reply["result"]["content"][0]["text"].get<std::string>();
  CAF_CHECK_EQUAL(text.rfind("Invalid arguments for batch_offload: tasks:", 0), 0u);
  // Nothing was started for the bad call.
  CAF_CHECK(seen->empty());
}

CAF_TEST(a batch call answers with text and structured content) {
  initialize();
  auto reply =
      call(7, "batch_offload", json{{"tasks", {{{"task", "alpha"}}, {{"task", "fail beta"}}}}});
  CAF_CHECK_EQUAL(reply["id"].get<int>(), 7);
  const auto& result = reply["result"];
  CAF_CHECK(!result["isError"].get<bool>());
  const auto& tasks = result["structuredContent"]["tasks"];
  CAF_REQUIRE_EQUAL(tasks.size(), 2u);
  CAF_CHECK_EQUAL(tasks[0]["text"].get<std::string>(), "echo:alpha");
  CAF_CHECK_EQUAL(tasks[1]["error"]["code"].get<std::string>(), "backend_http_error");
  auto text = result["content"][0]["text"].get<std::string>();
  CAF_CHECK_NOT_EQUAL(text.find("Summary: 1 of 2 tasks succeeded"), std::string::npos);
}

CAF_TEST(reloaded engine settings apply to the calls that follow) {
  initialize();
  auto three = json{{"tasks", {{{"task", "a"}}, {{"task", "b"}}, {{"task", "c"}}}}};
  CAF_CHECK(!call(1, "batch_offload", three)["result"]["isError"].get<bool>());
  auto reloaded = std::make_shared<engine_settings>(*test_settings(5s, 60s));
  reloaded->limits.max_tasks = 2;
  reloaded->default_model = "other-model";
  self->send(aut, new_engine_atom_v, engine_settings_ptr{reloaded});
  consume_messages();
  auto refused = call(2, "batch_offload", three);
  CAF_CHECK(refused["result"]["isError"].get<bool>());
  auto text = refused["result"]["content"][0]["text"].get<std::string>();
  CAF_CHECK_NOT_EQUAL(text.find("the limit is 2 per batch"), std::string::npos);
  auto one_task = call(3, "offload_work", json{{"task", "d"}});
  CAF_CHECK_EQUAL(one_task["result"]["structuredContent"]["tasks"][0]["model"].get<std::string>(),
                  "other-model");
}

CAF_TEST(when every task fails the result is an error) {
  initialize();
  auto reply = call(8, "offload_work", json{{"task", "fail please"}});
  CAF_CHECK(reply["result"]["isError"].get<bool>());
  CAF_CHECK_NOT_EQUAL(
      reply["result"]["content"][0]["text"].get<std::string>().find("FALLBACK_TO_CLOUD"),
      std::string::npos);
}

CAF_TEST(a cancelled call sends no response) {
  initialize();
  auto none = exchange(R"({"jsonrpc":"2.0","id":9,"method":"tools/call","params":)"
                       R"({"name":"offload_work","arguments":{"task":"hang"}}})");
  CAF_CHECK(none.empty());
  CAF_CHECK(exchange(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":)"
                     R"({"requestId":9,"reason":"user"}})")
                .empty());
  // The call's deadline passes later: still nothing is sent for it.
  trigger_timeouts();
  consume_messages();
  CAF_CHECK(sent->empty());
}

CAF_TEST(closing waits for running calls and then stops the session) {
  initialize();
  CAF_CHECK(exchange(R"({"jsonrpc":"2.0","id":11,"method":"tools/call","params":)"
                     R"({"name":"offload_work","arguments":{"task":"hang"}}})")
                .empty());
  self->monitor(aut);
  self->send(aut, mcp_eof_atom_v);
  consume_messages();
  CAF_CHECK(sent->empty());
  CAF_CHECK(trigger_timeout()); // the task's deadline: the call answers
  consume_messages();
  CAF_REQUIRE_EQUAL(sent->size(), 1u);
  CAF_CHECK(json::parse(sent->at(0))["result"]["isError"].get<bool>());
  expect((caf::down_msg), from(aut).to(self).with(_));
}

CAF_TEST(a policy hides tools from the list and denies hidden calls) {
  use_policy("version: \"1\"\nhide: [offload_work, compress_context, list_loaded_models, "
             "preload_model, pull_model]\ntools:\n  batch_offload:\n   "
             " rules: []\n");
  auto list = one(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  std::vector<std::string> names;
  for (const auto& tool : list["result"]["tools"])
    names.push_back(tool["name"].get<std::string>());
  CAF_CHECK_EQUAL(names.size(), mcp::tool_catalogue().size() - 5);
  CAF_CHECK_EQUAL(names.front(), "batch_offload");
  CAF_CHECK(std::count(names.begin(), names.end(), "offload_work") == 0);
  CAF_CHECK(std::count(names.begin(), names.end(), "compress_context") == 0);
  auto denied = call(2, "offload_work", json{{"task", "x"}});
  CAF_CHECK(denied["result"]["isError"].get<bool>());
  CAF_CHECK_EQUAL(
      denied["result"]["content"][0]["text"].get<std::string>().rfind("[POLICY DENIED] ", 0), 0u);
  CAF_CHECK(seen->empty());
}

CAF_TEST(a rate limit allows exactly N calls per window and then says when to retry) {
  use_policy("version: \"1\"\ntools:\n  offload_work:\n    rules:\n"
             "      - name: two a minute\n        rate_limit: \"2/minute\"\n");
  CAF_CHECK(!call(1, "offload_work", json{{"task", "a"}})["result"]["isError"].get<bool>());
  CAF_CHECK(!call(2, "offload_work", json{{"task", "b"}})["result"]["isError"].get<bool>());
  auto third = call(3, "offload_work", json{{"task", "c"}});
  CAF_REQUIRE(third["result"]["isError"].get<bool>());
  CAF_CHECK_EQUAL(third["result"]["content"][0]["text"].get<std::string>(),
                  "[POLICY DENIED] Rate limit of 2 per minute reached. Try again later.");
  CAF_CHECK_EQUAL(third["result"]["structuredContent"]["policy"]["retry_after_seconds"].get<int>(),
                  40);
  CAF_CHECK_EQUAL(seen->size(), 2u);
  // The next UTC minute has a fresh budget.
  wall_now += 40s;
  CAF_CHECK(!call(4, "offload_work", json{{"task", "d"}})["result"]["isError"].get<bool>());
}

CAF_TEST(a call that ends in a json rpc error gives its quota back) {
  use_policy("version: \"1\"\ntools:\n  \"*\":\n    rules:\n"
             "      - name: two a minute\n        rate_limit: \"2/minute\"\n");
  // An unknown tool passes the wildcard rule, then fails with -32602: given back.
  CAF_CHECK_EQUAL(error_code(call(1, "no_such_tool", json::object())), -32602);
  // An isError result (bad arguments) counts, as in Intercept.
  auto bad = call(2, "offload_work", json{{"language", "go"}});
  CAF_CHECK_NOT_EQUAL(bad["result"]["content"][0]["text"].get<std::string>().find("Invalid"),
                      std::string::npos);
  CAF_CHECK(!call(3, "offload_work", json{{"task", "a"}})["result"]["isError"].get<bool>());
  auto fourth = call(4, "offload_work", json{{"task", "b"}});
  CAF_CHECK_NOT_EQUAL(fourth["result"]["content"][0]["text"].get<std::string>().find(
                          "[POLICY DENIED] Rate limit of 2 per minute"),
                      std::string::npos);
}

CAF_TEST(a call with a progress token hears each task finish and a heartbeat meanwhile) {
  initialize();
  auto out = exchange(R"({"jsonrpc":"2.0","id":"p1","method":"tools/call","params":)"
                      R"({"name":"batch_offload","_meta":{"progressToken":"tok"},)"
                      R"("arguments":{"tasks":[{"task":"quick"},{"task":"hang slow"}]}}})");
  // One task finished: progress 1 of 2, on the call's own stream.
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK_EQUAL(out[0]["method"].get<std::string>(), "notifications/progress");
  CAF_CHECK_EQUAL(out[0]["params"]["progressToken"].get<std::string>(), "tok");
  CAF_CHECK_EQUAL(out[0]["params"]["progress"].get<double>(), 1.0);
  CAF_CHECK_EQUAL(out[0]["params"]["total"].get<int>(), 2);
  CAF_CHECK_EQUAL(related->at(0), R"("p1")");
  // While the other generates, heartbeats keep the client's timeout from firing, increasing
  // but staying below the next whole task.
  sent->clear();
  advance_time(2s);
  consume_messages();
  advance_time(2s);
  consume_messages();
  CAF_REQUIRE_EQUAL(sent->size(), 2u);
  auto beat1 = json::parse(sent->at(0))["params"]["progress"].get<double>();
  auto beat2 = json::parse(sent->at(1))["params"]["progress"].get<double>();
  CAF_CHECK_GREATER(beat1, 1.0);
  CAF_CHECK_GREATER(beat2, beat1);
  CAF_CHECK_LESS(beat2, 2.0);
  CAF_CHECK_NOT_EQUAL(
      json::parse(sent->at(1))["params"]["message"].get<std::string>().find("still generating"),
      std::string::npos);
}

CAF_TEST(a call without a progress token gets no progress) {
  initialize();
  auto out =
      exchange(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":)"
               R"({"name":"batch_offload","arguments":{"tasks":[{"task":"a"},{"task":"b"}]}}})");
  CAF_REQUIRE_EQUAL(out.size(), 1u);
  CAF_CHECK(out[0].contains("result"));
}

CAF_TEST(logging set level sends call events at or above the level and rejects bad levels) {
  initialize();
  CAF_CHECK(one(R"({"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"info"}})")
                .contains("result"));
  auto out = exchange(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":)"
                      R"({"name":"offload_work","arguments":{"task":"a"}}})");
  CAF_REQUIRE_EQUAL(out.size(), 3u); // call started, call finished, the result
  CAF_CHECK_EQUAL(out[0]["method"].get<std::string>(), "notifications/message");
  CAF_CHECK_EQUAL(out[0]["params"]["level"].get<std::string>(), "info");
  CAF_CHECK_EQUAL(out[0]["params"]["data"]["event"].get<std::string>(), "call_started");
  CAF_CHECK_EQUAL(related->at(0), "2");
  CAF_CHECK(out[2].contains("result"));
  // Above the level: nothing but the result.
  CAF_CHECK(
      one(R"({"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"error"}})")
          .contains("result"));
  CAF_CHECK_EQUAL(exchange(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":)"
                           R"({"name":"offload_work","arguments":{"task":"a"}}})")
                      .size(),
                  1u);
  CAF_CHECK_EQUAL(error_code(one(R"({"jsonrpc":"2.0","id":5,"method":"logging/setLevel",)"
                                 R"("params":{"level":"loud"}})")),
                  -32602);
}

CAF_TEST(shutdown drains then cancels what is left and every call still answers) {
  initialize();
  CAF_CHECK(exchange(R"({"jsonrpc":"2.0","id":6,"method":"tools/call","params":)"
                     R"({"name":"batch_offload","arguments":{"tasks":[{"task":"done"},)"
                     R"({"task":"hang"}]}}})")
                .empty());
  self->monitor(aut);
  self->send(aut, shutdown_atom_v);
  consume_messages();
  // Draining: the call keeps running, new requests are refused.
  CAF_CHECK(sent->empty());
  CAF_CHECK_EQUAL(error_code(one(R"({"jsonrpc":"2.0","id":7,"method":"tools/list"})")), -32600);
  sent->clear();
  // A second shutdown (a second signal, or the end of the grace period) cancels.
  self->send(aut, shutdown_atom_v);
  consume_messages();
  CAF_REQUIRE_EQUAL(sent->size(), 1u);
  auto result = json::parse(sent->at(0))["result"];
  CAF_CHECK(!result["isError"].get<bool>());
  const auto& tasks = result["structuredContent"]["tasks"];
  CAF_CHECK_EQUAL(tasks[0]["status"].get<std::string>(), "ok");
  CAF_CHECK_EQUAL(tasks[1]["status"].get<std::string>(), "cancelled");
  CAF_CHECK_EQUAL(result["structuredContent"]["totals"]["cancelled"].get<int>(), 1);
  expect((caf::down_msg), from(aut).to(self).with(_));
}

CAF_TEST(a call that finishes within the grace period is answered normally) {
  initialize();
  CAF_CHECK(exchange(R"({"jsonrpc":"2.0","id":8,"method":"tools/call","params":)"
                     R"({"name":"offload_work","arguments":{"task":"hang"}}})")
                .empty());
  self->monitor(aut);
  self->send(aut, shutdown_atom_v);
  consume_messages();
  CAF_CHECK(trigger_timeout()); // the task's own deadline (5 s) comes before the grace (30 s)
  consume_messages();
  CAF_REQUIRE_EQUAL(sent->size(), 1u);
  auto result = json::parse(sent->at(0))["result"];
  CAF_CHECK_EQUAL(result["structuredContent"]["tasks"][0]["error"]["code"].get<std::string>(),
                  "timeout");
  expect((caf::down_msg), from(aut).to(self).with(_));
}

CAF_TEST(responses to requests we never sent are ignored) {
  initialize();
  CAF_CHECK(exchange(R"({"jsonrpc":"2.0","id":"offload-99","result":{}})").empty());
  CAF_CHECK(one(R"({"jsonrpc":"2.0","id":1,"method":"ping"})").contains("result"));
}

CAF_TEST(the usage tools say so when the ledger is off) {
  initialize();
  auto reply = call(1, "cost_dashboard", json::object());
  CAF_CHECK(reply["result"]["isError"].get<bool>());
  CAF_CHECK_NOT_EQUAL(
      reply["result"]["content"][0]["text"].get<std::string>().find("usage ledger is off"),
      std::string::npos);
}

CAF_TEST(cost_dashboard and get_metrics show the recorded tasks and record nothing) {
  temp_db file{"offload-session-usage"};
  use_ledger(file);
  call(1, "batch_offload", json{{"tasks", {{{"task", "alpha"}}, {{"task", "fail beta"}}}}});
  auto dashboard = call(2, "cost_dashboard", json{{"period", "day"}});
  const auto& result = dashboard["result"];
  CAF_CHECK(!result["isError"].get<bool>());
  const auto& figures = result["structuredContent"];
  CAF_CHECK_EQUAL(figures["since"].get<std::string>(), "2027-01-15");
  CAF_CHECK_EQUAL(figures["totals"]["tasks"].get<int64_t>(), 2);
  CAF_CHECK_EQUAL(figures["totals"]["ok"].get<int64_t>(), 1);
  CAF_CHECK_EQUAL(figures["by_agent"][0]["agent"].get<std::string>(), "agent-a");
  CAF_CHECK_EQUAL(figures["by_tool"][0]["tool"].get<std::string>(), "batch_offload");
  auto text = result["content"][0]["text"].get<std::string>();
  CAF_CHECK_NOT_EQUAL(text.find("tasks: 2 (1 ok, 1 error"), std::string::npos);

  auto metrics = call(3, "get_metrics", json{{"format", "prometheus"}});
  text = metrics["result"]["content"][0]["text"].get<std::string>();
  CAF_CHECK_NOT_EQUAL(text.find("offload_tasks_total{tool=\"batch_offload\",outcome=\"ok\"} 1\n"),
                      std::string::npos);
  auto as_json = call(4, "get_metrics", json::object());
  auto parsed = json::parse(as_json["result"]["content"][0]["text"].get<std::string>());
  // The read tools themselves are not tasks: still the batch's two.
  CAF_CHECK_EQUAL(parsed["totals"]["tasks"].get<int64_t>(), 2);
  CAF_CHECK_EQUAL(parsed, as_json["result"]["structuredContent"]);
  CAF_CHECK_EQUAL(usage_db(file.path, 100ms).records(0).size(), 2u);
  CAF_CHECK_EQUAL(seen->size(), 2u); // no backend was asked for the read tools
}

CAF_TEST(bad arguments of the usage tools are an error result naming the field) {
  temp_db file{"offload-session-usage"};
  use_ledger(file);
  auto reply = call(1, "get_metrics", json{{"format", "xml"}});
  CAF_CHECK(reply["result"]["isError"].get<bool>());
  CAF_CHECK_EQUAL(reply["result"]["content"][0]["text"].get<std::string>().rfind(
                      "Invalid arguments for get_metrics: format must be one of", 0),
                  0u);
  reply = call(2, "cost_dashboard", json{{"period", 3}});
  CAF_CHECK_EQUAL(reply["result"]["content"][0]["text"].get<std::string>().rfind(
                      "Invalid arguments for cost_dashboard: period", 0),
                  0u);
}

CAF_TEST(without the conformance profile its fixtures do not exist) {
  initialize();
  CAF_CHECK_EQUAL(error_code(one(R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})")), -32601);
  CAF_CHECK_EQUAL(error_code(call(2, "test_simple_text", json::object())), -32602);
}

CAF_TEST(the conformance profile serves fixtures and asks the client for sampling) {
  auto settings = std::make_shared<engine_settings>(*test_settings(5s, 60s));
  settings->profile = "conformance";
  caf::anon_send_exit(aut, caf::exit_reason::user_shutdown);
  aut = spawn_mcp_session(
      sys, {"test", "9.9.9", ""},
      [out = sent](std::string text, const std::string&) { out->push_back(std::move(text)); },
      router, settings, {});
  auto init = one(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":)"
                  R"({"protocolVersion":"2025-11-25","capabilities":{},)"
                  R"("clientInfo":{"name":"t","version":"1"}}})");
  CAF_CHECK(init["result"]["capabilities"].contains("prompts"));
  auto tools = one(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})")["result"]["tools"];
  CAF_CHECK((tools[0]["name"]) == ("batch_offload"));
  CAF_CHECK(tools.size() > 3u);
  auto read = one(R"({"jsonrpc":"2.0","id":2,"method":"resources/read",)"
                  R"("params":{"uri":"test://static-text"}})");
  CAF_CHECK((read["result"]["contents"][0]["uri"]) == ("test://static-text"));
  auto request = call(3, "test_sampling", {{"prompt", "hi"}});
  CAF_REQUIRE_EQUAL(request["method"], "sampling/createMessage");
  json response = {{"jsonrpc", "2.0"},
                   {"id", request["id"]},
                   {"result",
                    {{"role", "assistant"},
                     {"content", {{"type", "text"}, {"text", "hello"}}},
                     {"model", "m"}}}};
  auto answer = one(response.dump());
  CAF_CHECK((answer["id"]) == (3));
  CAF_CHECK((answer["result"]["content"][0]["text"]) == ("LLM response: hello"));
}

CAF_TEST_FIXTURE_SCOPE_END()
