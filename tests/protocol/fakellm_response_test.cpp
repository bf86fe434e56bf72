#define CAF_SUITE fakellm_response
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_ollama.hpp"
#include "protocol/fakellm_response.hpp"

#include <nlohmann/json.hpp>

using namespace offload::fakellm;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

chat_request request_for(std::string prompt, bool stream = true, bool include_usage = false) {
  chat_request request;
  request.model = "m:1b";
  request.messages = {{"system", "be brief"}, {"user", std::move(prompt)}};
  request.stream = stream;
  request.include_usage = include_usage;
  return request;
}

action action_for(std::string_view prompt, uint64_t attempt = 1) {
  return resolve_action(parse_script(prompt), attempt);
}

response_plan plan_for(dialect d, const chat_request& request, uint64_t attempt = 1) {
  return plan_generation(d, request, action_for(reply_to(request), attempt),
                         {std::chrono::system_clock::time_point{} + 1000s, 7});
}

// The JSON of each NDJSON line of a plan's body.
std::vector<json> ndjson_lines(const response_plan& plan) {
  std::vector<json> lines;
  size_t start = 0;
  while (start < plan.body.size()) {
    auto end = plan.body.find('\n', start);
    CAF_REQUIRE(end != std::string::npos);
    lines.push_back(json::parse(plan.body.substr(start, end - start), nullptr, false));
    start = end + 1;
  }
  return lines;
}

// The data of each SSE event of a plan's body, "[DONE]" included as text.
std::vector<std::string> sse_data(const response_plan& plan) {
  std::vector<std::string> events;
  size_t start = 0;
  while (start < plan.body.size()) {
    auto end = plan.body.find("\n\n", start);
    CAF_REQUIRE(end != std::string::npos);
    auto event = plan.body.substr(start, end - start);
    CAF_REQUIRE(event.starts_with("data: "));
    events.push_back(event.substr(6));
    start = end + 2;
  }
  return events;
}

// The text of a stream of OpenAI events (deltas) or Ollama lines.
std::string streamed_text(const std::vector<std::string>& events) {
  std::string text;
  for (const auto& data : events) {
    if (data == "[DONE]")
      continue;
    auto chunk = json::parse(data);
    if (chunk.contains("choices") && !chunk["choices"].empty() &&
        chunk["choices"][0]["delta"].contains("content"))
      text += chunk["choices"][0]["delta"]["content"].get<std::string>();
  }
  return text;
}

std::vector<int64_t> delays_of(const response_plan& plan) {
  std::vector<int64_t> delays;
  for (const auto& f : plan.frames)
    delays.push_back(f.delay.count());
  return delays;
}

} // namespace

// -- OpenAI streams ------------------------------------------------------------------------------

CAF_TEST(an openai stream is role and deltas then finish then done) {
  auto plan = plan_for(dialect::openai_chat, request_for("one two three"));
  CAF_CHECK_EQUAL(plan.status, 200);
  CAF_CHECK(plan.streamed);
  CAF_CHECK(!plan.cut);
  CAF_CHECK_EQUAL(std::string{plan.content_type}, "text/event-stream");
  auto events = sse_data(plan);
  CAF_REQUIRE_EQUAL(events.size(), 6u); // role, 3 deltas, finish, [DONE]
  auto role = json::parse(events[0]);
  CAF_CHECK_EQUAL(role["choices"][0]["delta"]["role"].get<std::string>(), "assistant");
  CAF_CHECK_EQUAL(role["id"].get<std::string>(), "chatcmpl-fake-7");
  CAF_CHECK_EQUAL(role["created"].get<int64_t>(), 1000);
  CAF_CHECK_EQUAL(streamed_text(events), "one two three");
  auto finish = json::parse(events[4]);
  CAF_CHECK_EQUAL(finish["choices"][0]["finish_reason"].get<std::string>(), "stop");
  CAF_CHECK(!finish.contains("usage"));
  CAF_CHECK_EQUAL(events[5], "[DONE]");
  // Every event has the same id.
  for (size_t i = 0; i + 1 < events.size(); ++i)
    CAF_CHECK_EQUAL(json::parse(events[i])["id"].get<std::string>(), "chatcmpl-fake-7");
}

CAF_TEST(include_usage adds a usage chunk before done) {
  auto plan = plan_for(dialect::openai_chat, request_for("one two", true, true));
  auto events = sse_data(plan);
  CAF_REQUIRE_EQUAL(events.size(), 6u); // role, 2 deltas, finish, usage, [DONE]
  for (size_t i = 0; i < 4; ++i) {
    auto chunk = json::parse(events[i]);
    CAF_CHECK(chunk.contains("usage"));
    CAF_CHECK(chunk["usage"].is_null());
  }
  auto usage_chunk = json::parse(events[4]);
  CAF_CHECK(usage_chunk["choices"].empty());
  CAF_CHECK_EQUAL(usage_chunk["usage"]["prompt_tokens"].get<uint64_t>(), 4u); // "be brief one two"
  CAF_CHECK_EQUAL(usage_chunk["usage"]["completion_tokens"].get<uint64_t>(), 2u);
  CAF_CHECK_EQUAL(usage_chunk["usage"]["total_tokens"].get<uint64_t>(), 6u);
  CAF_CHECK_EQUAL(events[5], "[DONE]");
}

CAF_TEST(an empty openai reply still finishes) {
  auto events = sse_data(plan_for(dialect::openai_chat, request_for("")));
  CAF_REQUIRE_EQUAL(events.size(), 3u);
  CAF_CHECK_EQUAL(json::parse(events[1])["choices"][0]["finish_reason"].get<std::string>(), "stop");
}

CAF_TEST(an unstreamed openai answer is one completion) {
  auto plan = plan_for(dialect::openai_chat, request_for("one two", false));
  CAF_CHECK(!plan.streamed);
  CAF_CHECK_EQUAL(plan.content_length, plan.body.size());
  CAF_CHECK_EQUAL(plan.frames.size(), 1u);
  auto body = json::parse(plan.body);
  CAF_CHECK_EQUAL(body["choices"][0]["message"]["content"].get<std::string>(), "one two");
  CAF_CHECK_EQUAL(body["usage"]["completion_tokens"].get<uint64_t>(), 2u);
}

// -- Ollama streams ------------------------------------------------------------------------------

CAF_TEST(an ollama stream is one line per word then done) {
  auto plan = plan_for(dialect::ollama_chat, request_for("one two three"));
  CAF_CHECK(plan.streamed);
  CAF_CHECK_EQUAL(std::string{plan.content_type}, "application/x-ndjson");
  auto lines = ndjson_lines(plan);
  CAF_REQUIRE_EQUAL(lines.size(), 4u);
  CAF_CHECK_EQUAL(lines[0]["message"]["content"].get<std::string>(), "one ");
  CAF_CHECK_EQUAL(lines[3]["done"].get<bool>(), true);
  CAF_CHECK_EQUAL(lines[3]["eval_count"].get<uint64_t>(), 3u);
  // One frame per line, so that each goes out as its own HTTP chunk.
  CAF_CHECK_EQUAL(plan.frames.size(), 4u);
  for (size_t i = 0; i < plan.frames.size(); ++i) {
    auto bytes = plan.frame_bytes(i);
    CAF_CHECK_EQUAL(bytes.find('\n'), bytes.size() - 1);
  }
  CAF_CHECK_EQUAL(json::parse(plan.frame_bytes(1))["message"]["content"].get<std::string>(),
                  "two ");
}

CAF_TEST(a generate stream uses response) {
  auto lines = ndjson_lines(plan_for(dialect::ollama_generate, request_for("a b")));
  CAF_REQUIRE_EQUAL(lines.size(), 3u);
  CAF_CHECK_EQUAL(lines[0]["response"].get<std::string>(), "a ");
  CAF_CHECK(lines[2]["done"].get<bool>());
}

CAF_TEST(an unstreamed ollama answer is the final object) {
  auto plan = plan_for(dialect::ollama_chat, request_for("one two", false));
  auto body = json::parse(plan.body);
  CAF_CHECK_EQUAL(body["message"]["content"].get<std::string>(), "one two");
  CAF_CHECK(body["done"].get<bool>());
  CAF_CHECK_EQUAL(plan.content_length, plan.body.size());
}

// -- faults --------------------------------------------------------------------------------------

CAF_TEST(error faults answer in the shape of each api) {
  auto ollama = plan_for(dialect::ollama_chat, request_for("x [[fault=http500]]"));
  CAF_CHECK_EQUAL(ollama.status, 500);
  CAF_CHECK(!ollama.streamed);
  CAF_CHECK(json::parse(ollama.body) == json{{"error", "injected fault: http500"}});
  auto openai = plan_for(dialect::openai_chat, request_for("x [[fault=http500]]"));
  CAF_CHECK(json::parse(openai.body) ==
            json::parse(R"({"error":{"code":500,"message":"injected fault: http500",
                                     "type":"server_error"}})"));
}

CAF_TEST(a 503 fault says server busy) {
  for (auto d : {dialect::ollama_chat, dialect::openai_chat}) {
    auto plan = plan_for(d, request_for("x [[fault=http503]]"));
    CAF_CHECK_EQUAL(plan.status, 503);
    CAF_CHECK(!plan.retry_after);
    CAF_CHECK(plan.body.find("server busy, please try again.  maximum pending requests exceeded") !=
              std::string::npos);
  }
  auto openai = json::parse(plan_for(dialect::openai_chat, request_for("[[fault=http503]]")).body);
  CAF_CHECK_EQUAL(openai["error"]["type"].get<std::string>(), "unavailable_error");
  auto later = plan_for(dialect::ollama_chat, request_for("[[fault=http503:retry_after=3]]"));
  CAF_CHECK_EQUAL(later.retry_after->count(), 3);
}

CAF_TEST(a 429 fault carries retry after) {
  auto plan = plan_for(dialect::openai_chat, request_for("[[fault=http429]]"));
  CAF_CHECK_EQUAL(plan.status, 429);
  CAF_CHECK_EQUAL(plan.retry_after->count(), 1);
  CAF_CHECK_EQUAL(json::parse(plan.body)["error"]["code"].get<int>(), 429);
  auto ollama = plan_for(dialect::ollama_chat, request_for("[[fault=http429:retry_after=2]]"));
  CAF_CHECK_EQUAL(ollama.retry_after->count(), 2);
  CAF_CHECK(json::parse(ollama.body).contains("error"));
}

CAF_TEST(notfound names the requested model) {
  auto plan = plan_for(dialect::ollama_chat, request_for("[[fault=notfound]]"));
  CAF_CHECK_EQUAL(plan.status, 404);
  CAF_CHECK(json::parse(plan.body) ==
            json{{"error", "model \"m:1b\" not found, try pulling it first"}});
  auto openai = json::parse(plan_for(dialect::openai_chat, request_for("[[fault=notfound]]")).body);
  CAF_CHECK_EQUAL(openai["error"]["type"].get<std::string>(), "not_found_error");
}

CAF_TEST(context too long follows llama.cpp and ollama) {
  auto openai = plan_for(dialect::openai_chat, request_for("[[fault=context_too_long]] a b"));
  CAF_CHECK_EQUAL(openai.status, 400);
  auto error = json::parse(openai.body)["error"];
  CAF_CHECK_EQUAL(error["code"].get<int>(), 400);
  CAF_CHECK_EQUAL(error["type"].get<std::string>(), "exceed_context_size_error");
  CAF_CHECK_EQUAL(error["n_ctx"].get<uint64_t>(), 4096u);
  CAF_CHECK(error["n_prompt_tokens"].get<uint64_t>() > error["n_ctx"].get<uint64_t>());
  CAF_CHECK(error["message"].get<std::string>().find("exceeds the available context size") !=
            std::string::npos);
  auto ollama = plan_for(dialect::ollama_chat, request_for("[[fault=context_too_long]]"));
  CAF_CHECK_EQUAL(ollama.status, 400);
  CAF_CHECK(json::parse(ollama.body) ==
            json{{"error", "the input length exceeds the context length"}});
}

CAF_TEST(drop cuts the stream halfway) {
  auto ollama = plan_for(dialect::ollama_chat, request_for("a b c d [[fault=drop]]"));
  CAF_CHECK(ollama.cut);
  auto lines = ndjson_lines(ollama);
  CAF_CHECK_EQUAL(lines.size(), 3u); // 5 words, 3 sent, no final line
  for (const auto& line : lines)
    CAF_CHECK(!line["done"].get<bool>());
  auto openai = plan_for(dialect::openai_chat, request_for("a b c d [[fault=drop]]"));
  CAF_CHECK(openai.cut);
  auto events = sse_data(openai);
  CAF_CHECK_EQUAL(events.size(), 4u); // role and 3 deltas: no finish, no [DONE]
  CAF_CHECK_EQUAL(streamed_text(events), "a b c ");
  // Unstreamed: the header promises the whole body and half arrives.
  auto plain = plan_for(dialect::openai_chat, request_for("a b [[fault=drop]]", false));
  CAF_CHECK(plain.cut);
  CAF_CHECK(plain.body.size() < plain.content_length);
  CAF_CHECK_EQUAL(plain.frames.back().end, plain.body.size());
}

CAF_TEST(midstream error sends good chunks then an error with status 200) {
  auto ollama = plan_for(dialect::ollama_chat, request_for("a b c [[fault=midstream_error]]"));
  CAF_CHECK_EQUAL(ollama.status, 200);
  CAF_CHECK(!ollama.cut);
  auto lines = ndjson_lines(ollama);
  CAF_REQUIRE_EQUAL(lines.size(), 3u);
  CAF_CHECK_EQUAL(lines[0]["message"]["content"].get<std::string>(), "a ");
  CAF_CHECK(lines[2] == json{{"error", "injected fault: midstream_error"}});
  auto openai = plan_for(dialect::openai_chat, request_for("a b c [[fault=midstream_error]]"));
  CAF_CHECK_EQUAL(openai.status, 200);
  auto events = sse_data(openai);
  CAF_REQUIRE_EQUAL(events.size(), 4u); // role, 2 deltas, error; no [DONE]
  auto error = json::parse(events.back());
  CAF_CHECK_EQUAL(error["error"]["code"].get<int>(), 500);
  CAF_CHECK_EQUAL(error["error"]["type"].get<std::string>(), "server_error");
  CAF_CHECK_EQUAL(streamed_text({events.begin(), events.end() - 1}), "a b ");
  // Without a stream, the failure can only be a status.
  auto plain = plan_for(dialect::ollama_chat, request_for("a [[fault=midstream_error]]", false));
  CAF_CHECK_EQUAL(plain.status, 500);
}

CAF_TEST(malformed comes first then the whole answer) {
  auto ollama = plan_for(dialect::ollama_chat, request_for("a b [[fault=malformed]]"));
  auto lines = ndjson_lines(ollama);
  CAF_REQUIRE_EQUAL(lines.size(), 5u);
  CAF_CHECK(lines[0].is_discarded());
  CAF_CHECK(lines[4]["done"].get<bool>());
  auto openai = plan_for(dialect::openai_chat, request_for("a b [[fault=malformed]]"));
  auto events = sse_data(openai);
  CAF_CHECK(json::parse(events[0], nullptr, false).is_discarded());
  CAF_CHECK_EQUAL(events.back(), "[DONE]");
  auto plain = plan_for(dialect::openai_chat, request_for("a [[fault=malformed]]", false));
  CAF_CHECK(json::parse(plain.body, nullptr, false).is_discarded());
}

CAF_TEST(a limited fault lets the retry through) {
  auto request = request_for("echo [[fault=http503:times=2]]");
  CAF_CHECK_EQUAL(plan_for(dialect::openai_chat, request, 1).status, 503);
  CAF_CHECK_EQUAL(plan_for(dialect::openai_chat, request, 2).status, 503);
  auto third = plan_for(dialect::openai_chat, request, 3);
  CAF_CHECK_EQUAL(third.status, 200);
  CAF_CHECK_EQUAL(streamed_text(sse_data(third)), "echo [[fault=http503:times=2]]");
}

// -- delays --------------------------------------------------------------------------------------

CAF_TEST(stream frames carry the first token and token delays) {
  auto prompt = "a b c [[fault=slow_first_token=300]] [[fault=slow_tokens=20]]";
  auto ollama = plan_for(dialect::ollama_chat, request_for(prompt));
  // Five words and the final line: the first waits 300 ms, every later one 20 ms.
  CAF_CHECK_EQUAL(delays_of(ollama), (std::vector<int64_t>{300, 20, 20, 20, 20, 20}));
  auto openai = plan_for(dialect::openai_chat, request_for(prompt, true, true));
  // The role travels with the first delta; finish, usage and [DONE] go out together.
  CAF_CHECK_EQUAL(delays_of(openai), (std::vector<int64_t>{300, 20, 20, 20, 20, 20}));
  CAF_CHECK(openai.frame_bytes(0).find("\"role\"") != std::string_view::npos);
  CAF_CHECK(openai.frame_bytes(5).ends_with("data: [DONE]\n\n"));
  auto plain = plan_for(dialect::ollama_chat, request_for("a b c"));
  CAF_CHECK_EQUAL(delays_of(plain), (std::vector<int64_t>{0, 0, 0, 0}));
}

CAF_TEST(unstreamed answers wait the delays up front) {
  auto prompt = "a b [[latency=100]] [[fault=slow_first_token=300]] [[fault=slow_tokens=20]]";
  auto request = request_for(prompt, false);
  // 100 ms latency, 300 ms for the first token, 20 ms for each of the 5 pieces.
  CAF_CHECK_EQUAL(wait_before_response(action_for(prompt), request).count(), 500);
  CAF_CHECK_EQUAL(wait_before_response(action_for(prompt), request_for(prompt)).count(), 100);
  // Errors do not generate, so nothing slows them down.
  auto failing = "[[fault=slow_tokens=20]] [[fault=http500]]";
  CAF_CHECK_EQUAL(wait_before_response(action_for(failing), request_for(failing, false)).count(),
                  0);
}

// -- preload, errors and pulls -------------------------------------------------------------------

CAF_TEST(preload answers load or unload) {
  chat_request request;
  request.model = "m:1b";
  request.preload = true;
  auto load = json::parse(plan_preload(dialect::ollama_chat, request, {}).body);
  CAF_CHECK_EQUAL(load["done_reason"].get<std::string>(), "load");
  request.keep_alive = 0ms;
  auto unload = json::parse(plan_preload(dialect::ollama_generate, request, {}).body);
  CAF_CHECK_EQUAL(unload["done_reason"].get<std::string>(), "unload");
  CAF_CHECK(unload.contains("response"));
}

CAF_TEST(plain errors take the shape of each api) {
  auto reply = make_error_reply(error_kind::loading, "Loading model");
  CAF_CHECK_EQUAL(reply.status, 503);
  CAF_CHECK(json::parse(plan_error(api_family::openai, reply).body) ==
            json::parse(R"({"error":{"code":503,"message":"Loading model",
                                     "type":"unavailable_error"}})"));
  CAF_CHECK(json::parse(plan_error(api_family::ollama, reply).body) ==
            json{{"error", "Loading model"}});
  CAF_CHECK_EQUAL(make_error_reply(error_kind::bad_request, "x").status, 400);
}

CAF_TEST(pulls stream progress or fail like ollama) {
  auto ok = plan_pull({"llama3.2:3b", true}, true);
  CAF_CHECK(ok.streamed);
  auto lines = ndjson_lines(ok);
  CAF_CHECK_EQUAL(lines.front()["status"].get<std::string>(), "pulling manifest");
  CAF_CHECK_EQUAL(lines.back()["status"].get<std::string>(), "success");
  CAF_CHECK_EQUAL(ok.frames.size(), lines.size());
  // The first line at once, every later one after a pause.
  CAF_CHECK_EQUAL(ok.frames.front().delay.count(), 0);
  CAF_CHECK(ok.frames.back().delay == pull_line_interval);
  auto missing = plan_pull({"nope:1b", true}, false);
  CAF_CHECK_EQUAL(missing.status, 200);
  auto missing_lines = ndjson_lines(missing);
  CAF_REQUIRE_EQUAL(missing_lines.size(), 2u);
  CAF_CHECK_EQUAL(missing_lines[1]["error"].get<std::string>(),
                  "pull model manifest: file does not exist");
  CAF_CHECK_EQUAL(plan_pull({"nope:1b", false}, false).status, 500);
  auto whole = plan_pull({"llama3.2:3b", false}, true);
  CAF_CHECK(json::parse(whole.body) == json{{"status", "success"}});
  auto invalid = plan_pull({"bad name", true}, false);
  CAF_CHECK_EQUAL(invalid.status, 400);
  CAF_CHECK(json::parse(invalid.body) == json{{"error", "invalid model name"}});
}
