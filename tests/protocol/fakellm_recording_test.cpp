#define CAF_SUITE fakellm_recording
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_recording.hpp"

#include <nlohmann/json.hpp>

using namespace offload::fakellm;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

recorded_exchange streamed_exchange() {
  recorded_exchange e;
  e.key = "0123456789abcdef0123";
  e.occurrence = 2;
  e.method = "POST";
  e.target = "/api/chat";
  e.request_body = R"({"model":"m","stream":true})";
  e.status = 200;
  e.content_type = "application/x-ndjson";
  e.streamed = true;
  e.frames = {{40ms, "{\"a\":1}\n"}, {65ms, "{\"b\":2}\n"}, {60ms, "{\"done\":true}\n"}};
  return e;
}

} // namespace

CAF_TEST(equal requests have equal keys whatever their key order) {
  auto a = canonical_request("POST", "/api/chat", R"({"model":"m","stream":true,"x":[1,2]})", {});
  auto b = canonical_request("POST", "/api/chat",
                             "{ \"x\": [1, 2],\n \"stream\": true, \"model\": \"m\" }", {});
  CAF_CHECK_EQUAL(a, b);
  CAF_CHECK_EQUAL(a, "POST /api/chat\n{\"model\":\"m\",\"stream\":true,\"x\":[1,2]}");
  CAF_CHECK_EQUAL(recording_key(a), recording_key(b));
  CAF_CHECK_EQUAL(recording_key(a).size(), 20u);
  CAF_CHECK_NOT_EQUAL(recording_key(a), recording_key(canonical_request(
                                            "POST", "/v1/chat/completions",
                                            R"({"model":"m","stream":true,"x":[1,2]})", {})));
  CAF_CHECK_NOT_EQUAL(recording_key(a), recording_key(canonical_request("POST", "/api/chat",
                                                                        R"({"model":"n"})", {})));
}

CAF_TEST(ignored fields leave the key and other bodies stay verbatim) {
  auto with =
      canonical_request("POST", "/p", R"({"model":"m","user":"u1","seed":3})", {"user", "seed"});
  auto without = canonical_request("POST", "/p", R"({"model":"m"})", {"user", "seed"});
  CAF_CHECK_EQUAL(with, without);
  CAF_CHECK_EQUAL(canonical_request("GET", "/api/tags", "", {}), "GET /api/tags\n");
  CAF_CHECK_EQUAL(canonical_request("POST", "/p", "not json {", {}), "POST /p\nnot json {");
  // Only top-level fields are ignored.
  CAF_CHECK_NOT_EQUAL(canonical_request("POST", "/p", R"({"o":{"user":1}})", {"user"}),
                      canonical_request("POST", "/p", R"({"o":{}})", {"user"}));
}

CAF_TEST(exchanges survive a round trip through their file) {
  auto e = streamed_exchange();
  e.retry_after = 4s;
  e.complete = false;
  e.frames.push_back({70ms, std::string{"\xff\xfe bytes that are not UTF-8 \xc3", 28}});
  auto text = serialize_exchange(e);
  auto doc = json::parse(text);
  CAF_CHECK_EQUAL(doc["request"]["body"]["model"], "m");
  CAF_CHECK_EQUAL(doc["response"]["frames"][0]["data"], "{\"a\":1}\n");
  CAF_CHECK(doc["response"]["frames"][3].contains("base64"));
  auto parsed = parse_exchange(text);
  CAF_REQUIRE(parsed.ok());
  const auto& back = *parsed.exchange;
  CAF_CHECK_EQUAL(back.key, e.key);
  CAF_CHECK_EQUAL(back.occurrence, 2u);
  CAF_CHECK_EQUAL(back.method, "POST");
  CAF_CHECK_EQUAL(back.target, "/api/chat");
  CAF_CHECK_EQUAL(back.request_body, e.request_body);
  CAF_CHECK_EQUAL(back.status, 200u);
  CAF_CHECK_EQUAL(back.content_type, e.content_type);
  CAF_CHECK(back.retry_after == std::chrono::seconds{4});
  CAF_CHECK(back.streamed);
  CAF_CHECK(!back.complete);
  CAF_REQUIRE_EQUAL(back.frames.size(), e.frames.size());
  for (size_t i = 0; i < e.frames.size(); ++i) {
    CAF_CHECK_EQUAL(back.frames[i].data, e.frames[i].data);
    CAF_CHECK(back.frames[i].at == e.frames[i].at);
  }
  CAF_CHECK_EQUAL(exchange_file_name(e.key, 2), "0123456789abcdef0123-0002.json");
}

CAF_TEST(files that are not exchanges are rejected) {
  CAF_CHECK(!parse_exchange("").ok());
  CAF_CHECK(!parse_exchange("{}").ok());
  auto doc = json::parse(serialize_exchange(streamed_exchange()));
  auto broken = doc;
  broken["response"]["status"] = 42;
  CAF_CHECK(!parse_exchange(broken.dump()).ok());
  broken = doc;
  broken["occurrence"] = 0;
  CAF_CHECK(!parse_exchange(broken.dump()).ok());
  broken = doc;
  broken["response"]["frames"][0] = {{"at_ms", 1}, {"base64", "!!"}};
  CAF_CHECK(!parse_exchange(broken.dump()).ok());
  broken = doc;
  broken["response"].erase("frames");
  CAF_CHECK(!parse_exchange(broken.dump()).ok());
}

CAF_TEST(a replay sends the recorded frames at once or with their gaps) {
  auto e = streamed_exchange();
  auto fast = plan_replay(e, false);
  CAF_CHECK_EQUAL(fast.status, 200u);
  CAF_CHECK_EQUAL(fast.content_type, "application/x-ndjson");
  CAF_CHECK(fast.streamed);
  CAF_CHECK(!fast.cut);
  CAF_REQUIRE_EQUAL(fast.frames.size(), 3u);
  CAF_CHECK_EQUAL(fast.body, "{\"a\":1}\n{\"b\":2}\n{\"done\":true}\n");
  CAF_CHECK_EQUAL(fast.frame_bytes(1), "{\"b\":2}\n");
  for (const auto& f : fast.frames)
    CAF_CHECK(f.delay == 0ms);
  auto timed = plan_replay(e, true);
  CAF_CHECK(timed.frames[0].delay == 40ms);
  CAF_CHECK(timed.frames[1].delay == 25ms);
  CAF_CHECK(timed.frames[2].delay == 0ms); // a clock that went back never makes a negative wait
  e.complete = false;
  CAF_CHECK(plan_replay(e, false).cut);
}

CAF_TEST(a replayed body with a length goes out whole) {
  recorded_exchange e;
  e.status = 503;
  e.content_type = "application/json";
  e.retry_after = 2s;
  e.content_length = 13;
  e.frames = {{30ms, "{\"error\":\"x\"}"}};
  auto plan = plan_replay(e, true);
  CAF_CHECK(!plan.streamed);
  CAF_CHECK_EQUAL(plan.status, 503u);
  CAF_CHECK(plan.retry_after == std::chrono::seconds{2});
  CAF_CHECK_EQUAL(plan.content_length, 13u);
  CAF_REQUIRE_EQUAL(plan.frames.size(), 1u);
  CAF_CHECK(plan.frames[0].delay == 30ms);
  // A body that broke off keeps the length its header promised.
  e.complete = false;
  e.content_length = 40;
  auto cut = plan_replay(e, false);
  CAF_CHECK(cut.cut);
  CAF_CHECK_EQUAL(cut.content_length, 40u);
}

CAF_TEST(a request without a recording gets a 404 naming its key) {
  auto ollama = plan_missing_recording(api_family::ollama, "POST", "/api/chat", "abc", "dir");
  CAF_CHECK_EQUAL(ollama.status, 404u);
  auto ollama_body = json::parse(ollama.body);
  CAF_CHECK_EQUAL(ollama_body["error"],
                  "fakellm replay: no recording of POST /api/chat (key abc) in dir");
  auto openai =
      plan_missing_recording(api_family::openai, "POST", "/v1/chat/completions", "abc", "dir");
  auto body = json::parse(openai.body);
  CAF_CHECK_EQUAL(body["error"]["type"], "not_found_error");
  CAF_CHECK(body["error"]["message"].get<std::string>().find("key abc") != std::string::npos);
}
