#define CAF_SUITE ollama
#include <caf/test/unit_test.hpp>

#include "protocol/ollama.hpp"
#include "tests/protocol/stream_harness.hpp"

#include <nlohmann/json.hpp>

using namespace offload;
using test::parse_every_way;
using parser = ollama::chat_stream_parser;

namespace {

const std::string stream =
    R"({"model":"m","created_at":"t","message":{"role":"assistant","content":"Hel"},"done":false})"
    "\n"
    R"({"model":"m","created_at":"t","message":{"role":"assistant","content":"lo \u00e9"},"done":false})"
    "\n"
    R"({"model":"m","created_at":"t","message":{"role":"assistant","content":""},"done":true,)"
    R"("done_reason":"stop","prompt_eval_count":12,"eval_count":3})"
    "\n";

} // namespace

CAF_TEST(a whole stream yields text usage and done reason) {
  ollama::chat_stream_parser parser;
  parser.feed(stream);
  parser.finish();
  CAF_REQUIRE(!parser.failed());
  CAF_CHECK(parser.done());
  CAF_CHECK_EQUAL(parser.text(), "Hello \xc3\xa9");
  CAF_CHECK_EQUAL(parser.tokens_in(), 12);
  CAF_CHECK_EQUAL(parser.tokens_out(), 3);
  CAF_CHECK_EQUAL(parser.done_reason(), "stop");
  CAF_CHECK_EQUAL(parser.model(), "m");
}

CAF_TEST(splitting the stream at every byte boundary gives the same result) {
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    ollama::chat_stream_parser parser;
    parser.feed(std::string_view{stream}.substr(0, cut));
    parser.feed(std::string_view{stream}.substr(cut));
    parser.finish();
    CAF_CHECK(!parser.failed());
    CAF_CHECK_EQUAL(parser.text(), "Hello \xc3\xa9");
    CAF_CHECK_EQUAL(parser.tokens_out(), 3);
  }
}

CAF_TEST(feeding one byte at a time works) {
  ollama::chat_stream_parser parser;
  for (char c : stream)
    parser.feed(std::string_view{&c, 1});
  parser.finish();
  CAF_CHECK(parser.done());
  CAF_CHECK_EQUAL(parser.text(), "Hello \xc3\xa9");
}

CAF_TEST(a non streaming body without trailing newline is complete) {
  ollama::chat_stream_parser parser;
  parser.feed(
      R"({"model":"m","message":{"role":"assistant","content":"all"},"done":true,"eval_count":1})");
  parser.finish();
  CAF_CHECK(parser.done());
  CAF_CHECK_EQUAL(parser.text(), "all");
}

CAF_TEST(a stream that ends early is a dropped connection) {
  ollama::chat_stream_parser parser;
  parser.feed(stream.substr(0, stream.find("\n") + 1));
  parser.finish();
  CAF_REQUIRE(parser.failed());
  CAF_CHECK(parser.error().code == errc::connection_dropped);
  CAF_CHECK(parser.error().retryable);
}

CAF_TEST(garbage lines are malformed streams) {
  for (auto bad : {"{\"model\": \"x\", \"message\": {\"content\": \"oops\"\n", "[1,2]\n",
                   "{\"message\":{\"content\":\"x\"}}\n", "<html>\n"}) {
    ollama::chat_stream_parser parser;
    parser.feed(bad);
    parser.finish();
    CAF_REQUIRE(parser.failed());
    CAF_CHECK(parser.error().code == errc::malformed_stream);
  }
}

CAF_TEST(an error line inside a 200 stream is a backend error) {
  ollama::chat_stream_parser parser;
  parser.feed(stream.substr(0, stream.find("\n") + 1));
  parser.feed("{\"error\":\"model runner has unexpectedly stopped\"}\n");
  CAF_REQUIRE(parser.failed());
  CAF_CHECK(parser.error().code == errc::backend_error);
  CAF_CHECK_NOT_EQUAL(parser.error().message.find("unexpectedly stopped"), std::string::npos);
}

CAF_TEST(blank lines and crlf are tolerated) {
  ollama::chat_stream_parser parser;
  parser.feed("\r\n\n");
  parser.feed(R"({"message":{"content":"a"},"done":true})"
              "\r\n");
  parser.finish();
  CAF_CHECK(parser.done());
  CAF_CHECK_EQUAL(parser.text(), "a");
}

CAF_TEST(http errors map to codes and keep the server message) {
  auto nf =
      ollama::error_from_status(404, R"({"error":"model \"x\" not found, try pulling it first"})");
  CAF_CHECK(nf.code == errc::model_not_found);
  CAF_CHECK(!nf.retryable);
  CAF_CHECK_NOT_EQUAL(nf.message.find("try pulling it first"), std::string::npos);
  auto busy = ollama::error_from_status(
      503, R"({"error":"server busy, please try again.  maximum pending requests exceeded"})",
      3000);
  CAF_CHECK(busy.code == errc::backend_overloaded);
  CAF_CHECK(busy.retryable);
  CAF_CHECK_EQUAL(busy.retry_after_ms, 3000);
  CAF_CHECK_NOT_EQUAL(busy.message.find("server busy"), std::string::npos);
  auto bad = ollama::error_from_status(400, R"({"error":"bad"})");
  CAF_CHECK(bad.code == errc::backend_http_error);
  CAF_CHECK(!bad.retryable);
  auto crashed =
      ollama::error_from_status(500, R"({"error":"llama runner process has terminated"})");
  CAF_CHECK(crashed.code == errc::backend_http_error);
  CAF_CHECK(crashed.retryable);
  CAF_CHECK(ollama::error_from_status(499, "").code == errc::cancelled);
  CAF_CHECK(
      ollama::error_from_status(400, R"({"error":"the input length exceeds the context length"})")
          .code == errc::context_too_long);
}

CAF_TEST(request bodies stream the given messages) {
  auto body = ollama::make_chat_body("m", {{"system", "s"}, {"user", "u"}}, true);
  auto json = nlohmann::json::parse(body);
  CAF_CHECK_EQUAL(json["model"].get<std::string>(), "m");
  CAF_CHECK(json["stream"].get<bool>());
  CAF_CHECK_EQUAL(json["messages"][1]["content"].get<std::string>(), "u");
}

CAF_TEST(every way of cutting the stream gives the same outcome) {
  auto out = parse_every_way<parser>(stream);
  CAF_REQUIRE(!out.failed);
  CAF_CHECK(out.done);
  CAF_CHECK_EQUAL(out.text, "Hello \xc3\xa9");
  CAF_CHECK_EQUAL(out.tokens_in, 12);
  CAF_CHECK_EQUAL(out.chunks, 3u);
  std::string crlf;
  for (char c : stream)
    crlf += c == '\n' ? std::string{"\r\n"} : std::string{c};
  CAF_CHECK(parse_every_way<parser>(crlf) == out);
}

CAF_TEST(an error line is classified like an http error) {
  auto first_line = stream.substr(0, stream.find('\n') + 1);
  auto context = parse_every_way<parser>(
      first_line + R"({"error":"the input length exceeds the context length"})" + "\n");
  CAF_REQUIRE(context.failed);
  CAF_CHECK(context.code == errc::context_too_long);
  CAF_CHECK(!context.retryable);
  CAF_CHECK_EQUAL(context.text, "Hel");
  auto missing =
      parse_every_way<parser>(R"({"error":"model \"q\" not found, try pulling it first"})");
  CAF_CHECK(missing.code == errc::model_not_found);
  auto other = parse_every_way<parser>(R"({"error":{"message":"boom"}})");
  CAF_CHECK(other.code == errc::backend_error);
  CAF_CHECK_NOT_EQUAL(other.message.find("boom"), std::string::npos);
}

CAF_TEST(truncated and garbage streams fail the same way however cut) {
  auto dropped = parse_every_way<parser>(stream.substr(0, stream.rfind("{\"model\"")));
  CAF_CHECK(dropped.code == errc::connection_dropped);
  auto garbage = parse_every_way<parser>("<html>\n");
  CAF_CHECK(garbage.code == errc::malformed_stream);
}

CAF_TEST(thinking chunks count as chunks) {
  auto out = parse_every_way<parser>(
      R"({"model":"m","message":{"role":"assistant","content":"","thinking":"hmm"},"done":false})"
      "\n"
      R"({"model":"m","message":{"role":"assistant","content":"yes"},"done":true,"done_reason":"stop"})"
      "\n");
  CAF_CHECK_EQUAL(out.text, "yes");
  CAF_CHECK_EQUAL(out.chunks, 2u);
}

CAF_TEST(chat options add keep alive and context size) {
  auto plain = nlohmann::json::parse(ollama::make_chat_body("m", {{"user", "u"}}, true));
  CAF_CHECK(!plain.contains("keep_alive"));
  CAF_CHECK(!plain.contains("options"));
  auto tuned =
      nlohmann::json::parse(ollama::make_chat_body("m", {{"user", "u"}}, true, {"10m", 8192}));
  CAF_CHECK_EQUAL(tuned["keep_alive"].get<std::string>(), "10m");
  CAF_CHECK_EQUAL(tuned["options"]["num_ctx"].get<int64_t>(), 8192);
  // Ollama reads numbers as seconds and rejects unit-less strings.
  auto forever =
      nlohmann::json::parse(ollama::make_chat_body("m", {{"user", "u"}}, true, {"-1", 0}));
  CAF_CHECK(forever["keep_alive"].is_number_integer());
  CAF_CHECK_EQUAL(forever["keep_alive"].get<int64_t>(), -1);
}

CAF_TEST(options are found by the model name with or without the latest tag) {
  std::map<std::string, ollama::chat_options> pinned{
      {"a", {"1h", 0}}, {"b:latest", {"", 4096}}, {"c:7b", {"5m", 0}}};
  CAF_CHECK_EQUAL(ollama::options_for(pinned, "a").keep_alive, "1h");
  CAF_CHECK_EQUAL(ollama::options_for(pinned, "a:latest").keep_alive, "1h");
  CAF_CHECK_EQUAL(ollama::options_for(pinned, "b").num_ctx, 4096);
  CAF_CHECK_EQUAL(ollama::options_for(pinned, "c:7b").keep_alive, "5m");
  // Another tag is another model.
  CAF_CHECK(ollama::options_for(pinned, "c").keep_alive.empty());
  CAF_CHECK(ollama::options_for(pinned, "a:3b").keep_alive.empty());
}

CAF_TEST(a preload is a chat without messages) {
  auto body = nlohmann::json::parse(ollama::make_preload_body("m", "1h"));
  CAF_CHECK_EQUAL(body["model"].get<std::string>(), "m");
  CAF_CHECK(body["messages"].empty());
  CAF_CHECK(!body["stream"].get<bool>());
  CAF_CHECK_EQUAL(body["keep_alive"].get<std::string>(), "1h");
  auto unload = nlohmann::json::parse(ollama::make_preload_body("m", "0"));
  CAF_CHECK_EQUAL(unload["keep_alive"].get<int64_t>(), 0);
  CAF_CHECK(!nlohmann::json::parse(ollama::make_preload_body("m", "")).contains("keep_alive"));
  CAF_CHECK(!body.contains("options"));
  // With a pinned context window, so that the first task does not reload the model.
  auto sized = nlohmann::json::parse(ollama::make_preload_body("m", "1h", 16384));
  CAF_CHECK_EQUAL(sized["options"]["num_ctx"].get<int64_t>(), 16384);
  // Ollama's answer to it.
  auto out = parse_every_way<parser>(
      R"({"model":"m","created_at":"t","message":{"role":"assistant","content":""},"done_reason":"load","done":true})");
  CAF_CHECK(out.done);
  CAF_CHECK_EQUAL(out.done_reason, "load");
}

CAF_TEST(tags give the model names) {
  std::string error;
  auto names = ollama::parse_tags(
      R"({"models":[{"name":"qwen2.5-coder:7b","model":"qwen2.5-coder:7b","modified_at":"2025-01-01T00:00:00Z","size":4683087332,"digest":"abc","details":{"family":"qwen2"}},{"model":"llama3.2:3b"},{"size":1},"junk"]})",
      error);
  CAF_REQUIRE(names.has_value());
  CAF_REQUIRE_EQUAL(names->size(), 2u);
  CAF_CHECK_EQUAL((*names)[0], "qwen2.5-coder:7b");
  CAF_CHECK_EQUAL((*names)[1], "llama3.2:3b");
  CAF_CHECK(ollama::parse_tags(R"({"models":null})", error)->empty());
  CAF_CHECK(!ollama::parse_tags("not json", error).has_value());
  CAF_CHECK_NOT_EQUAL(error.find("/api/tags"), std::string::npos);
  CAF_CHECK(!ollama::parse_tags(R"({"data":[]})", error).has_value());
  CAF_CHECK(!ollama::parse_tags("[]", error).has_value());
}

CAF_TEST(ps gives loaded models with their memory) {
  std::string error;
  auto loaded = ollama::parse_ps(
      R"({"models":[{"name":"gemma3","model":"gemma3","size":6591830464,"digest":"a2af","details":{},"expires_at":"2025-10-17T16:47:07.93355-07:00","size_vram":5333539264,"context_length":4096},{"name":"tiny","size":10}]})",
      error);
  CAF_REQUIRE(loaded.has_value());
  CAF_REQUIRE_EQUAL(loaded->size(), 2u);
  const auto& m = (*loaded)[0];
  CAF_CHECK_EQUAL(m.name, "gemma3");
  CAF_CHECK_EQUAL(m.size, 6591830464);
  CAF_CHECK_EQUAL(m.size_vram, 5333539264);
  CAF_CHECK_EQUAL(m.expires_at, "2025-10-17T16:47:07.93355-07:00");
  CAF_CHECK_EQUAL(m.context_length, 4096);
  CAF_CHECK_EQUAL((*loaded)[1].size_vram, 0);
  CAF_CHECK(ollama::parse_ps(R"({"models":[]})", error)->empty());
  CAF_CHECK(!ollama::parse_ps("{", error).has_value());
}

namespace {

const std::string pull_stream =
    R"({"status":"pulling manifest"})"
    "\n"
    R"({"status":"pulling aaa","digest":"sha256:aaa","total":1000})"
    "\n"
    R"({"status":"pulling aaa","digest":"sha256:aaa","total":1000,"completed":400})"
    "\n"
    R"({"status":"pulling bbb","digest":"sha256:bbb","total":50,"completed":50})"
    "\n"
    R"({"status":"pulling aaa","digest":"sha256:aaa","total":1000,"completed":1000})"
    "\n"
    R"({"status":"verifying sha256 digest"})"
    "\n"
    R"({"status":"writing manifest"})"
    "\n"
    R"({"status":"success"})"
    "\n";

struct pull_outcome {
  bool done;
  errc code;
  std::string status;
  size_t updates;
  int64_t total;
  int64_t completed;
  bool operator==(const pull_outcome&) const = default;
};

pull_outcome pull_every_way(std::string_view body) {
  auto run = [](auto feed) {
    ollama::pull_progress_parser p;
    feed(p);
    p.finish();
    return pull_outcome{p.done(),    p.error().code,  p.latest().status,
                        p.updates(), p.total_bytes(), p.completed_bytes()};
  };
  auto whole = run([&](auto& p) { p.feed(body); });
  for (size_t cut = 0; cut <= body.size(); ++cut) {
    auto split = run([&](auto& p) {
      p.feed(body.substr(0, cut));
      p.feed(body.substr(cut));
    });
    if (!(split == whole))
      CAF_FAIL("splitting the pull stream at byte " << cut << " changed the outcome");
  }
  return whole;
}

} // namespace

CAF_TEST(pull progress sums the layers and ends at success) {
  auto body = nlohmann::json::parse(ollama::make_pull_body("qwen2.5-coder:7b"));
  CAF_CHECK_EQUAL(body["model"].get<std::string>(), "qwen2.5-coder:7b");
  CAF_CHECK(body["stream"].get<bool>());
  auto out = pull_every_way(pull_stream);
  CAF_CHECK(out.done);
  CAF_CHECK(out.code == errc::no_error);
  CAF_CHECK_EQUAL(out.status, "success");
  CAF_CHECK_EQUAL(out.updates, 8u);
  CAF_CHECK_EQUAL(out.total, 1050);
  CAF_CHECK_EQUAL(out.completed, 1050);
  // Mid-way figures.
  ollama::pull_progress_parser p;
  p.feed(pull_stream.substr(0, pull_stream.find("pulling bbb") - 11));
  CAF_CHECK(!p.done());
  CAF_CHECK_EQUAL(p.latest().digest, "sha256:aaa");
  CAF_CHECK_EQUAL(p.latest().completed, 400);
  CAF_CHECK_EQUAL(p.completed_bytes(), 400);
}

CAF_TEST(pull errors and cut streams fail) {
  auto unknown = pull_every_way(R"({"status":"pulling manifest"})"
                                "\n"
                                R"({"error":"pull model manifest: file does not exist"})"
                                "\n");
  CAF_CHECK(unknown.code == errc::model_not_found);
  CAF_CHECK(!unknown.done);
  auto cut = pull_every_way(pull_stream.substr(0, pull_stream.find("{\"status\":\"success")));
  CAF_CHECK(cut.code == errc::connection_dropped);
  CAF_CHECK_EQUAL(cut.status, "writing manifest");
  CAF_CHECK(pull_every_way("nope\n").code == errc::malformed_stream);
  CAF_CHECK(pull_every_way("{\"digest\":\"x\"}\n").code == errc::malformed_stream);
  // A non-streamed pull answers with one object.
  CAF_CHECK(pull_every_way(R"({"status":"success"})").done);
}
