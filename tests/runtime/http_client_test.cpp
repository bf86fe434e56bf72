#define CAF_SUITE http_client
#include <caf/test/unit_test.hpp>

#include "runtime/http_client.hpp"
#include "runtime/http_fetch.hpp"
#include "tests/runtime/canned_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <optional>

using namespace offload;
using namespace std::chrono_literals;

namespace {

using namespace offload::test;

const std::string sse_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n";

const std::string sse_answer =
    R"(data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}],"model":"served-model"})"
    "\n\n: ping\n\n"
    R"(data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],"model":"served-model"})"
    "\n\n"
    R"(data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}})"
    "\n\ndata: [DONE]\n\n";

struct fixture {
  asio::io_context io;
  canned_server server{io};

  std::shared_ptr<llm_client> client(backend_kind kind, http_timeouts timeouts = {},
                                     std::string base_path = "") {
    return make_llm_client(io, kind, server.target(std::move(base_path)), timeouts, 2);
  }

  llm_outcome ask(llm_client& client, std::chrono::milliseconds first_token = 0ms,
                  std::chrono::milliseconds idle = 0ms) {
    auto request = std::make_shared<llm_request>();
    request->model = "asked-model";
    request->messages = {{"user", "hi"}};
    request->first_token_timeout = first_token;
    request->idle_timeout = idle;
    std::optional<llm_outcome> outcome;
    auto exchange = client.start(request, [&](llm_outcome o) { outcome = std::move(o); });
    run_until([&] { return outcome.has_value(); });
    return *outcome;
  }

  fetch_result get(const http_target& target, std::string path,
                   std::chrono::milliseconds timeout = 5s) {
    std::optional<fetch_result> result;
    fetch(io, target, "GET", std::move(path), "", timeout,
          [&](fetch_result r) { result = std::move(r); });
    run_until([&] { return result.has_value(); });
    return *result;
  }

  // Runs the I/O until `finished`; a safety net, not a timing assertion.
  template <class Predicate>
  void run_until(Predicate finished) {
    while (!finished())
      if (io.run_one_for(10s) == 0)
        CAF_FAIL("the exchange never completed");
  }
};

bool mentions(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(http_client_tests, fixture)

CAF_TEST(an openai backend streams server sent events) {
  server.replies = {{chunked(sse_head, sse_answer)}};
  auto llm = client(backend_kind::openai);
  auto outcome = ask(*llm);
  CAF_REQUIRE(outcome.ok);
  CAF_CHECK_EQUAL(outcome.reply.text, "Hello");
  CAF_CHECK_EQUAL(outcome.reply.model, "served-model");
  CAF_CHECK_EQUAL(outcome.reply.tokens_in, 9);
  CAF_CHECK_EQUAL(outcome.reply.tokens_out, 2);
  CAF_CHECK_EQUAL(outcome.reply.done_reason, "stop");
  CAF_REQUIRE_EQUAL(server.targets.size(), 1u);
  CAF_CHECK_EQUAL(server.targets[0], "/v1/chat/completions");
  auto body = nlohmann::json::parse(server.bodies[0]);
  CAF_CHECK_EQUAL(body["model"].get<std::string>(), "asked-model");
  CAF_CHECK(body["stream_options"]["include_usage"].get<bool>());
}

CAF_TEST(an openai base url ending in v1 is not doubled) {
  server.replies = {{chunked(sse_head, sse_answer)}};
  auto llm = client(backend_kind::openai, {}, "/v1");
  CAF_CHECK(ask(*llm).ok);
  CAF_CHECK_EQUAL(server.targets.at(0), "/v1/chat/completions");
}

CAF_TEST(an ollama backend streams ndjson and reuses its connection) {
  auto ndjson = std::string{R"({"model":"m","message":{"content":"a"},"done":false})"
                            "\n"
                            R"({"model":"m","message":{"content":"b"},"done":true,)"
                            R"("prompt_eval_count":4,"eval_count":2})"
                            "\n"};
  server.replies = {{with_length(json_head, ndjson)}, {chunked(json_head, ndjson)}};
  auto llm = client(backend_kind::ollama);
  auto first = ask(*llm);
  auto second = ask(*llm);
  CAF_REQUIRE(first.ok);
  CAF_REQUIRE(second.ok);
  CAF_CHECK_EQUAL(second.reply.text, "ab");
  CAF_CHECK_EQUAL(second.reply.tokens_out, 2);
  CAF_CHECK_EQUAL(server.targets.at(0), "/api/chat");
  CAF_CHECK_EQUAL(server.connections, 1u);
}

CAF_TEST(ollama requests carry the options pinned for their model) {
  auto done = std::string{R"({"model":"m","message":{"content":"a"},"done":true})"
                          "\n"};
  server.replies = {{with_length(json_head, done)}, {with_length(json_head, done)}};
  std::map<std::string, ollama::chat_options> pinned{{"asked-model", {"1h", 8192}}};
  auto llm = make_llm_client(io, backend_kind::ollama, server.target(), {}, 2, pinned);
  CAF_REQUIRE(ask(*llm).ok);
  auto body = nlohmann::json::parse(server.bodies.at(0));
  CAF_CHECK_EQUAL(body["keep_alive"].get<std::string>(), "1h");
  CAF_CHECK_EQUAL(body["options"]["num_ctx"].get<int>(), 8192);
  // Another model gets the server's defaults.
  auto other = make_llm_client(io, backend_kind::ollama, server.target(), {}, 2,
                               {{"someone-else", {"1h", 8192}}});
  CAF_REQUIRE(ask(*other).ok);
  auto plain = nlohmann::json::parse(server.bodies.at(1));
  CAF_CHECK(!plain.contains("keep_alive"));
  CAF_CHECK(!plain.contains("options"));
}

CAF_TEST(error responses carry their retry after) {
  server.replies = {
      {with_length("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n",
                   R"({"error":{"message":"slow down","type":"rate_limit"}})")},
      {with_length(
          "HTTP/1.1 503 Service Unavailable\r\n",
          R"({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})")},
      {with_length(
          "HTTP/1.1 400 Bad Request\r\n",
          R"({"object":"error","message":"This model's maximum context length is 8 tokens.","code":400})")},
  };
  auto llm = client(backend_kind::openai);
  auto limited = ask(*llm);
  CAF_REQUIRE(!limited.ok);
  CAF_CHECK(limited.error.code == errc::backend_overloaded);
  CAF_CHECK_EQUAL(limited.error.retry_after_ms, 3000);
  CAF_CHECK(mentions(limited.error.message, "slow down"));
  auto loading = ask(*llm);
  CAF_CHECK(loading.error.code == errc::model_loading);
  CAF_CHECK_EQUAL(loading.error.retry_after_ms, 0);
  auto too_long = ask(*llm);
  CAF_CHECK(too_long.error.code == errc::context_too_long);
  CAF_CHECK(!too_long.error.retryable);
}

CAF_TEST(a request 's first token timeout replaces the backend' s) {
  server.replies = {{"", true}};
  http_timeouts slow;
  slow.first_token = 1h;
  auto llm = client(backend_kind::openai, slow);
  auto outcome = ask(*llm, 50ms);
  CAF_REQUIRE(!outcome.ok);
  CAF_CHECK(outcome.error.code == errc::timeout);
  CAF_CHECK(mentions(outcome.error.message, "first-token"));
  CAF_CHECK(mentions(outcome.error.message, "50 ms"));
}

CAF_TEST(a request 's idle timeout replaces the backend' s) {
  auto head = sse_head + "Transfer-Encoding: chunked\r\n\r\n";
  auto event = std::string{R"(data: {"choices":[{"index":0,"delta":{"content":"x"}}]})"
                           "\n\n"};
  server.replies = {{fmt::format("{}{:x}\r\n{}\r\n", head, event.size(), event), true}};
  http_timeouts slow;
  slow.idle = 1h;
  auto llm = client(backend_kind::openai, slow);
  auto outcome = ask(*llm, 0ms, 50ms);
  CAF_REQUIRE(!outcome.ok);
  CAF_CHECK(outcome.error.code == errc::timeout);
  CAF_CHECK(mentions(outcome.error.message, "stalled for more than 50 ms"));
}

CAF_TEST(the total timeout is reported as such) {
  server.replies = {{"", true}};
  http_timeouts timeouts;
  timeouts.total = 50ms;
  auto llm = client(backend_kind::ollama, timeouts);
  auto outcome = ask(*llm);
  CAF_REQUIRE(!outcome.ok);
  CAF_CHECK(outcome.error.code == errc::timeout);
  CAF_CHECK(mentions(outcome.error.message, "total timeout of 50 ms"));
}

CAF_TEST(fetch returns status body and retry after) {
  server.replies = {
      {with_length(json_head, R"({"models":[]})")},
      {with_length("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nConnection: close\r\n",
                   "busy")},
  };
  auto ok = get(server.target(), "/api/tags");
  CAF_REQUIRE(ok.ok);
  CAF_CHECK_EQUAL(ok.status, 200u);
  CAF_CHECK_EQUAL(ok.body, R"({"models":[]})");
  auto busy = get(server.target(), "/health");
  CAF_REQUIRE(busy.ok);
  CAF_CHECK_EQUAL(busy.status, 503u);
  CAF_CHECK_EQUAL(busy.retry_after_ms, 2000);
  CAF_CHECK_EQUAL(server.targets.at(1), "/health");
}

CAF_TEST(fetch reports timeouts and unreachable servers) {
  server.replies = {{"", true}};
  auto silent = get(server.target(), "/v1/models", 50ms);
  CAF_REQUIRE(!silent.ok);
  CAF_CHECK(silent.error.code == errc::timeout);
  CAF_CHECK(mentions(silent.error.message, "/v1/models"));
  // A port nobody listens on: bind one, then close it.
  std::string port;
  {
    tcp::acceptor probe{io, {asio::ip::make_address("127.0.0.1"), 0}};
    port = std::to_string(probe.local_endpoint().port());
  }
  auto gone = get({"127.0.0.1", port, ""}, "/api/version");
  CAF_REQUIRE(!gone.ok);
  CAF_CHECK(gone.error.code == errc::backend_unreachable);
  CAF_CHECK(gone.error.retryable);
}

CAF_TEST(fetch can be cancelled) {
  server.replies = {{"", true}};
  std::optional<fetch_result> result;
  auto handle = fetch(io, server.target(), "GET", "/api/ps", "", 1h,
                      [&](fetch_result r) { result = std::move(r); });
  handle->cancel();
  run_until([&] { return result.has_value(); });
  CAF_CHECK(!result->ok);
  CAF_CHECK(result->error.code == errc::cancelled);
}

CAF_TEST_FIXTURE_SCOPE_END()
