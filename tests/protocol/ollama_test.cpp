#define CAF_SUITE ollama
#include <caf/test/unit_test.hpp>

#include "protocol/ollama.hpp"

#include <nlohmann/json.hpp>

using namespace offload;

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
  auto busy = ollama::error_from_status(503, "server busy");
  CAF_CHECK(busy.code == errc::backend_http_error);
  CAF_CHECK(busy.retryable);
  CAF_CHECK_NOT_EQUAL(busy.message.find("server busy"), std::string::npos);
  auto bad = ollama::error_from_status(400, R"({"error":"bad"})");
  CAF_CHECK(!bad.retryable);
}

CAF_TEST(request bodies stream the given messages) {
  auto body = ollama::make_chat_body("m", {{"system", "s"}, {"user", "u"}}, true);
  auto json = nlohmann::json::parse(body);
  CAF_CHECK_EQUAL(json["model"].get<std::string>(), "m");
  CAF_CHECK(json["stream"].get<bool>());
  CAF_CHECK_EQUAL(json["messages"][1]["content"].get<std::string>(), "u");
}
