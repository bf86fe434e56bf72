#define CAF_SUITE llm_errors
#include <caf/test/unit_test.hpp>

#include "protocol/llm_errors.hpp"
#include "runtime/defaults.hpp"

using namespace offload;
using namespace std::chrono;

namespace {

task_error http(unsigned status, std::string_view body, int64_t retry_after_ms = 0) {
  return classify_http_error(status, parse_error_body(body), retry_after_ms);
}

task_error in_stream(std::string_view body) {
  return classify_stream_error(parse_error_body(body));
}

// Sun, 06 Nov 1994 08:49:37 GMT, the example date of RFC 9110.
const system_clock::time_point rfc_date = sys_days{1994y / November / 6} + 8h + 49min + 37s;

} // namespace

CAF_TEST(error bodies of every shape give their message type and code) {
  auto ollama = parse_error_body(R"({"error":"model \"x\" not found, try pulling it first"})");
  CAF_CHECK_EQUAL(ollama.message, "model \"x\" not found, try pulling it first");
  auto nested = parse_error_body(
      R"({"error":{"code":400,"message":"too long","type":"exceed_context_size_error"}})");
  CAF_CHECK_EQUAL(nested.message, "too long");
  CAF_CHECK_EQUAL(nested.type, "exceed_context_size_error");
  CAF_CHECK_EQUAL(nested.code, "400");
  auto openai = parse_error_body(
      R"({"error":{"message":"m","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}})");
  CAF_CHECK_EQUAL(openai.code, "context_length_exceeded");
  auto vllm = parse_error_body(
      R"({"object":"error","message":"flat","type":"BadRequestError","param":null,"code":400})");
  CAF_CHECK_EQUAL(vllm.message, "flat");
  CAF_CHECK_EQUAL(vllm.type, "BadRequestError");
  CAF_CHECK_EQUAL(parse_error_body(R"({"detail":"Not Found"})").message, "Not Found");
  CAF_CHECK_EQUAL(parse_error_body("404 page not found\n").message, "404 page not found");
  CAF_CHECK_EQUAL(parse_error_body(std::string(1000, 'x')).message.size(), 200u);
  // An error object without a message is shown whole.
  auto bare = parse_error_body(R"({"error":{"type":"weird"}})");
  CAF_CHECK_EQUAL(bare.message, R"({"type":"weird"})");
  CAF_CHECK_EQUAL(bare.type, "weird");
}

CAF_TEST(missing models are not found and not retryable) {
  for (auto [status, body] :
       {std::pair<unsigned, std::string_view>{404, R"({"error":"model \"q\" not found, try )"
                                                   R"(pulling it first"})"},
        {404, R"({"object":"error","message":"The model `q` does not exist.","code":404})"},
        {404, R"({"error":{"message":"no such thing","code":"model_not_found"}})"},
        {400, R"({"error":{"message":"model 'q' not found"}})"}}) {
    auto e = http(status, body);
    CAF_CHECK(e.code == errc::model_not_found);
    CAF_CHECK(!e.retryable);
    CAF_CHECK_NOT_EQUAL(e.message.find(std::to_string(status)), std::string::npos);
  }
}

CAF_TEST(a 404 for an unknown path says so instead of blaming the model) {
  for (auto body :
       {"404 page not found", R"({"detail":"Not Found"})",
        R"({"error":{"code":404,"message":"File Not Found","type":"not_found_error"}})"}) {
    auto e = http(404, body);
    CAF_CHECK(e.code == errc::backend_http_error);
    CAF_CHECK(!e.retryable);
    CAF_CHECK_NOT_EQUAL(e.message.find("kind or URL"), std::string::npos);
  }
}

CAF_TEST(busy servers are overloaded and say when to come back) {
  auto limited = http(429, R"({"error":{"message":"rate limited"}})", 7000);
  CAF_CHECK(limited.code == errc::backend_overloaded);
  CAF_CHECK(limited.retryable);
  CAF_CHECK_EQUAL(limited.retry_after_ms, 7000);
  auto busy =
      http(503, R"({"error":"server busy, please try again.  maximum pending requests exceeded"})");
  CAF_CHECK(busy.code == errc::backend_overloaded);
  CAF_CHECK(busy.retryable);
  CAF_CHECK_NOT_EQUAL(busy.message.find("maximum pending requests"), std::string::npos);
  CAF_CHECK(http(503, "Service Unavailable").code == errc::backend_overloaded);
}

CAF_TEST(a loading model is model loading) {
  auto e = http(
      503, R"({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})", 1000);
  CAF_CHECK(e.code == errc::model_loading);
  CAF_CHECK(e.retryable);
  CAF_CHECK_EQUAL(e.retry_after_ms, 1000);
}

CAF_TEST(server failures are retryable http errors) {
  for (unsigned status : {500u, 502u, 504u, 408u}) {
    auto e = http(status, "upstream trouble", 250);
    CAF_CHECK(e.code == errc::backend_http_error);
    CAF_CHECK(e.retryable);
    CAF_CHECK_EQUAL(e.retry_after_ms, 250);
    CAF_CHECK_NOT_EQUAL(e.message.find("upstream trouble"), std::string::npos);
  }
}

CAF_TEST(prompts that do not fit are context too long) {
  for (
      auto body :
      {R"({"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":4096}})",
       R"({"error":{"message":"x","type":"exceed_context_size_error"}})",
       R"({"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}})",
       R"({"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","code":400})",
       R"({"error":"the input length exceeds the context length"})",
       R"({"error":{"message":"Trying to keep the first 9000 tokens when context window is only 4096"}})",
       R"({"error":"too many tokens in the prompt"})"}) {
    auto e = http(400, body);
    CAF_CHECK(e.code == errc::context_too_long);
    CAF_CHECK(!e.retryable);
  }
}

CAF_TEST(other client errors are not retryable) {
  for (unsigned status : {400u, 401u, 403u, 413u, 422u}) {
    auto e = http(status, R"({"error":{"message":"invalid temperature"}})");
    CAF_CHECK(e.code == errc::backend_http_error);
    CAF_CHECK(!e.retryable);
  }
}

CAF_TEST(ollama 499 is a cancellation) {
  auto e = http(499, R"({"error":"request canceled"})");
  CAF_CHECK(e.code == errc::cancelled);
  CAF_CHECK(!e.retryable);
}

CAF_TEST(errors inside a stream follow the same words) {
  CAF_CHECK(in_stream(R"({"error":"the input length exceeds the context length"})").code ==
            errc::context_too_long);
  CAF_CHECK(in_stream(R"({"error":"model \"q\" not found, try pulling it first"})").code ==
            errc::model_not_found);
  CAF_CHECK(in_stream(R"({"error":"Loading model"})").code == errc::model_loading);
  CAF_CHECK(in_stream(R"({"error":"server busy, please try again"})").code ==
            errc::backend_overloaded);
  auto other = in_stream(R"({"error":"model runner has unexpectedly stopped"})");
  CAF_CHECK(other.code == errc::backend_error);
  CAF_CHECK(!other.retryable);
  CAF_CHECK_NOT_EQUAL(other.message.find("unexpectedly stopped"), std::string::npos);
}

CAF_TEST(retry after accepts delta seconds) {
  auto now = system_clock::now();
  CAF_CHECK_EQUAL(parse_retry_after("120", now), 120'000);
  CAF_CHECK_EQUAL(parse_retry_after(" 0 ", now), 0);
  CAF_CHECK_EQUAL(parse_retry_after("1.5", now), 1'500);
  CAF_CHECK_EQUAL(parse_retry_after("", now), 0);
  CAF_CHECK_EQUAL(parse_retry_after("soon", now), 0);
  CAF_CHECK_EQUAL(parse_retry_after("-5", now), 0);
  CAF_CHECK_EQUAL(parse_retry_after("12abc", now), 0);
  CAF_CHECK_EQUAL(parse_retry_after("1.", now), 0);
}

CAF_TEST(retry after is capped) {
  auto cap = duration_cast<milliseconds>(defaults::max_retry_after).count();
  auto now = system_clock::now();
  CAF_CHECK_EQUAL(parse_retry_after("86400", now), cap);
  CAF_CHECK_EQUAL(parse_retry_after("99999999999999999999999", now), cap);
  CAF_CHECK_EQUAL(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", rfc_date - hours{24 * 365}),
                  cap);
}

CAF_TEST(retry after accepts the three http date forms) {
  auto now = rfc_date - seconds{90};
  CAF_CHECK_EQUAL(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 90'000);
  CAF_CHECK_EQUAL(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), 90'000);
  CAF_CHECK_EQUAL(parse_retry_after("Sun Nov  6 08:49:37 1994", now), 90'000);
  // A date in the past means "now".
  CAF_CHECK_EQUAL(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", rfc_date + seconds{5}), 0);
  // Nonsense dates are no hint.
  CAF_CHECK_EQUAL(parse_retry_after("Sun, 31 Feb 1994 08:49:37 GMT", now), 0);
  CAF_CHECK_EQUAL(parse_retry_after("Sun, 06 Nov 1994 25:49:37 GMT", now), 0);
  CAF_CHECK_EQUAL(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now), 0);
  CAF_CHECK_EQUAL(parse_retry_after("Sun, 06 Nov 1994 08:49:37 CET", now), 0);
  CAF_CHECK_EQUAL(parse_retry_after("Sun, 06 Nov 1994", now), 0);
}
