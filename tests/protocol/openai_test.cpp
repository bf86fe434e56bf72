#define CAF_SUITE openai
#include <caf/test/unit_test.hpp>

#include "protocol/openai.hpp"
#include "tests/protocol/stream_harness.hpp"

#include <nlohmann/json.hpp>

using namespace offload;
using test::parse_every_way;
using parser = openai::chat_stream_parser;

namespace {

// llama.cpp's server: a role-only first chunk with null content, usage and timings on the
// finishing chunk, then the include_usage chunk with no choices.
const std::string llama_cpp_stream =
    R"(data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1,"id":"chatcmpl-a","model":"qwen2.5-coder","system_fingerprint":"b5000-abc","object":"chat.completion.chunk"})"
    "\n\n"
    R"(data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hel"}}],"created":1,"id":"chatcmpl-a","model":"qwen2.5-coder","object":"chat.completion.chunk"})"
    "\n\n"
    R"(data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"lo \u00e9"}}],"created":1,"id":"chatcmpl-a","model":"qwen2.5-coder","object":"chat.completion.chunk"})"
    "\n\n"
    R"(data: {"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1,"id":"chatcmpl-a","model":"qwen2.5-coder","object":"chat.completion.chunk","usage":{"completion_tokens":3,"prompt_tokens":12,"total_tokens":15},"timings":{"prompt_n":12,"prompt_ms":8.1,"predicted_n":3,"predicted_ms":20.5}})"
    "\n\n"
    R"(data: {"choices":[],"created":1,"id":"chatcmpl-a","model":"qwen2.5-coder","object":"chat.completion.chunk","usage":{"completion_tokens":3,"prompt_tokens":12,"total_tokens":15},"timings":{"prompt_n":12,"predicted_n":3}})"
    "\n\n"
    "data: [DONE]\n\n";

// vLLM: `usage: null` on every chunk, an empty first content, finish_reason "length".
const std::string vllm_stream =
    R"(data: {"id":"chatcmpl-b","object":"chat.completion.chunk","created":2,"model":"Qwen/Qwen2.5-Coder-7B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-b","object":"chat.completion.chunk","created":2,"model":"Qwen/Qwen2.5-Coder-7B-Instruct","choices":[{"index":0,"delta":{"content":"def f():"},"logprobs":null,"finish_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-b","object":"chat.completion.chunk","created":2,"model":"Qwen/Qwen2.5-Coder-7B-Instruct","choices":[{"index":0,"delta":{"content":"\n    pass"},"logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":null})"
    "\n\n"
    R"(data: {"id":"chatcmpl-b","object":"chat.completion.chunk","created":2,"model":"Qwen/Qwen2.5-Coder-7B-Instruct","choices":[],"usage":{"prompt_tokens":20,"total_tokens":27,"completion_tokens":7}})"
    "\n\n"
    "data: [DONE]\n\n";

// LM Studio: system_fingerprint, a finishing chunk with an empty delta, no usage at all.
const std::string lm_studio_stream =
    R"(data: {"id":"chatcmpl-c","object":"chat.completion.chunk","created":3,"model":"qwen2.5-coder-7b-instruct","system_fingerprint":"qwen2.5-coder-7b-instruct","choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"logprobs":null,"finish_reason":null}]})"
    "\n\n"
    R"(data: {"id":"chatcmpl-c","object":"chat.completion.chunk","created":3,"model":"qwen2.5-coder-7b-instruct","system_fingerprint":"qwen2.5-coder-7b-instruct","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]})"
    "\n\n"
    "data: [DONE]\n\n";

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// The stream up to (not including) its n-th event separator.
std::string first_events(const std::string& stream, size_t n) {
  size_t at = 0;
  for (size_t i = 0; i < n; ++i)
    at = stream.find("\n\n", at) + 2;
  return stream.substr(0, at);
}

} // namespace

CAF_TEST(a llama.cpp stream yields text usage and finish reason) {
  auto out = parse_every_way<parser>(llama_cpp_stream);
  CAF_REQUIRE(!out.failed);
  CAF_CHECK(out.done);
  CAF_CHECK_EQUAL(out.text, "Hello \xc3\xa9");
  CAF_CHECK_EQUAL(out.model, "qwen2.5-coder");
  CAF_CHECK_EQUAL(out.done_reason, "stop");
  CAF_CHECK_EQUAL(out.tokens_in, 12);
  CAF_CHECK_EQUAL(out.tokens_out, 3);
  CAF_CHECK_EQUAL(out.chunks, 2u); // the role-only chunk carries no content
}

CAF_TEST(a vllm stream yields the usage of its last chunk) {
  auto out = parse_every_way<parser>(vllm_stream);
  CAF_REQUIRE(!out.failed);
  CAF_CHECK(out.done);
  CAF_CHECK_EQUAL(out.text, "def f():\n    pass");
  CAF_CHECK_EQUAL(out.model, "Qwen/Qwen2.5-Coder-7B-Instruct");
  CAF_CHECK_EQUAL(out.done_reason, "length");
  CAF_CHECK_EQUAL(out.tokens_in, 20);
  CAF_CHECK_EQUAL(out.tokens_out, 7);
}

CAF_TEST(an lm studio stream without usage still completes) {
  auto out = parse_every_way<parser>(lm_studio_stream);
  CAF_REQUIRE(!out.failed);
  CAF_CHECK(out.done);
  CAF_CHECK_EQUAL(out.text, "ok");
  CAF_CHECK_EQUAL(out.done_reason, "stop");
  CAF_CHECK_EQUAL(out.tokens_in, 0);
  CAF_CHECK_EQUAL(out.tokens_out, 0);
}

CAF_TEST(timings count tokens when a server sends no usage) {
  auto stream = std::string{R"(data: {"choices":[{"index":0,"delta":{"content":"x"},)"
                            R"("finish_reason":"stop"}],"timings":{"prompt_n":4,"predicted_n":1}})"
                            "\n\ndata: [DONE]\n\n"};
  auto out = parse_every_way<parser>(stream);
  CAF_CHECK(out.done);
  CAF_CHECK_EQUAL(out.tokens_in, 4);
  CAF_CHECK_EQUAL(out.tokens_out, 1);
}

CAF_TEST(crlf and bare cr line endings parse like lf) {
  auto lf = parse_every_way<parser>(llama_cpp_stream);
  auto crlf = parse_every_way<parser>(replace_all(llama_cpp_stream, "\n", "\r\n"));
  auto cr = parse_every_way<parser>(replace_all(llama_cpp_stream, "\n", "\r"));
  CAF_CHECK(crlf == lf);
  CAF_CHECK(cr == lf);
  CAF_CHECK(crlf.done);
}

CAF_TEST(data without a space after the colon is the same data) {
  auto out = parse_every_way<parser>(replace_all(vllm_stream, "data: ", "data:"));
  CAF_CHECK(out == parse_every_way<parser>(vllm_stream));
}

CAF_TEST(comments pings and other fields are ignored) {
  std::string stream = ": ping - 2025-01-01 00:00:00.000000\n\n"
                       "retry: 3000\n"
                       "event: message\n"
                       "id: 1\n" +
                       first_events(lm_studio_stream, 1) + ":\n\n: keep-alive\n\n" +
                       lm_studio_stream.substr(first_events(lm_studio_stream, 1).size());
  auto out = parse_every_way<parser>(stream);
  CAF_CHECK(out == parse_every_way<parser>(lm_studio_stream));
  CAF_CHECK(out.done);
}

CAF_TEST(a data field split over two lines is joined with a newline) {
  auto out = parse_every_way<parser>("data: {\"choices\":[{\"index\":0,\"delta\":\ndata: "
                                     "{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n"
                                     "data: [DONE]\n\n");
  CAF_REQUIRE(!out.failed);
  CAF_CHECK_EQUAL(out.text, "a");
}

CAF_TEST(nothing after done is read) {
  auto out = parse_every_way<parser>(lm_studio_stream + "data: {not json\n\n");
  CAF_CHECK(!out.failed);
  CAF_CHECK(out.done);
}

CAF_TEST(an error event mid stream is classified) {
  // Newer llama.cpp and OpenAI: a data event holding {"error": {...}}.
  auto nested = parse_every_way<parser>(
      first_events(llama_cpp_stream, 2) +
      R"(data: {"error":{"code":500,"message":"llama runner crashed","type":"server_error"}})"
      "\n\n");
  CAF_REQUIRE(nested.failed);
  CAF_CHECK(nested.code == errc::backend_error);
  CAF_CHECK_NOT_EQUAL(nested.message.find("llama runner crashed"), std::string::npos);
  CAF_CHECK_EQUAL(nested.text, "Hel"); // what came before stays readable for logs
  // Older llama.cpp: a non-standard `error:` field holding the error object itself.
  auto field = parse_every_way<parser>(
      R"(error: {"code":400,"message":"the request exceeds the available context size. try increasing the context size or enable context shift","type":"exceed_context_size_error"})"
      "\n\n");
  CAF_REQUIRE(field.failed);
  CAF_CHECK(field.code == errc::context_too_long);
  CAF_CHECK(!field.retryable);
  // vLLM: the flat error object as data.
  auto flat = parse_every_way<parser>(
      first_events(vllm_stream, 1) +
      R"(data: {"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400})"
      "\n\n");
  CAF_REQUIRE(flat.failed);
  CAF_CHECK(flat.code == errc::context_too_long);
  // A typed error event.
  auto typed = parse_every_way<parser>("event: error\ndata: {\"message\":\"Loading model\"}\n\n");
  CAF_REQUIRE(typed.failed);
  CAF_CHECK(typed.code == errc::model_loading);
  CAF_CHECK(typed.retryable);
  auto plain = parse_every_way<parser>("event: error\ndata: out of memory\n\n");
  CAF_REQUIRE(plain.failed);
  CAF_CHECK(plain.code == errc::backend_error);
  CAF_CHECK_NOT_EQUAL(plain.message.find("out of memory"), std::string::npos);
}

CAF_TEST(garbage is a malformed stream) {
  for (auto bad : {"<html><body>502 Bad Gateway</body></html>\n", "data: not json\n\n",
                   "data: [1,2]\n\n", "data: {\"id\":\"x\"}\n\n", "hello world\n\n",
                   "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]\n\n"}) {
    auto out = parse_every_way<parser>(bad);
    CAF_CHECK(out.failed);
    CAF_CHECK(out.code == errc::malformed_stream);
    CAF_CHECK(!out.done);
  }
}

CAF_TEST(a truncated stream is a dropped connection) {
  // Cut between events, before any finish_reason.
  auto between = parse_every_way<parser>(first_events(llama_cpp_stream, 2));
  CAF_REQUIRE(between.failed);
  CAF_CHECK(between.code == errc::connection_dropped);
  CAF_CHECK(between.retryable);
  // Cut in the middle of an event's JSON.
  auto third = first_events(llama_cpp_stream, 2).size() + 30;
  auto inside = parse_every_way<parser>(llama_cpp_stream.substr(0, third));
  CAF_REQUIRE(inside.failed);
  CAF_CHECK(inside.code == errc::connection_dropped);
  // An empty body.
  auto empty = parse_every_way<parser>("");
  CAF_CHECK(empty.code == errc::connection_dropped);
}

CAF_TEST(a stream that finished but lost its done marker is complete) {
  auto out = parse_every_way<parser>(first_events(llama_cpp_stream, 5));
  CAF_CHECK(!out.failed);
  CAF_CHECK(out.done);
  CAF_CHECK_EQUAL(out.tokens_out, 3);
  // Even without the blank line after the last event.
  auto unterminated = llama_cpp_stream.substr(0, llama_cpp_stream.find("data: [DONE]") - 2);
  auto out2 = parse_every_way<parser>(unterminated);
  CAF_CHECK(out2.done);
  CAF_CHECK_EQUAL(out2.tokens_in, 12);
}

CAF_TEST(a non streaming answer is one object) {
  auto body = std::string{
      "\n  "
      R"({"id":"chatcmpl-d","object":"chat.completion","created":4,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"all of it"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}})"};
  auto out = parse_every_way<parser>(body);
  CAF_REQUIRE(!out.failed);
  CAF_CHECK(out.done);
  CAF_CHECK_EQUAL(out.text, "all of it");
  CAF_CHECK_EQUAL(out.model, "m");
  CAF_CHECK_EQUAL(out.done_reason, "stop");
  CAF_CHECK_EQUAL(out.tokens_in, 5);
  CAF_CHECK_EQUAL(out.tokens_out, 3);
  auto error = parse_every_way<parser>(R"({"error":{"message":"model 'x' not found"}})");
  CAF_CHECK(error.code == errc::model_not_found);
  auto cut = parse_every_way<parser>(body.substr(0, body.size() - 10));
  CAF_CHECK(cut.code == errc::malformed_stream);
  auto empty = parse_every_way<parser>(R"({"id":"x","choices":[]})");
  CAF_CHECK(empty.code == errc::malformed_stream);
}

CAF_TEST(reasoning chunks count as chunks but not as text) {
  auto out = parse_every_way<parser>(
      R"(data: {"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]})"
      "\n\n"
      R"(data: {"choices":[{"index":0,"delta":{"content":"yes"},"finish_reason":"stop"}]})"
      "\n\ndata: [DONE]\n\n");
  CAF_CHECK_EQUAL(out.text, "yes");
  CAF_CHECK_EQUAL(out.chunks, 2u);
}

CAF_TEST(http errors of both shapes are classified) {
  auto nested = openai::error_from_status(
      400,
      R"({"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}})");
  CAF_CHECK(nested.code == errc::context_too_long);
  CAF_CHECK(!nested.retryable);
  CAF_CHECK_NOT_EQUAL(nested.message.find("available context size"), std::string::npos);
  auto flat = openai::error_from_status(
      404,
      R"({"object":"error","message":"The model `gpt-x` does not exist.","type":"NotFoundError","param":null,"code":404})");
  CAF_CHECK(flat.code == errc::model_not_found);
  CAF_CHECK_NOT_EQUAL(flat.message.find("gpt-x"), std::string::npos);
  auto loading = openai::error_from_status(
      503, R"({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})", 2000);
  CAF_CHECK(loading.code == errc::model_loading);
  CAF_CHECK_EQUAL(loading.retry_after_ms, 2000);
  auto limited = openai::error_from_status(429, R"({"error":{"message":"slow down"}})", 1500);
  CAF_CHECK(limited.code == errc::backend_overloaded);
  CAF_CHECK_EQUAL(limited.retry_after_ms, 1500);
}

CAF_TEST(streamed request bodies ask for usage) {
  auto body =
      nlohmann::json::parse(openai::make_chat_body("m", {{"system", "s"}, {"user", "u"}}, true));
  CAF_CHECK_EQUAL(body["model"].get<std::string>(), "m");
  CAF_CHECK(body["stream"].get<bool>());
  CAF_CHECK(body["stream_options"]["include_usage"].get<bool>());
  CAF_CHECK_EQUAL(body["messages"][0]["role"].get<std::string>(), "system");
  CAF_CHECK_EQUAL(body["messages"][1]["content"].get<std::string>(), "u");
  auto whole = nlohmann::json::parse(openai::make_chat_body("m", {{"user", "u"}}, false));
  CAF_CHECK(!whole["stream"].get<bool>());
  CAF_CHECK(!whole.contains("stream_options"));
}

CAF_TEST(api paths accept base urls with and without v1) {
  CAF_CHECK_EQUAL(openai::api_path("", "chat/completions"), "/v1/chat/completions");
  CAF_CHECK_EQUAL(openai::api_path("/v1", "models"), "/v1/models");
  CAF_CHECK_EQUAL(openai::api_path("/proxy", "models"), "/proxy/v1/models");
  CAF_CHECK_EQUAL(openai::api_path("/proxy/v1", "chat/completions"), "/proxy/v1/chat/completions");
}

CAF_TEST(model lists give the ids) {
  std::string error;
  auto ids = openai::parse_models(
      R"({"object":"list","data":[{"id":"qwen2.5-coder","object":"model","owned_by":"llamacpp"},{"id":"llama3"},{"object":"model"},7]})",
      error);
  CAF_REQUIRE(ids.has_value());
  CAF_REQUIRE_EQUAL(ids->size(), 2u);
  CAF_CHECK_EQUAL((*ids)[0], "qwen2.5-coder");
  CAF_CHECK_EQUAL((*ids)[1], "llama3");
  CAF_CHECK(!openai::parse_models("nope", error).has_value());
  CAF_CHECK(!error.empty());
  CAF_CHECK(!openai::parse_models(R"({"models":[]})", error).has_value());
  CAF_CHECK(!openai::parse_models("[]", error).has_value());
}
