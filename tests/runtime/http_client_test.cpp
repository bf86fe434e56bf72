#define CAF_SUITE http_client
#include <caf/test/unit_test.hpp>

#include "runtime/http_client.hpp"
#include "runtime/http_fetch.hpp"

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

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// What the canned server does with one request.
struct canned_reply {
  std::string bytes;      // written verbatim; empty: nothing
  bool hold_open = false; // then keep the connection open without answering further
};

std::string chunked(std::string_view head, std::string_view body) {
  // Two chunks, so that the client sees the body arrive in pieces.
  auto half = body.size() / 2;
  return fmt::format("{}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                     head, half, body.substr(0, half), body.size() - half, body.substr(half));
}

std::string with_length(std::string_view head, std::string_view body) {
  return fmt::format("{}Content-Length: {}\r\n\r\n{}", head, body.size(), body);
}

// An HTTP/1.1 server on an ephemeral loopback port that answers requests, in order, with canned
// bytes and records what it was asked.
class canned_server {
public:
  explicit canned_server(asio::io_context& io)
      : acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}) {
    accept();
  }

  http_target target(std::string base_path = "") const {
    return {"127.0.0.1", std::to_string(acceptor_.local_endpoint().port()), std::move(base_path)};
  }

  std::vector<canned_reply> replies;
  std::vector<std::string> targets;
  std::vector<std::string> bodies;
  size_t connections = 0;

private:
  struct session : std::enable_shared_from_this<session> {
    session(canned_server& server, tcp::socket socket)
        : server(server)
        , socket(std::move(socket)) {}

    void read() {
      request = {};
      http::async_read(socket, buffer, request,
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (!ec)
                           self->answer();
                       });
    }

    void answer() {
      server.targets.emplace_back(request.target());
      server.bodies.push_back(request.body());
      auto index = server.next_++;
      auto reply = index < server.replies.size() ? server.replies[index] : canned_reply{"", true};
      asio::async_write(socket, asio::buffer(reply.bytes),
                        [self = shared_from_this(), reply](beast::error_code ec, size_t) {
                          if (ec)
                            return;
                          if (reply.hold_open)
                            self->server.held_.push_back(self);
                          else
                            self->read();
                        });
    }

    canned_server& server;
    tcp::socket socket;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
  };

  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec)
        return;
      ++connections;
      std::make_shared<session>(*this, std::move(socket))->read();
      accept();
    });
  }

  tcp::acceptor acceptor_;
  size_t next_ = 0;
  std::vector<std::shared_ptr<session>> held_;
};

const std::string sse_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n";
const std::string json_head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";

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
