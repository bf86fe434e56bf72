#define CAF_SUITE fakellm_request
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_request.hpp"

using namespace offload::fakellm;
using namespace std::chrono_literals;

namespace {

std::string joined(const std::vector<std::string_view>& pieces) {
  std::string result;
  for (auto piece : pieces)
    result.append(piece);
  return result;
}

int64_t keep_alive_ms(std::string_view text) {
  auto parsed = parse_keep_alive(text);
  CAF_REQUIRE(parsed.has_value());
  return parsed->count();
}

} // namespace

// -- Ollama chat ---------------------------------------------------------------------------------

CAF_TEST(a chat request is read with streaming on by default) {
  auto parsed = parse_chat_request(R"({"model":"m:1b","messages":[
      {"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"options":{}})");
  CAF_REQUIRE(parsed.ok());
  CAF_CHECK_EQUAL(parsed.request.model, "m:1b");
  CAF_CHECK_EQUAL(parsed.request.messages.size(), 2u);
  CAF_CHECK_EQUAL(parsed.request.messages[1].content, "hi");
  CAF_CHECK(parsed.request.stream);
  CAF_CHECK(!parsed.request.preload);
  CAF_CHECK(!parsed.request.keep_alive);
  CAF_CHECK(!parse_chat_request(R"({"model":"m","messages":[{"role":"user"}],"stream":false})")
                 .request.stream);
  CAF_CHECK(parse_chat_request(R"({"model":"m","messages":[{"role":"user"}],"stream":null})")
                .request.stream);
}

CAF_TEST(a message without content counts as empty text) {
  auto parsed = parse_chat_request(
      R"({"model":"m","messages":[{"role":"assistant"},{"role":"user","content":null}]})");
  CAF_REQUIRE(parsed.ok());
  CAF_CHECK_EQUAL(parsed.request.messages[0].content, "");
  CAF_CHECK_EQUAL(parsed.request.messages[1].content, "");
}

CAF_TEST(a chat request without messages preloads) {
  for (auto body : {R"({"model":"m"})", R"({"model":"m","messages":[]})",
                    R"({"model":"m","messages":null,"keep_alive":"10m"})"}) {
    auto parsed = parse_chat_request(body);
    CAF_REQUIRE(parsed.ok());
    CAF_CHECK(parsed.request.preload);
  }
  auto kept = parse_chat_request(R"({"model":"m","keep_alive":-1})");
  CAF_CHECK_EQUAL(kept.request.keep_alive->count(), -1);
  auto unload = parse_chat_request(R"({"model":"m","keep_alive":0})");
  CAF_CHECK_EQUAL(unload.request.keep_alive->count(), 0);
}

CAF_TEST(invalid chat requests are rejected with a reason) {
  for (auto body :
       {"", "{", "[]", "42", R"({"messages":[]})", R"({"model":"","messages":[]})",
        R"({"model":3,"messages":[]})", R"({"model":"m","messages":{}})",
        R"({"model":"m","messages":[1]})", R"({"model":"m","messages":[{"content":"x"}]})",
        R"({"model":"m","messages":[{"role":"user","content":5}]})",
        R"({"model":"m","messages":[],"stream":"yes"})", R"({"model":"m","keep_alive":"5"})",
        R"({"model":"m","keep_alive":true})", R"({"model":"m","keep_alive":"soon"})"}) {
    auto parsed = parse_chat_request(body);
    CAF_CHECK(!parsed.ok());
    CAF_CHECK(!parsed.error.empty());
  }
}

CAF_TEST(keep alive reads go durations) {
  CAF_CHECK_EQUAL(keep_alive_ms("5m"), 300'000);
  CAF_CHECK_EQUAL(keep_alive_ms("1h30m"), 5'400'000);
  CAF_CHECK_EQUAL(keep_alive_ms("1.5s"), 1'500);
  CAF_CHECK_EQUAL(keep_alive_ms(".5s"), 500);
  CAF_CHECK_EQUAL(keep_alive_ms("250ms"), 250);
  CAF_CHECK_EQUAL(keep_alive_ms("0"), 0);
  CAF_CHECK_EQUAL(keep_alive_ms("+10s"), 10'000);
  // Any negative duration keeps the model loaded forever.
  CAF_CHECK_EQUAL(keep_alive_ms("-1s"), -1);
  CAF_CHECK_EQUAL(keep_alive_ms("-5m"), -1);
  for (auto text : {"", "5", "-1", "m", "5x", "5 m", "1..5s", ".s", "3000000h"})
    CAF_CHECK(!parse_keep_alive(text));
}

// -- Ollama generate -----------------------------------------------------------------------------

CAF_TEST(a generate request becomes system and user messages) {
  auto parsed = parse_generate_request(
      R"({"model":"m","system":"be brief","prompt":"hi there","stream":false,"keep_alive":"1m"})");
  CAF_REQUIRE(parsed.ok());
  CAF_REQUIRE_EQUAL(parsed.request.messages.size(), 2u);
  CAF_CHECK_EQUAL(parsed.request.messages[0].role, "system");
  CAF_CHECK_EQUAL(parsed.request.messages[1].role, "user");
  CAF_CHECK_EQUAL(std::string{reply_to(parsed.request)}, "hi there");
  CAF_CHECK(!parsed.request.stream);
  CAF_CHECK_EQUAL(parsed.request.keep_alive->count(), 60'000);
  auto prompt_only = parse_generate_request(R"({"model":"m","prompt":"x"})");
  CAF_CHECK_EQUAL(prompt_only.request.messages.size(), 1u);
}

CAF_TEST(a generate request without prompt preloads) {
  CAF_CHECK(parse_generate_request(R"({"model":"m"})").request.preload);
  CAF_CHECK(parse_generate_request(R"({"model":"m","prompt":"","keep_alive":0})").request.preload);
  CAF_CHECK(!parse_generate_request(R"({"model":"m","system":"s"})").request.preload);
  for (auto body :
       {R"({"prompt":"x"})", R"({"model":"m","prompt":5})", R"({"model":"m","system":[]})", "nope"})
    CAF_CHECK(!parse_generate_request(body).ok());
}

// -- OpenAI chat ---------------------------------------------------------------------------------

CAF_TEST(an openai request does not stream unless asked) {
  auto parsed = parse_openai_chat_request(
      R"({"model":"m","messages":[{"role":"user","content":"hello"}],"max_tokens":5})");
  CAF_REQUIRE(parsed.ok());
  CAF_CHECK(!parsed.request.stream);
  CAF_CHECK(!parsed.request.include_usage);
  CAF_CHECK(!parsed.request.preload);
  auto streamed = parse_openai_chat_request(
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,
          "stream_options":{"include_usage":true}})");
  CAF_REQUIRE(streamed.ok());
  CAF_CHECK(streamed.request.stream);
  CAF_CHECK(streamed.request.include_usage);
}

CAF_TEST(openai content parts are joined) {
  auto parsed = parse_openai_chat_request(R"({"model":"m","messages":[
      {"role":"user","content":[{"type":"text","text":"one "},{"type":"image_url",
       "image_url":{"url":"x"}},{"type":"text","text":"two"}]},
      {"role":"assistant","content":null}]})");
  CAF_REQUIRE(parsed.ok());
  CAF_CHECK_EQUAL(parsed.request.messages[0].content, "one two");
  CAF_CHECK_EQUAL(parsed.request.messages[1].content, "");
}

CAF_TEST(invalid openai requests are rejected with a reason) {
  for (auto body :
       {"", "[]", R"({"messages":[{"role":"user","content":"x"}]})", R"({"model":"m"})",
        R"({"model":"m","messages":[]})", R"({"model":"m","messages":[{"content":"x"}]})",
        R"({"model":"m","messages":[{"role":"user","content":5}]})",
        R"({"model":"m","messages":[{"role":"user","content":["x"]}]})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":1})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":1})",
        R"({"model":"m","messages":[{"role":"user","content":"x"}],
            "stream_options":{"include_usage":"yes"}})"}) {
    auto parsed = parse_openai_chat_request(body);
    CAF_CHECK(!parsed.ok());
    CAF_CHECK(!parsed.error.empty());
  }
}

// -- pulls ---------------------------------------------------------------------------------------

CAF_TEST(a pull request names its model) {
  auto parsed = parse_pull_request(R"({"model":"llama3.2:3b","stream":false})");
  CAF_REQUIRE(parsed.ok());
  CAF_CHECK_EQUAL(parsed.request.model, "llama3.2:3b");
  CAF_CHECK(!parsed.request.stream);
  CAF_CHECK_EQUAL(parse_pull_request(R"({"name":"phi3"})").request.model, "phi3");
  CAF_CHECK(parse_pull_request(R"({"name":"phi3"})").request.stream);
  for (auto body :
       {"{}", R"({"model":""})", R"({"model":1})", R"({"model":"m","stream":"no"})", "x"})
    CAF_CHECK(!parse_pull_request(body).ok());
}

CAF_TEST(model names follow the ollama pattern) {
  for (auto name :
       {"llama3.2", "llama3.2:3b", "qwen2.5-coder:7b-instruct-q4_K_M", "library/phi3:latest",
        "registry.ollama.ai/library/phi3:mini", "hf.co/user/model-GGUF:Q4_K_M"})
    CAF_CHECK(is_valid_model_name(name));
  for (auto name : {"", ":3b", "llama:", "a b", "a/b/c/d", "a//b", "-x", ".x", "x:y:z", "x?", "ü"})
    CAF_CHECK(!is_valid_model_name(name));
}

// -- models and answers --------------------------------------------------------------------------

CAF_TEST(model names without a tag mean latest) {
  std::vector<std::string> served = {"llama3.2:3b", "phi3", "qwen:latest"};
  CAF_CHECK(serves_model(served, "llama3.2:3b"));
  CAF_CHECK(!serves_model(served, "llama3.2"));
  CAF_CHECK(serves_model(served, "phi3:latest"));
  CAF_CHECK(serves_model(served, "phi3"));
  CAF_CHECK(serves_model(served, "qwen"));
  CAF_CHECK(!serves_model(served, "qwen:7b"));
  CAF_CHECK(!serves_model({}, "phi3"));
  CAF_CHECK_EQUAL(*find_served_model(served, "qwen"), "qwen:latest");
  CAF_CHECK_EQUAL(*find_served_model(served, "phi3:latest"), "phi3");
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
