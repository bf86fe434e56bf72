#define CAF_SUITE jsonrpc
#include <caf/test/unit_test.hpp>

#include "protocol/jsonrpc.hpp"

using namespace offload;
using json = nlohmann::json;

namespace {

jsonrpc::failure expect_failure(std::string_view text) {
  auto parsed = jsonrpc::parse(text);
  auto* fail = std::get_if<jsonrpc::failure>(&parsed);
  if (fail == nullptr) {
    CAF_FAIL("expected a failure for: " << text);
  }
  return *fail;
}

jsonrpc::message expect_message(std::string_view text) {
  auto parsed = jsonrpc::parse(text);
  auto* msg = std::get_if<jsonrpc::message>(&parsed);
  if (msg == nullptr) {
    CAF_FAIL("expected a message for: " << text);
  }
  return *msg;
}

} // namespace

CAF_TEST(a request keeps its id method and params) {
  auto msg = expect_message(R"({"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"a":1}})");
  CAF_CHECK(msg.type == jsonrpc::kind::request);
  CAF_CHECK_EQUAL(msg.id.get<int>(), 7);
  CAF_CHECK_EQUAL(msg.method, "tools/list");
  CAF_CHECK_EQUAL(msg.params["a"].get<int>(), 1);
}

CAF_TEST(string ids and absent params are accepted) {
  auto msg = expect_message(R"({"jsonrpc":"2.0","id":"abc","method":"ping"})");
  CAF_CHECK_EQUAL(msg.id.get<std::string>(), "abc");
  CAF_CHECK(msg.params.is_null());
}

CAF_TEST(a message without id is a notification) {
  auto msg = expect_message(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  CAF_CHECK(msg.type == jsonrpc::kind::notification);
}

CAF_TEST(responses carry result or error) {
  auto ok = expect_message(R"({"jsonrpc":"2.0","id":1,"result":{}})");
  CAF_CHECK(ok.type == jsonrpc::kind::response);
  CAF_CHECK(!ok.is_error);
  auto err = expect_message(R"({"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}})");
  CAF_CHECK(err.is_error);
  auto both = expect_failure(R"({"jsonrpc":"2.0","id":1,"result":{},"error":{}})");
  CAF_CHECK_EQUAL(both.code, jsonrpc::invalid_request);
}

CAF_TEST(malformed json is a parse error with null id) {
  for (auto text : {"{", "not json", "{\"jsonrpc\":\"2.0\",}", "", "\xff\xfe"}) {
    auto fail = expect_failure(text);
    CAF_CHECK_EQUAL(fail.code, jsonrpc::parse_error);
    CAF_CHECK(fail.id.is_null());
  }
}

CAF_TEST(structurally wrong messages are invalid requests) {
  CAF_CHECK_EQUAL(expect_failure("42").code, jsonrpc::invalid_request);
  CAF_CHECK_EQUAL(expect_failure(R"({"id":1,"method":"ping"})").code, jsonrpc::invalid_request);
  CAF_CHECK_EQUAL(expect_failure(R"({"jsonrpc":"1.0","id":1,"method":"ping"})").code,
                  jsonrpc::invalid_request);
  CAF_CHECK_EQUAL(expect_failure(R"({"jsonrpc":"2.0","id":1,"method":5})").code,
                  jsonrpc::invalid_request);
  CAF_CHECK_EQUAL(expect_failure(R"({"jsonrpc":"2.0","id":1,"method":"x","params":3})").code,
                  jsonrpc::invalid_request);
  CAF_CHECK_EQUAL(expect_failure(R"({"jsonrpc":"2.0","id":{"a":1},"method":"x"})").code,
                  jsonrpc::invalid_request);
  CAF_CHECK_EQUAL(expect_failure(R"({"jsonrpc":"2.0"})").code, jsonrpc::invalid_request);
}

CAF_TEST(an invalid request keeps a readable id for the reply) {
  auto fail = expect_failure(R"({"jsonrpc":"2.0","id":9,"method":"x","params":"bad"})");
  CAF_CHECK_EQUAL(fail.id.get<int>(), 9);
}

CAF_TEST(arrays are batches) {
  auto parsed = jsonrpc::parse(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])");
  CAF_CHECK(std::holds_alternative<jsonrpc::batch>(parsed));
}

CAF_TEST(outgoing messages are compact single lines) {
  auto result = jsonrpc::make_result(3, json{{"text", "a\nb"}});
  CAF_CHECK_EQUAL(result.find('\n'), std::string::npos);
  auto back = json::parse(result);
  CAF_CHECK_EQUAL(back["id"].get<int>(), 3);
  CAF_CHECK_EQUAL(back["result"]["text"].get<std::string>(), "a\nb");
  auto error = json::parse(jsonrpc::make_error("x", jsonrpc::method_not_found, "nope"));
  CAF_CHECK_EQUAL(error["error"]["code"].get<int>(), -32601);
  CAF_CHECK_EQUAL(error["id"].get<std::string>(), "x");
  CAF_CHECK(!error["error"].contains("data"));
}

CAF_TEST(invalid utf8 in outgoing text is replaced not thrown) {
  std::string bad = "ok \xc3\x28 end";
  auto text = jsonrpc::make_result(1, json{{"text", bad}});
  CAF_CHECK(json::accept(text));
}
