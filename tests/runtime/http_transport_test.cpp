// The HTTP transport over real sockets, with a scripted session actor in place of mcp_session:
// it can send notifications related to a request, hold a request unanswered, and send
// session-wide messages, which the real session cannot (yet) be made to do on demand.
#define CAF_SUITE http_transport
#include <caf/test/unit_test.hpp>

#include "protocol/jsonrpc.hpp"
#include "runtime/http_transport.hpp"
#include "tests/runtime/http_test_client.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>

#include <future>
#include <mutex>
#include <thread>

using namespace offload;
using namespace offload::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace net = boost::asio;

namespace {

struct scripted_session_state {
  output_sink out;
  std::vector<json> held; // ids of "hold" requests, answered by "release"
  static constexpr const char* name = "scripted_session";
};

// initialize: echoes the requested version (or fails when params.fail is set); notify: sends
// params.count progress notifications, then the result; hold: one notification, no answer yet;
// release: finishes every held request (a notification and its result), then answers; broadcast:
// a session-wide notification, then the result; wait: nothing at all.
mcp_session_actor::behavior_type
scripted_session(mcp_session_actor::stateful_pointer<scripted_session_state> self,
                 output_sink out) {
  self->state.out = std::move(out);
  return {
      [self](mcp_in_atom, std::string& text) {
        auto msg = json::parse(text);
        if (!msg.contains("id") || !msg.contains("method"))
          return; // notifications and responses need no answer
        auto& st = self->state;
        auto id = msg["id"];
        auto method = msg["method"].get<std::string>();
        auto params = msg.value("params", json::object());
        auto answer = [&](const json& rid, const json& result) {
          st.out(jsonrpc::make_result(rid, result), rid.dump());
        };
        auto progress = [&](const json& rid, int n) {
          st.out(jsonrpc::make_notification("notifications/progress", {{"progress", n}}),
                 rid.dump());
        };
        if (method == "initialize") {
          if (params.value("fail", false))
            return st.out(jsonrpc::make_error(id, -32602, "refused"), id.dump());
          answer(id, {{"protocolVersion", params.value("protocolVersion", "2025-11-25")}});
        } else if (method == "notify") {
          for (int i = 0; i < params.value("count", 1); ++i)
            progress(id, i);
          answer(id, {{"done", true}});
        } else if (method == "wait") {
          // never answered (until the client cancels it)
        } else if (method == "hold") {
          progress(id, 0);
          st.held.push_back(id);
        } else if (method == "release") {
          for (const auto& held : st.held) {
            progress(held, 1);
            answer(held, {{"released", true}});
          }
          st.held.clear();
          answer(id, json::object());
        } else if (method == "broadcast") {
          st.out(jsonrpc::make_notification("notifications/message", {{"data", params["text"]}}),
                 "");
          answer(id, json::object());
        } else {
          st.out(jsonrpc::make_error(id, -32601, "unknown method"), id.dump());
        }
      },
      [self](mcp_eof_atom) { self->quit(); },
      [](new_policy_atom, policy_ptr&) {},
      [](new_engine_atom, engine_settings_ptr&) {},
      [](progress_atom, uint64_t, size_t, size_t) {},
      [](heartbeat_atom, uint64_t) {},
      [](tool_progress_atom, uint64_t, double, double, std::string&) {},
      [self](shutdown_atom) { self->quit(); },
  };
}

// A value inside a JSON text, copied out: CAF's checks bind references to their arguments, which
// must not point into a temporary.
json value_at(const std::string& text, const std::string& pointer) {
  return json::parse(text).at(json::json_pointer{pointer});
}

using headers = std::map<std::string, std::string>;
using response = client_http::response<client_http::string_body>;

struct fixture {
  caf::actor_system_config actor_config;
  caf::actor_system sys{actor_config};
  net::io_context io{1};
  net::executor_work_guard<net::io_context::executor_type> work = net::make_work_guard(io);
  std::thread io_thread;
  metrics::registry_ptr metrics = std::make_shared<metrics::registry>();
  std::mutex agents_mutex;
  std::vector<std::string> agents; // of every spawned session, in order
  std::unique_ptr<http_transport> transport;
  unsigned short port = 0;

  void start(const std::function<void(http_transport_settings&)>& adjust = {}) {
    http_transport_settings settings;
    settings.listen = {net::ip::make_address("127.0.0.1"), 0};
    settings.session_idle_timeout = 1h;
    settings.max_sessions = 8;
    settings.max_body_bytes = 4096;
    settings.max_inflight_per_session = 2;
    settings.sse_retry = 50ms;
    settings.event_buffer = 16;
    settings.event_buffer_bytes = 1 << 20;
    settings.read_timeout = 10s;
    settings.write_timeout = 10s;
    if (adjust)
      adjust(settings);
    transport = std::make_unique<http_transport>(
        io, settings,
        [this](session_settings session, output_sink sink) {
          std::lock_guard<std::mutex> guard{agents_mutex};
          agents.push_back(session.agent);
          return sys.spawn(scripted_session, std::move(sink));
        },
        metrics);
    port = transport->local_endpoint().port();
    net::post(io, [this] {
      transport->start();
      transport->set_health(health_state::ready);
    });
    io_thread = std::thread{[this] { io.run(); }};
  }

  ~fixture() {
    if (!transport)
      return;
    std::promise<std::vector<mcp_session_actor>> stopped;
    auto ended = stopped.get_future();
    net::post(io, [&] { stopped.set_value(transport->stop()); });
    caf::scoped_actor self{sys};
    for (auto& session : ended.get())
      self->wait_for(session);
    work.reset();
    io.stop();
    io_thread.join();
    transport.reset();
  }

  static headers post_headers(const std::string& session = "") {
    headers out{{"Content-Type", "application/json"},
                {"Accept", "application/json, text/event-stream"}};
    if (!session.empty())
      out["Mcp-Session-Id"] = session;
    return out;
  }

  static std::string request(int id, const std::string& method,
                             const json& params = json::object()) {
    return json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump();
  }

  response exchange(const std::string& method, const std::string& target, const headers& h,
                    const std::string& body = "") {
    http_test_client client{port};
    client.send(method, target, h, body);
    return client.read();
  }

  response post(const std::string& session, const std::string& body) {
    return exchange("POST", "/mcp", post_headers(session), body);
  }

  // Initializes a session and returns its id.
  std::string initialize(const std::string& version = "2025-11-25", headers extra = {}) {
    auto h = post_headers();
    h.insert(extra.begin(), extra.end());
    auto res =
        exchange("POST", "/mcp", h, request(1, "initialize", {{"protocolVersion", version}}));
    CAF_REQUIRE_EQUAL(res.result_int(), 200u);
    auto id = std::string{res["Mcp-Session-Id"]};
    CAF_REQUIRE(!id.empty());
    return id;
  }

  static int error_code(const response& res) {
    return json::parse(res.body()).at("error").at("code").get<int>();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(http_transport_tests, fixture)

CAF_TEST(initialize answers with JSON and a fresh session id) {
  start();
  auto res = post("", request(1, "initialize", {{"protocolVersion", "2025-06-18"}}));
  CAF_CHECK_EQUAL(res.result_int(), 200u);
  CAF_CHECK_EQUAL(std::string{res[client_http::field::content_type]}, "application/json");
  auto id = std::string{res["Mcp-Session-Id"]};
  CAF_CHECK_EQUAL(id.size(), 32u);
  auto body = json::parse(res.body());
  CAF_CHECK_EQUAL(body["result"]["protocolVersion"], "2025-06-18");
  CAF_CHECK_NOT_EQUAL(initialize(), id);
  CAF_CHECK_EQUAL(transport->session_count(), 2u);
}

CAF_TEST(a socket that already listens is adopted instead of binding) {
  // As systemd passes it for socket activation: bound and listening before the daemon starts.
  net::io_context elsewhere;
  net::ip::tcp::acceptor passed{elsewhere, {net::ip::make_address("127.0.0.1"), 0}};
  auto passed_port = passed.local_endpoint().port();
  int fd = passed.release();
  start([fd](http_transport_settings& s) {
    s.listen_fd = fd;
    s.listen = {net::ip::make_address("127.0.0.1"), 1}; // not bound when a socket is given
  });
  CAF_CHECK_EQUAL(port, passed_port);
  CAF_CHECK_EQUAL(transport->local_endpoint().address().to_string(), "127.0.0.1");
  initialize();
  CAF_CHECK_EQUAL(exchange("GET", "/healthz", {}).result_int(), 200u);
}

CAF_TEST(a failed initialize leaves no session behind) {
  start();
  auto res = post("", request(1, "initialize", {{"fail", true}}));
  CAF_CHECK_EQUAL(res.result_int(), 200u);
  CAF_CHECK_EQUAL(error_code(res), -32602);
  CAF_CHECK(res.find("Mcp-Session-Id") == res.end());
  // The removal happens on the I/O thread right after the answer; ask it from there.
  std::promise<size_t> count;
  net::post(io, [&] { count.set_value(transport->session_count()); });
  CAF_CHECK_EQUAL(count.get_future().get(), 0u);
}

CAF_TEST(requests without a valid session are refused) {
  start();
  auto missing = post("", request(2, "ping"));
  CAF_CHECK_EQUAL(missing.result_int(), 400u);
  auto unknown = post("0123456789abcdef0123456789abcdef", request(2, "ping"));
  CAF_CHECK_EQUAL(unknown.result_int(), 404u);
  CAF_CHECK_EQUAL(error_code(unknown), -32001);
  auto session = initialize();
  CAF_CHECK_EQUAL(post(session, request(2, "notify", {{"count", 0}})).result_int(), 200u);
  auto deleted = exchange("DELETE", "/mcp", {{"Mcp-Session-Id", session}});
  CAF_CHECK_EQUAL(deleted.result_int(), 200u);
  CAF_CHECK_EQUAL(post(session, request(3, "ping")).result_int(), 404u);
  CAF_CHECK_EQUAL(exchange("DELETE", "/mcp", {{"Mcp-Session-Id", session}}).result_int(), 404u);
}

CAF_TEST(notifications before the response turn the answer into an SSE stream) {
  start();
  auto session = initialize("2025-11-25");
  http_test_client client{port};
  client.send("POST", "/mcp", post_headers(session), request(7, "notify", {{"count", 2}}));
  auto& header = client.read_header();
  CAF_CHECK_EQUAL(header.result_int(), 200u);
  CAF_CHECK_EQUAL(std::string{header[client_http::field::content_type]}, "text/event-stream");
  auto events = client.rest_of_stream();
  CAF_REQUIRE_EQUAL(events.size(), 4u);
  // The priming event: an id to resume from, the retry delay, no data.
  CAF_CHECK_EQUAL(events[0].data, "");
  CAF_CHECK_EQUAL(events[0].retry, "50");
  CAF_CHECK(!events[0].id.empty());
  CAF_CHECK_EQUAL(value_at(events[1].data, "/method"), "notifications/progress");
  CAF_CHECK_EQUAL(value_at(events[2].data, "/params/progress"), 1);
  auto final_message = json::parse(events[3].data);
  CAF_CHECK_EQUAL(final_message["id"], 7);
  CAF_CHECK_EQUAL(final_message["result"]["done"], true);
  std::set<std::string> ids;
  for (const auto& e : events)
    ids.insert(e.id);
  CAF_CHECK_EQUAL(ids.size(), 4u); // every event has its own id
  // A request answered without notifications stays plain JSON.
  auto plain = post(session, request(8, "notify", {{"count", 0}}));
  CAF_CHECK_EQUAL(std::string{plain[client_http::field::content_type]}, "application/json");
}

CAF_TEST(older clients get no priming event) {
  start();
  auto session = initialize("2025-06-18");
  http_test_client client{port};
  client.send("POST", "/mcp", post_headers(session), request(7, "notify", {{"count", 1}}));
  client.read_header();
  auto events = client.rest_of_stream();
  CAF_REQUIRE_EQUAL(events.size(), 2u);
  CAF_CHECK_EQUAL(value_at(events[0].data, "/method"), "notifications/progress");
  CAF_CHECK(!events[0].id.empty());
}

CAF_TEST(session wide messages go to the standalone stream and only one is allowed) {
  start();
  auto session = initialize();
  http_test_client stream{port};
  stream.send("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  CAF_CHECK_EQUAL(stream.read_header().result_int(), 200u);
  auto priming = stream.next_event();
  CAF_CHECK_EQUAL(priming.data, "");
  auto second =
      exchange("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  CAF_CHECK_EQUAL(second.result_int(), 409u);
  auto res = post(session, request(3, "broadcast", {{"text", "hello"}}));
  CAF_CHECK_EQUAL(res.result_int(), 200u);
  CAF_CHECK_EQUAL(std::string{res[client_http::field::content_type]}, "application/json");
  auto event = stream.next_event();
  CAF_CHECK_EQUAL(value_at(event.data, "/params/data"), "hello");
  CAF_CHECK_EQUAL(
      exchange("GET", "/mcp", {{"Accept", "application/json"}, {"Mcp-Session-Id", session}})
          .result_int(),
      406u);
}

CAF_TEST(a broken POST stream resumes with Last - Event - ID and replays only its own events) {
  start();
  auto session = initialize();
  http_test_client standalone{port};
  standalone.send("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  standalone.read_header();
  standalone.next_event(); // priming
  std::string last_id;
  {
    http_test_client held{port};
    held.send("POST", "/mcp", post_headers(session), request(11, "hold"));
    CAF_CHECK_EQUAL(std::string{held.read_header()[client_http::field::content_type]},
                    "text/event-stream");
    held.next_event(); // priming
    auto first = held.next_event();
    CAF_CHECK_EQUAL(value_at(first.data, "/params/progress"), 0);
    last_id = first.id;
    held.close(); // the client's connection breaks
  }
  // The held request finishes while its stream has no client.
  auto released = post(session, request(12, "release"));
  CAF_CHECK_EQUAL(released.result_int(), 200u);
  http_test_client resumed{port};
  resumed.send(
      "GET", "/mcp",
      {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", last_id}});
  CAF_CHECK_EQUAL(resumed.read_header().result_int(), 200u);
  auto replayed = resumed.rest_of_stream(); // ends: the request is answered
  CAF_REQUIRE_EQUAL(replayed.size(), 2u);
  CAF_CHECK_EQUAL(value_at(replayed[0].data, "/params/progress"), 1);
  CAF_CHECK_EQUAL(value_at(replayed[1].data, "/id"), 11);
  CAF_CHECK_EQUAL(value_at(replayed[1].data, "/result/released"), true);
  // Nothing of it went to the standalone stream: its next event is the next broadcast.
  post(session, request(13, "broadcast", {{"text", "after"}}));
  CAF_CHECK_EQUAL(value_at(standalone.next_event().data, "/params/data"), "after");
  // Resuming again from the same point replays the same events (the client may have lost them).
  http_test_client again{port};
  again.send(
      "GET", "/mcp",
      {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", last_id}});
  again.read_header();
  CAF_CHECK_EQUAL(again.rest_of_stream().size(), 2u);
}

CAF_TEST(the standalone stream resumes after its last event) {
  start();
  auto session = initialize();
  std::string last_id;
  {
    http_test_client stream{port};
    stream.send("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
    stream.read_header();
    stream.next_event();
    post(session, request(2, "broadcast", {{"text", "one"}}));
    last_id = stream.next_event().id;
    stream.close();
  }
  post(session, request(3, "broadcast", {{"text", "two"}}));
  post(session, request(4, "broadcast", {{"text", "three"}}));
  http_test_client resumed{port};
  resumed.send(
      "GET", "/mcp",
      {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", last_id}});
  CAF_CHECK_EQUAL(resumed.read_header().result_int(), 200u);
  CAF_CHECK_EQUAL(value_at(resumed.next_event().data, "/params/data"), "two");
  CAF_CHECK_EQUAL(value_at(resumed.next_event().data, "/params/data"), "three");
  // ... and continues live.
  post(session, request(5, "broadcast", {{"text", "four"}}));
  CAF_CHECK_EQUAL(value_at(resumed.next_event().data, "/params/data"), "four");
  auto bogus = exchange(
      "GET", "/mcp",
      {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}, {"Last-Event-ID", "99:1"}});
  CAF_CHECK_EQUAL(bogus.result_int(), 400u);
  auto garbage = exchange("GET", "/mcp",
                          {{"Accept", "text/event-stream"},
                           {"Mcp-Session-Id", session},
                           {"Last-Event-ID", "yesterday"}});
  CAF_CHECK_EQUAL(garbage.result_int(), 400u);
}

CAF_TEST(limits are enforced with JSON - RPC errors) {
  start([](http_transport_settings& s) { s.max_sessions = 2; });
  auto session = initialize();
  http_test_client first{port};
  first.send("POST", "/mcp", post_headers(session), request(21, "hold"));
  first.read_header();
  http_test_client second{port};
  second.send("POST", "/mcp", post_headers(session), request(22, "hold"));
  second.read_header();
  auto third = post(session, request(23, "hold"));
  CAF_CHECK_EQUAL(third.result_int(), 429u);
  CAF_CHECK_EQUAL(value_at(third.body(), "/id"), 23);
  CAF_CHECK_NOT_EQUAL(third.body().find("max_inflight_per_session"), std::string::npos);
  // A reused id of a running request is refused too.
  CAF_CHECK_EQUAL(post(session, request(21, "ping")).result_int(), 400u);
  initialize();
  auto over = post("", request(1, "initialize", {{"protocolVersion", "2025-11-25"}}));
  CAF_CHECK_EQUAL(over.result_int(), 503u);
  CAF_CHECK_NOT_EQUAL(over.body().find("max_sessions"), std::string::npos);
  auto big = post(session, std::string(5000, ' '));
  CAF_CHECK_EQUAL(big.result_int(), 413u);
  CAF_CHECK_NOT_EQUAL(big.body().find("max_body_bytes"), std::string::npos);
  // Deleting the session ends the held streams (after the priming event and the notification
  // sent before the DELETE).
  exchange("DELETE", "/mcp", {{"Mcp-Session-Id", session}});
  CAF_CHECK_EQUAL(first.rest_of_stream().size(), 2u);
  CAF_CHECK(first.stream_done());
  CAF_CHECK_EQUAL(second.rest_of_stream().size(), 2u);
}

CAF_TEST(a cancelled request frees its slot and its POST) {
  start();
  auto session = initialize();
  http_test_client quiet{port};
  quiet.send("POST", "/mcp", post_headers(session), request(31, "wait"));
  http_test_client streaming{port};
  streaming.send("POST", "/mcp", post_headers(session), request(32, "hold"));
  streaming.read_header();
  streaming.next_event(); // priming
  streaming.next_event(); // progress
  CAF_CHECK_EQUAL(post(session, request(33, "notify")).result_int(), 429u);
  auto cancel = [&](int id) {
    return post(session, json{{"jsonrpc", "2.0"},
                              {"method", "notifications/cancelled"},
                              {"params", {{"requestId", id}, {"reason", "test"}}}}
                             .dump());
  };
  CAF_CHECK_EQUAL(cancel(31).result_int(), 202u);
  // The waiting POST is answered without a response: none follows a cancelled request.
  auto answered = quiet.read();
  CAF_CHECK_EQUAL(answered.result_int(), 202u);
  CAF_CHECK(answered.body().empty());
  CAF_CHECK_EQUAL(cancel(32).result_int(), 202u);
  CAF_CHECK_EQUAL(cancel(99).result_int(), 202u); // unknown ids are ignored
  // Both slots are free again.
  CAF_CHECK_EQUAL(post(session, request(34, "notify", {{"count", 0}})).result_int(), 200u);
  CAF_CHECK_EQUAL(post(session, request(35, "notify", {{"count", 0}})).result_int(), 200u);
}

CAF_TEST(malformed requests get precise statuses) {
  start();
  auto session = initialize();
  auto h = post_headers(session);
  CAF_CHECK_EQUAL(error_code(post(session, "{not json")), -32700);
  CAF_CHECK_EQUAL(post(session, "{not json").result_int(), 400u);
  CAF_CHECK_EQUAL(post(session, R"({"jsonrpc":"1.0","id":1,"method":"x"})").result_int(), 400u);
  h["Content-Type"] = "text/plain";
  CAF_CHECK_EQUAL(exchange("POST", "/mcp", h, request(1, "ping")).result_int(), 415u);
  h = post_headers(session);
  h["Accept"] = "application/json";
  auto not_acceptable = exchange("POST", "/mcp", h, request(1, "ping"));
  CAF_CHECK_EQUAL(not_acceptable.result_int(), 406u);
  CAF_CHECK_EQUAL(error_code(not_acceptable), -32000);
  h = post_headers(session);
  h["MCP-Protocol-Version"] = "2099-01-01";
  CAF_CHECK_EQUAL(exchange("POST", "/mcp", h, request(1, "ping")).result_int(), 400u);
  h["MCP-Protocol-Version"] = "2025-03-26";
  CAF_CHECK_EQUAL(exchange("POST", "/mcp", h, request(1, "notify", {{"count", 0}})).result_int(),
                  200u);
  h = post_headers(session);
  h["Host"] = "evil.example.com";
  CAF_CHECK_EQUAL(exchange("POST", "/mcp", h, request(1, "ping")).result_int(), 403u);
  h = post_headers(session);
  h["Origin"] = "http://evil.example.com";
  CAF_CHECK_EQUAL(exchange("POST", "/mcp", h, request(1, "ping")).result_int(), 403u);
  h["Origin"] = "http://localhost:3000";
  CAF_CHECK_EQUAL(exchange("POST", "/mcp", h, request(1, "notify", {{"count", 0}})).result_int(),
                  200u);
  CAF_CHECK_EQUAL(exchange("PUT", "/mcp", post_headers(session), "{}").result_int(), 405u);
  CAF_CHECK_EQUAL(exchange("GET", "/elsewhere", {}).result_int(), 404u);
  auto note = post(session, R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  CAF_CHECK_EQUAL(note.result_int(), 202u);
  CAF_CHECK(note.body().empty());
  // Not HTTP at all: answered 400, and the server carries on.
  http_test_client raw{port};
  raw.send("NOT HTTP", "/\x01", {});
  CAF_CHECK_EQUAL(raw.read().result_int(), 400u);
  CAF_CHECK_EQUAL(post(session, request(9, "notify", {{"count", 0}})).result_int(), 200u);
}

CAF_TEST(a client that expects 100 Continue gets it before the response) {
  start();
  auto session = initialize();
  http_test_client client{port};
  auto h = post_headers(session);
  h["Expect"] = "100-continue";
  client.send("POST", "/mcp", h, request(5, "notify", {{"count", 0}}));
  CAF_CHECK_EQUAL(client.read().result_int(), 100u);
  CAF_CHECK_EQUAL(client.read().result_int(), 200u);
}

CAF_TEST(batches are split and gathered only for protocol 2025-03-26) {
  start();
  auto old = initialize("2025-03-26");
  auto batch = "[" + request(1, "notify", {{"count", 0}}) + "," +
               R"({"jsonrpc":"2.0","method":"notifications/initialized"})" + "," +
               request(2, "broadcast", {{"text", "x"}}) + "]";
  auto res = post(old, batch);
  CAF_CHECK_EQUAL(res.result_int(), 200u);
  auto body = json::parse(res.body());
  CAF_REQUIRE(body.is_array());
  CAF_REQUIRE_EQUAL(body.size(), 2u);
  std::set<int> ids{body[0]["id"].get<int>(), body[1]["id"].get<int>()};
  CAF_CHECK_EQUAL(ids, (std::set<int>{1, 2}));
  auto only_notes = post(old, R"([{"jsonrpc":"2.0","method":"notifications/initialized"}])");
  CAF_CHECK_EQUAL(only_notes.result_int(), 202u);
  CAF_CHECK_EQUAL(post(old, "[]").result_int(), 400u);
  auto current = initialize("2025-11-25");
  auto refused = post(current, batch);
  CAF_CHECK_EQUAL(refused.result_int(), 400u);
  CAF_CHECK_EQUAL(error_code(refused), -32600);
}

CAF_TEST(bearer tokens authenticate and name the agent) {
  start([](http_transport_settings& s) {
    auto tokens = std::make_shared<http_checks::token_table>();
    tokens->add("alice-token-0123456789", "alice");
    tokens->add("bob-token-0123456789", "bob");
    s.tokens = tokens;
  });
  auto missing = post("", request(1, "initialize", json::object()));
  CAF_CHECK_EQUAL(missing.result_int(), 401u);
  CAF_CHECK_EQUAL(std::string{missing[client_http::field::www_authenticate]},
                  "Bearer realm=\"offload\"");
  auto h = post_headers();
  h["Authorization"] = "Bearer wrong-token";
  auto wrong = exchange("POST", "/mcp", h, request(1, "initialize", json::object()));
  CAF_CHECK_EQUAL(wrong.result_int(), 401u);
  CAF_CHECK_NOT_EQUAL(
      std::string{wrong[client_http::field::www_authenticate]}.find("invalid_token"),
      std::string::npos);
  auto session = initialize("2025-11-25", {{"Authorization", "Bearer alice-token-0123456789"}});
  {
    std::lock_guard<std::mutex> guard{agents_mutex};
    CAF_CHECK_EQUAL(agents, std::vector<std::string>{"alice"});
  }
  h = post_headers(session);
  h["Authorization"] = "Bearer alice-token-0123456789";
  CAF_CHECK_EQUAL(exchange("POST", "/mcp", h, request(2, "notify", {{"count", 0}})).result_int(),
                  200u);
  h["Authorization"] = "Bearer bob-token-0123456789";
  CAF_CHECK_EQUAL(exchange("POST", "/mcp", h, request(3, "ping")).result_int(), 404u);
  CAF_CHECK_EQUAL(exchange("GET", "/metrics", {}).result_int(), 401u);
  CAF_CHECK_EQUAL(exchange("GET", "/healthz", {}).result_int(), 200u);
}

CAF_TEST(idle sessions expire) {
  start([](http_transport_settings& s) { s.session_idle_timeout = 100ms; });
  auto session = initialize();
  // No timing is asserted: the session must be gone eventually, within a generous bound. (The
  // gauge is watched instead of asking the session, since asking would keep it alive.)
  auto& open = metrics->sessions(metrics::transport_kind::http);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (open.value() != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  CAF_CHECK_EQUAL(open.value(), 0);
  CAF_CHECK_EQUAL(post(session, request(2, "ping")).result_int(), 404u);
}

CAF_TEST(health follows the state and metrics count sessions and statuses) {
  start();
  auto ready = exchange("GET", "/healthz", {});
  CAF_CHECK_EQUAL(ready.result_int(), 200u);
  CAF_CHECK_EQUAL(ready.body(), "ready\n");
  transport->set_health(health_state::draining);
  CAF_CHECK_EQUAL(exchange("GET", "/healthz", {}).result_int(), 503u);
  CAF_CHECK_EQUAL(post("", request(1, "initialize", json::object())).result_int(), 503u);
  transport->set_health(health_state::ready);
  initialize();
  initialize();
  post("", request(1, "ping"));
  auto text = exchange("GET", "/metrics", {}).body();
  CAF_CHECK_NOT_EQUAL(text.find("offload_sessions{transport=\"http\"} 2\n"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("offload_http_requests_total{code=\"400\"} 1\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("offload_http_requests_total{code=\"503\"} 2\n"),
                      std::string::npos);
}

CAF_TEST(stopping ends every session and closes their streams) {
  start();
  auto session = initialize();
  http_test_client stream{port};
  stream.send("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}});
  stream.read_header();
  stream.next_event();
  std::promise<std::vector<mcp_session_actor>> stopped;
  auto ended = stopped.get_future();
  net::post(io, [&] { stopped.set_value(transport->stop()); });
  auto actors = ended.get();
  CAF_CHECK_EQUAL(actors.size(), 1u);
  CAF_CHECK_EQUAL(stream.rest_of_stream().size(), 0u);
  caf::scoped_actor self{sys};
  for (auto& actor : actors)
    self->wait_for(actor);
  CAF_CHECK_EQUAL(metrics->sessions(metrics::transport_kind::http).value(), 0);
}

CAF_TEST_FIXTURE_SCOPE_END()
