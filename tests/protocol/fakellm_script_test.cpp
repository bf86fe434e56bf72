#define CAF_SUITE fakellm_script
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_script.hpp"

#include <nlohmann/json.hpp>

using namespace offload::fakellm;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

std::string name_of(fault f) {
  return std::string{to_string(f)};
}

std::string joined(const std::vector<std::string_view>& pieces) {
  std::string result;
  for (auto piece : pieces)
    result.append(piece);
  return result;
}

usage sample_usage() {
  return make_usage(7, 3, 250ms);
}

} // namespace

// -- markers -------------------------------------------------------------------------------------

CAF_TEST(text without markers asks for nothing) {
  CAF_CHECK(parse_script("write a parser") == script{});
  CAF_CHECK(parse_script("") == script{});
  CAF_CHECK(parse_script("[[]] [[=]] [[latency]] [x]") == script{});
}

CAF_TEST(latency marker sets the wait) {
  CAF_CHECK_EQUAL(parse_script("[[latency=250]]").latency.count(), 250);
  CAF_CHECK_EQUAL(parse_script("slow please [[latency=0]]").latency.count(), 0);
  CAF_CHECK_EQUAL(parse_script("a[[latency=86400000]]b").latency.count(), 86400000);
}

CAF_TEST(malformed latency markers are ignored) {
  for (auto text :
       {"[[latency=abc]]", "[[latency=]]", "[[latency=-5]]", "[[latency=1.5]]", "[[latency=+5]]",
        "[[latency=5ms]]", "[[latency= 5]]", "[[ latency=5]]", "[[latency=86400001]]",
        "[[latency=99999999999999999999999]]", "[[latency=5", "[latency=5]", "[[LATENCY=5]]"})
    CAF_CHECK(parse_script(text) == script{});
}

CAF_TEST(every fault name is recognised) {
  for (auto f : injectable_faults) {
    auto text = "x [[fault=" + name_of(f) + "]] y";
    CAF_CHECK_EQUAL(name_of(parse_script(text).injected), name_of(f));
  }
}

CAF_TEST(unknown fault names are ignored) {
  for (auto text : {"[[fault=boom]]", "[[fault=]]", "[[fault=none]]", "[[fault=HTTP500]]",
                    "[[fault=http500 ]]", "[[fault:http500]]"})
    CAF_CHECK_EQUAL(name_of(parse_script(text).injected), "none");
}

CAF_TEST(several markers combine) {
  auto result = parse_script("[[latency=100]] do it [[fault=drop]]");
  CAF_CHECK_EQUAL(result.latency.count(), 100);
  CAF_CHECK_EQUAL(name_of(result.injected), "drop");
}

CAF_TEST(the last valid marker of a kind wins) {
  auto result = parse_script("[[fault=hang]][[latency=1]][[fault=http500]][[latency=2]]");
  CAF_CHECK_EQUAL(result.latency.count(), 2);
  CAF_CHECK_EQUAL(name_of(result.injected), "http500");
  // An invalid later marker does not undo a valid earlier one.
  auto kept = parse_script("[[latency=7]] [[latency=x]] [[fault=drop]] [[fault=nope]]");
  CAF_CHECK_EQUAL(kept.latency.count(), 7);
  CAF_CHECK_EQUAL(name_of(kept.injected), "drop");
}

CAF_TEST(markers are found next to stray brackets) {
  CAF_CHECK_EQUAL(parse_script("[[[latency=5]]").latency.count(), 5);
  CAF_CHECK_EQUAL(parse_script("[[note [[latency=6]]").latency.count(), 6);
  CAF_CHECK_EQUAL(parse_script("[[latency=8]]]]").latency.count(), 8);
}

// -- requests ------------------------------------------------------------------------------------

CAF_TEST(a chat request is read with streaming on by default) {
  auto parsed = parse_chat_request(R"({"model":"m:1b","messages":[
      {"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"options":{}})");
  CAF_REQUIRE(parsed.ok());
  CAF_CHECK_EQUAL(parsed.request.model, "m:1b");
  CAF_CHECK_EQUAL(parsed.request.messages.size(), 2u);
  CAF_CHECK_EQUAL(parsed.request.messages[1].content, "hi");
  CAF_CHECK(parsed.request.stream);
  CAF_CHECK(!parse_chat_request(R"({"model":"m","messages":[],"stream":false})").request.stream);
  CAF_CHECK(parse_chat_request(R"({"model":"m","messages":[],"stream":null})").request.stream);
}

CAF_TEST(a message without content counts as empty text) {
  auto parsed = parse_chat_request(
      R"({"model":"m","messages":[{"role":"assistant"},{"role":"user","content":null}]})");
  CAF_REQUIRE(parsed.ok());
  CAF_CHECK_EQUAL(parsed.request.messages[0].content, "");
  CAF_CHECK_EQUAL(parsed.request.messages[1].content, "");
}

CAF_TEST(invalid chat requests are rejected with a reason) {
  for (auto body :
       {"", "{", "[]", "42", R"({"messages":[]})", R"({"model":"","messages":[]})",
        R"({"model":3,"messages":[]})", R"({"model":"m"})", R"({"model":"m","messages":{}})",
        R"({"model":"m","messages":[1]})", R"({"model":"m","messages":[{"content":"x"}]})",
        R"({"model":"m","messages":[{"role":"user","content":5}]})",
        R"({"model":"m","messages":[],"stream":"yes"})"}) {
    auto parsed = parse_chat_request(body);
    CAF_CHECK(!parsed.ok());
    CAF_CHECK(!parsed.error.empty());
  }
}

CAF_TEST(model names without a tag mean latest) {
  std::vector<std::string> served = {"llama3.2:3b", "phi3", "qwen:latest"};
  CAF_CHECK(serves_model(served, "llama3.2:3b"));
  CAF_CHECK(!serves_model(served, "llama3.2"));
  CAF_CHECK(serves_model(served, "phi3:latest"));
  CAF_CHECK(serves_model(served, "phi3"));
  CAF_CHECK(serves_model(served, "qwen"));
  CAF_CHECK(!serves_model(served, "qwen:7b"));
  CAF_CHECK(!serves_model({}, "phi3"));
}

CAF_TEST(the reply is the last user message verbatim) {
  chat_request request;
  request.messages = {{"system", "sys"},
                      {"user", "first"},
                      {"assistant", "answer"},
                      {"user", " second [[latency=5]]\n"},
                      {"assistant", "partial"}};
  CAF_CHECK_EQUAL(std::string{reply_to(request)}, " second [[latency=5]]\n");
  request.messages = {{"system", "only a system prompt"}};
  CAF_CHECK_EQUAL(std::string{reply_to(request)}, "");
  CAF_CHECK_EQUAL(std::string{reply_to(chat_request{})}, "");
}

// -- tokens --------------------------------------------------------------------------------------

CAF_TEST(words are runs of non - whitespace) {
  CAF_CHECK_EQUAL(count_words(""), 0u);
  CAF_CHECK_EQUAL(count_words(" \t\n "), 0u);
  CAF_CHECK_EQUAL(count_words("one"), 1u);
  CAF_CHECK_EQUAL(count_words("  one\ttwo\r\nthree  "), 3u);
  CAF_CHECK_EQUAL(count_words("héllo wörld [[fault=drop]]"), 3u);
  CAF_CHECK_EQUAL(count_prompt_words({{"system", "a b"}, {"user", "c"}, {"assistant", ""}}), 3u);
}

CAF_TEST(pieces are words with their trailing whitespace) {
  auto pieces = split_pieces("  Hello  there\n world");
  CAF_REQUIRE_EQUAL(pieces.size(), 3u);
  CAF_CHECK_EQUAL(std::string{pieces[0]}, "  Hello  ");
  CAF_CHECK_EQUAL(std::string{pieces[1]}, "there\n ");
  CAF_CHECK_EQUAL(std::string{pieces[2]}, "world");
  CAF_CHECK(split_pieces("").empty());
  CAF_CHECK_EQUAL(split_pieces("   ").size(), 1u);
  CAF_CHECK_EQUAL(split_pieces("one").size(), 1u);
}

CAF_TEST(pieces concatenate to the reply exactly) {
  for (auto reply : {"", " ", "a", "a b", " a b ", "\n\nfn main() {\n  return 0;\n}\n", "x\ty  z",
                     "é ü [[fault=drop]]"}) {
    auto pieces = split_pieces(reply);
    CAF_CHECK_EQUAL(joined(pieces), reply);
    // One piece per word; a reply of only whitespace is a single piece.
    auto words = count_words(reply);
    size_t expected = words > 0 ? words : (std::string_view{reply}.empty() ? 0 : 1);
    CAF_CHECK_EQUAL(pieces.size(), expected);
  }
}

// -- responses -----------------------------------------------------------------------------------

CAF_TEST(created_at is UTC with nanoseconds) {
  using namespace std::chrono;
  auto t = sys_days{year{2024} / 5 / 1} + 12h + 34min + 56s + 123456789ns;
  CAF_CHECK_EQUAL(format_created_at(time_point_cast<system_clock::duration>(t)),
                  "2024-05-01T12:34:56.123456789Z");
  CAF_CHECK_EQUAL(format_created_at(system_clock::time_point{}), "1970-01-01T00:00:00.000000000Z");
}

CAF_TEST(usage counts tokens and adds up durations) {
  auto counts = sample_usage();
  CAF_CHECK_EQUAL(counts.prompt_tokens, 7u);
  CAF_CHECK_EQUAL(counts.reply_tokens, 3u);
  CAF_CHECK_EQUAL(counts.load.count(), 250'000'000);
  CAF_CHECK(counts.prompt_eval.count() > 0);
  CAF_CHECK(counts.eval.count() > 0);
  CAF_CHECK_EQUAL(counts.total, counts.load + counts.prompt_eval + counts.eval);
}

CAF_TEST(a content line is one JSON object on one line) {
  std::string out;
  auto piece = "say \"hi\"\\n\n\t\x01 é ";
  append_content_line(out, "m:1b", "2024-05-01T00:00:00.000000000Z", piece);
  CAF_REQUIRE(!out.empty());
  CAF_CHECK_EQUAL(out.back(), '\n');
  CAF_CHECK_EQUAL(out.find('\n'), out.size() - 1);
  auto line = json::parse(out);
  CAF_CHECK_EQUAL(line["model"].get<std::string>(), "m:1b");
  CAF_CHECK_EQUAL(line["created_at"].get<std::string>(), "2024-05-01T00:00:00.000000000Z");
  CAF_CHECK_EQUAL(line["message"]["role"].get<std::string>(), "assistant");
  CAF_CHECK_EQUAL(line["message"]["content"].get<std::string>(), piece);
  CAF_CHECK_EQUAL(line["done"].get<bool>(), false);
}

CAF_TEST(the final line carries the done fields) {
  std::string out = "previous line\n";
  append_final_line(out, "m", "t", sample_usage());
  auto last = out.substr(std::string{"previous line\n"}.size());
  CAF_CHECK_EQUAL(last.find('\n'), last.size() - 1);
  auto line = json::parse(last);
  auto counts = sample_usage();
  CAF_CHECK_EQUAL(line["message"]["content"].get<std::string>(), "");
  CAF_CHECK_EQUAL(line["done"].get<bool>(), true);
  CAF_CHECK_EQUAL(line["done_reason"].get<std::string>(), "stop");
  CAF_CHECK_EQUAL(line["prompt_eval_count"].get<uint64_t>(), 7u);
  CAF_CHECK_EQUAL(line["eval_count"].get<uint64_t>(), 3u);
  CAF_CHECK_EQUAL(line["total_duration"].get<int64_t>(), counts.total.count());
  CAF_CHECK_EQUAL(line["load_duration"].get<int64_t>(), counts.load.count());
  CAF_CHECK_EQUAL(line["prompt_eval_duration"].get<int64_t>(), counts.prompt_eval.count());
  CAF_CHECK_EQUAL(line["eval_duration"].get<int64_t>(), counts.eval.count());
}

CAF_TEST(a complete body holds the whole reply) {
  auto body = json::parse(make_complete_body("m", "t", "line 1\nline \"2\"", sample_usage()));
  CAF_CHECK_EQUAL(body["message"]["content"].get<std::string>(), "line 1\nline \"2\"");
  CAF_CHECK_EQUAL(body["done"].get<bool>(), true);
  CAF_CHECK_EQUAL(body["eval_count"].get<uint64_t>(), 3u);
}

CAF_TEST(the malformed line is one line that is not JSON) {
  CAF_CHECK_EQUAL(malformed_line.find('\n'), malformed_line.size() - 1);
  CAF_CHECK(json::parse(malformed_line, nullptr, false).is_discarded());
}

CAF_TEST(error bodies follow Ollama) {
  CAF_CHECK_EQUAL(make_error_body(model_not_found_message("x:1b")),
                  R"({"error":"model \"x:1b\" not found, try pulling it first"})");
  CAF_CHECK_EQUAL(make_error_body(injected_fault_message(fault::http500)),
                  R"({"error":"injected fault: http500"})");
}

CAF_TEST(tags list every model with details) {
  auto body = json::parse(make_tags_body({"qwen2.5-coder:7b", "llama3.2:3b", "phi3"}));
  auto& models = body["models"];
  CAF_REQUIRE_EQUAL(models.size(), 3u);
  CAF_CHECK_EQUAL(models[0]["name"].get<std::string>(), "qwen2.5-coder:7b");
  CAF_CHECK_EQUAL(models[0]["model"].get<std::string>(), "qwen2.5-coder:7b");
  CAF_CHECK_EQUAL(models[0]["details"]["family"].get<std::string>(), "qwen");
  CAF_CHECK_EQUAL(models[0]["details"]["format"].get<std::string>(), "gguf");
  CAF_CHECK_EQUAL(models[1]["details"]["parameter_size"].get<std::string>(), "3B");
  CAF_CHECK_EQUAL(models[0]["digest"].get<std::string>().size(), 64u);
  CAF_CHECK(models[0]["digest"] != models[1]["digest"]);
  CAF_CHECK(models[2]["size"].get<uint64_t>() > 0);
  CAF_CHECK(json::parse(make_tags_body({}))["models"].empty());
}

CAF_TEST(version and stats bodies) {
  CAF_CHECK_EQUAL(json::parse(make_version_body())["version"].get<std::string>(),
                  "0.0.0-offload-fakellm");
  stats counters;
  counters.requests = 9;
  counters.in_flight = 2;
  counters.max_concurrent = 4;
  counters.waiting = 1;
  counters.faults[static_cast<size_t>(fault::drop)] = 3;
  auto body = json::parse(make_stats_body(counters));
  CAF_CHECK_EQUAL(body["requests"].get<uint64_t>(), 9u);
  CAF_CHECK_EQUAL(body["in_flight"].get<size_t>(), 2u);
  CAF_CHECK_EQUAL(body["max_concurrent"].get<size_t>(), 4u);
  CAF_CHECK_EQUAL(body["waiting"].get<size_t>(), 1u);
  CAF_CHECK_EQUAL(body["faults"]["drop"].get<uint64_t>(), 3u);
  CAF_CHECK_EQUAL(body["faults"]["http500"].get<uint64_t>(), 0u);
  CAF_CHECK_EQUAL(body["faults"].size(), injectable_faults.size());
}

// -- slots ---------------------------------------------------------------------------------------

CAF_TEST(slots are granted up to the capacity) {
  slot_pool slots{2};
  CAF_CHECK(slots.try_acquire());
  CAF_CHECK(slots.try_acquire());
  CAF_CHECK(!slots.try_acquire());
  CAF_CHECK_EQUAL(slots.in_use(), 2u);
  slots.release();
  CAF_CHECK(slots.try_acquire());
  CAF_CHECK_EQUAL(slots.max_in_use(), 2u);
}

CAF_TEST(zero capacity means no limit) {
  slot_pool slots{0};
  for (int i = 0; i < 100; ++i)
    CAF_CHECK(slots.try_acquire());
  CAF_CHECK_EQUAL(slots.in_use(), 100u);
  CAF_CHECK_EQUAL(slots.max_in_use(), 100u);
}

CAF_TEST(waiters get slots first come first served) {
  slot_pool slots{1};
  std::vector<int> granted;
  CAF_REQUIRE(slots.try_acquire());
  slots.enqueue([&] { granted.push_back(1); });
  slots.enqueue([&] { granted.push_back(2); });
  CAF_CHECK_EQUAL(slots.waiting(), 2u);
  // A newcomer may not overtake the queue even if a slot happens to be free.
  slots.release();
  CAF_CHECK_EQUAL(granted, std::vector<int>{1});
  CAF_CHECK_EQUAL(slots.in_use(), 1u);
  CAF_CHECK(!slots.try_acquire());
  slots.release();
  CAF_CHECK_EQUAL(granted, (std::vector<int>{1, 2}));
  slots.release();
  CAF_CHECK_EQUAL(slots.in_use(), 0u);
  CAF_CHECK_EQUAL(slots.max_in_use(), 1u);
}

CAF_TEST(a cancelled waiter is skipped) {
  slot_pool slots{1};
  std::vector<int> granted;
  CAF_REQUIRE(slots.try_acquire());
  auto first = slots.enqueue([&] { granted.push_back(1); });
  slots.enqueue([&] { granted.push_back(2); });
  slots.cancel(first);
  CAF_CHECK_EQUAL(slots.waiting(), 1u);
  slots.release();
  CAF_CHECK_EQUAL(granted, std::vector<int>{2});
}

CAF_TEST(reset keeps the current load as the maximum) {
  slot_pool slots{0};
  slots.try_acquire();
  slots.try_acquire();
  slots.try_acquire();
  slots.release();
  slots.release();
  CAF_CHECK_EQUAL(slots.max_in_use(), 3u);
  slots.reset_max();
  CAF_CHECK_EQUAL(slots.max_in_use(), 1u);
}

CAF_TEST(a closed pool drops its waiters and grants nothing) {
  slot_pool slots{1};
  bool granted = false;
  CAF_REQUIRE(slots.try_acquire());
  slots.enqueue([&] { granted = true; });
  slots.close();
  CAF_CHECK_EQUAL(slots.waiting(), 0u);
  slots.release();
  CAF_CHECK(!granted);
  CAF_CHECK(!slots.try_acquire());
}

// -- routing -------------------------------------------------------------------------------------

CAF_TEST(known paths route to their endpoints) {
  auto chat = route_request("POST", "/api/chat");
  CAF_CHECK(chat.target == endpoint::chat);
  CAF_CHECK(chat.method_allowed);
  CAF_CHECK(route_request("GET", "/api/tags?verbose=1").target == endpoint::tags);
  CAF_CHECK(route_request("GET", "/api/version").target == endpoint::version);
  CAF_CHECK(route_request("GET", "/_fake/stats").target == endpoint::stats);
  CAF_CHECK(route_request("POST", "/_fake/reset_stats").target == endpoint::reset_stats);
  CAF_CHECK(route_request("GET", "/").target == endpoint::root);
}

CAF_TEST(wrong methods and unknown paths are told apart) {
  auto wrong = route_request("GET", "/api/chat");
  CAF_CHECK(wrong.target == endpoint::chat);
  CAF_CHECK(!wrong.method_allowed);
  CAF_CHECK_EQUAL(std::string{wrong.allowed_method}, "POST");
  CAF_CHECK(!route_request("POST", "/_fake/stats").method_allowed);
  CAF_CHECK(route_request("GET", "/api/chat/").target == endpoint::not_found);
  CAF_CHECK(route_request("POST", "/api/generate").target == endpoint::not_found);
  CAF_CHECK(route_request("GET", "").target == endpoint::not_found);
}
