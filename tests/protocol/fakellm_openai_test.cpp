#define CAF_SUITE fakellm_openai
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_openai.hpp"

#include <nlohmann/json.hpp>

using namespace offload::fakellm;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

completion_ids sample_ids() {
  return {"chatcmpl-fake-3", 1714566896, "m:1b"};
}

// The JSON of one SSE event, checking its framing on the way.
json event_json(const std::string& event) {
  CAF_REQUIRE(event.starts_with("data: "));
  CAF_REQUIRE(event.ends_with("\n\n"));
  CAF_CHECK_EQUAL(event.find('\n'), event.size() - 2);
  return json::parse(event.substr(6));
}

} // namespace

CAF_TEST(content chunks carry a delta) {
  std::string out;
  append_content_chunk(out, sample_ids(), "a \"b\"\n", false);
  auto chunk = event_json(out);
  CAF_CHECK_EQUAL(chunk["id"].get<std::string>(), "chatcmpl-fake-3");
  CAF_CHECK_EQUAL(chunk["object"].get<std::string>(), "chat.completion.chunk");
  CAF_CHECK_EQUAL(chunk["created"].get<int64_t>(), 1714566896);
  CAF_CHECK_EQUAL(chunk["model"].get<std::string>(), "m:1b");
  CAF_REQUIRE_EQUAL(chunk["choices"].size(), 1u);
  CAF_CHECK_EQUAL(chunk["choices"][0]["index"].get<int>(), 0);
  CAF_CHECK_EQUAL(chunk["choices"][0]["delta"]["content"].get<std::string>(), "a \"b\"\n");
  CAF_CHECK(chunk["choices"][0]["finish_reason"].is_null());
  CAF_CHECK(!chunk.contains("usage"));
}

CAF_TEST(the role chunk opens the stream) {
  std::string out;
  append_role_chunk(out, sample_ids(), true);
  auto chunk = event_json(out);
  CAF_CHECK_EQUAL(chunk["choices"][0]["delta"]["role"].get<std::string>(), "assistant");
  CAF_CHECK_EQUAL(chunk["choices"][0]["delta"]["content"].get<std::string>(), "");
  CAF_CHECK(chunk["usage"].is_null());
  CAF_CHECK(chunk.contains("usage"));
}

CAF_TEST(the finish chunk has an empty delta and a reason) {
  std::string out;
  append_finish_chunk(out, sample_ids(), "stop", false);
  auto chunk = event_json(out);
  CAF_CHECK(chunk["choices"][0]["delta"].empty());
  CAF_CHECK_EQUAL(chunk["choices"][0]["finish_reason"].get<std::string>(), "stop");
}

CAF_TEST(the usage chunk has no choices) {
  std::string out;
  append_usage_chunk(out, sample_ids(), make_usage(7, 3, 0ms));
  auto chunk = event_json(out);
  CAF_CHECK(chunk["choices"].is_array());
  CAF_CHECK(chunk["choices"].empty());
  CAF_CHECK_EQUAL(chunk["usage"]["prompt_tokens"].get<uint64_t>(), 7u);
  CAF_CHECK_EQUAL(chunk["usage"]["completion_tokens"].get<uint64_t>(), 3u);
  CAF_CHECK_EQUAL(chunk["usage"]["total_tokens"].get<uint64_t>(), 10u);
  CAF_CHECK_EQUAL(chunk["timings"]["predicted_n"].get<uint64_t>(), 3u);
}

CAF_TEST(done and error events) {
  CAF_CHECK_EQUAL(done_event, "data: [DONE]\n\n");
  std::string out;
  append_error_event(out, make_openai_error_body({500, "server_error", "boom", {}, {}}));
  auto event = event_json(out);
  CAF_CHECK_EQUAL(event["error"]["message"].get<std::string>(), "boom");
  CAF_CHECK_EQUAL(event["error"]["code"].get<int>(), 500);
}

CAF_TEST(the malformed event is one event that is not JSON) {
  CAF_CHECK(malformed_event.starts_with("data: "));
  CAF_CHECK(malformed_event.ends_with("\n\n"));
  CAF_CHECK(json::parse(malformed_event.substr(6), nullptr, false).is_discarded());
  CAF_CHECK(json::parse(malformed_completion_body, nullptr, false).is_discarded());
}

CAF_TEST(a completion body holds the whole reply and usage) {
  auto body =
      json::parse(make_completion_body(sample_ids(), "line 1\nline 2", make_usage(2, 4, 0ms)));
  CAF_CHECK_EQUAL(body["object"].get<std::string>(), "chat.completion");
  CAF_CHECK_EQUAL(body["choices"][0]["message"]["role"].get<std::string>(), "assistant");
  CAF_CHECK_EQUAL(body["choices"][0]["message"]["content"].get<std::string>(), "line 1\nline 2");
  CAF_CHECK_EQUAL(body["choices"][0]["finish_reason"].get<std::string>(), "stop");
  CAF_CHECK_EQUAL(body["usage"]["total_tokens"].get<uint64_t>(), 6u);
}

CAF_TEST(models list every model) {
  auto body = json::parse(make_models_body({"a:1b", "b"}));
  CAF_CHECK_EQUAL(body["object"].get<std::string>(), "list");
  CAF_REQUIRE_EQUAL(body["data"].size(), 2u);
  CAF_CHECK_EQUAL(body["data"][0]["id"].get<std::string>(), "a:1b");
  CAF_CHECK_EQUAL(body["data"][1]["object"].get<std::string>(), "model");
  CAF_CHECK(json::parse(make_models_body({}))["data"].empty());
}

CAF_TEST(errors follow llama.cpp) {
  auto body = json::parse(make_openai_error_body(
      {503, openai_error_type(error_kind::loading), "Loading model", {}, {}}));
  CAF_CHECK(body == json::parse(R"({"error":{"code":503,"message":"Loading model",
                                  "type":"unavailable_error"}})"));
  auto context = json::parse(make_openai_error_body(
      {400, openai_error_type(error_kind::context_too_long), "too long", 5000, 4096}));
  CAF_CHECK_EQUAL(context["error"]["type"].get<std::string>(), "exceed_context_size_error");
  CAF_CHECK_EQUAL(context["error"]["n_prompt_tokens"].get<uint64_t>(), 5000u);
  CAF_CHECK_EQUAL(context["error"]["n_ctx"].get<uint64_t>(), 4096u);
  CAF_CHECK_EQUAL(std::string{openai_error_type(error_kind::bad_request)}, "invalid_request_error");
  CAF_CHECK_EQUAL(std::string{openai_error_type(error_kind::model_not_found)}, "not_found_error");
  CAF_CHECK_EQUAL(std::string{openai_error_type(error_kind::internal)}, "server_error");
  CAF_CHECK_EQUAL(json::parse(health_ok_body)["status"].get<std::string>(), "ok");
}
