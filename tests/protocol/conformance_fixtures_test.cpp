#define CAF_SUITE conformance_fixtures
#include <caf/test/unit_test.hpp>

#include "protocol/conformance_fixtures.hpp"

using namespace offload;
using json = nlohmann::json;

CAF_TEST(every test tool has a name a description and an object schema) {
  auto tools = conformance::tools();
  CAF_CHECK(tools.size() >= 14u);
  for (const auto& tool : tools) {
    CAF_CHECK(tool["name"].is_string());
    CAF_CHECK(tool["description"].is_string());
    CAF_CHECK((tool["inputSchema"]["type"]) == ("object"));
  }
  CAF_CHECK(conformance::is_tool("test_sampling"));
  CAF_CHECK(!conformance::is_tool("batch_offload"));
}

CAF_TEST(the 2020 - 12 tool keeps its schema keywords) {
  for (const auto& tool : conformance::tools()) {
    if (tool["name"] != "json_schema_2020_12_tool")
      continue;
    const auto& schema = tool["inputSchema"];
    CAF_CHECK((schema["$schema"]) == ("https://json-schema.org/draft/2020-12/schema"));
    CAF_CHECK(schema["$defs"].contains("address"));
    CAF_CHECK((schema["additionalProperties"]) == (false));
    return;
  }
  CAF_FAIL("json_schema_2020_12_tool is missing");
}

CAF_TEST(static tools return their content types) {
  auto mixed = conformance::static_tool_result("test_multiple_content_types");
  CAF_REQUIRE(mixed.has_value());
  std::vector<std::string> types;
  for (const auto& block : (*mixed)["content"])
    types.push_back(block["type"]);
  CAF_CHECK((types) == ((std::vector<std::string>{"text", "image", "resource"})));
  auto audio = conformance::static_tool_result("test_audio_content");
  CAF_REQUIRE(audio.has_value());
  CAF_CHECK(((*audio)["content"][0]["mimeType"]) == ("audio/wav"));
  auto error = conformance::static_tool_result("test_error_handling");
  CAF_REQUIRE(error.has_value());
  CAF_CHECK(((*error)["isError"]) == (true));
  CAF_CHECK(!conformance::static_tool_result("test_sampling"));
}

CAF_TEST(resources read by uri and template) {
  auto text = conformance::read_resource("test://static-text");
  CAF_REQUIRE(text.has_value());
  CAF_CHECK(((*text)["contents"][0]["mimeType"]) == ("text/plain"));
  auto binary = conformance::read_resource("test://static-binary");
  CAF_REQUIRE(binary.has_value());
  CAF_CHECK((*binary)["contents"][0]["blob"].is_string());
  auto templated = conformance::read_resource("test://template/123/data");
  CAF_REQUIRE(templated.has_value());
  auto data = json::parse((*templated)["contents"][0]["text"].get<std::string>());
  CAF_CHECK((data["id"]) == ("123"));
  CAF_CHECK(!conformance::read_resource("test://template/1/2/data"));
  CAF_CHECK(!conformance::read_resource("test://nothing"));
  CAF_CHECK(conformance::is_resource("test://watched-resource"));
}

CAF_TEST(prompts substitute their arguments and reject missing ones) {
  std::string error;
  auto prompt = conformance::get_prompt("test_prompt_with_arguments",
                                        json{{"arg1", "alpha"}, {"arg2", "beta"}}, error);
  CAF_REQUIRE(prompt.has_value());
  auto text = (*prompt)["messages"][0]["content"]["text"].get<std::string>();
  CAF_CHECK_NOT_EQUAL(text.find("alpha"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("beta"), std::string::npos);
  CAF_CHECK(!conformance::get_prompt("test_prompt_with_arguments", json{{"arg1", "x"}}, error));
  CAF_CHECK_NOT_EQUAL(error.find("arg2"), std::string::npos);
  CAF_CHECK(!conformance::get_prompt("nope", json::object(), error));
  auto embedded = conformance::get_prompt("test_prompt_with_embedded_resource",
                                          json{{"resourceUri", "test://x"}}, error);
  CAF_REQUIRE(embedded.has_value());
  CAF_CHECK(((*embedded)["messages"][0]["content"]["resource"]["uri"]) == ("test://x"));
}

CAF_TEST(completion filters arg1 candidates by prefix) {
  auto params = json{{"ref", {{"type", "ref/prompt"}, {"name", "test_prompt_with_arguments"}}},
                     {"argument", {{"name", "arg1"}, {"value", "par"}}}};
  auto result = conformance::complete(params);
  CAF_CHECK((result["completion"]["values"]) == (json({"paris", "park", "party"})));
  params["argument"]["name"] = "arg2";
  CAF_CHECK(conformance::complete(params)["completion"]["values"].empty());
}

CAF_TEST(elicitation schemas carry defaults and every enum kind) {
  auto defaults = conformance::elicitation_defaults_request()["requestedSchema"]["properties"];
  CAF_CHECK((defaults["age"]["default"]) == (30));
  CAF_CHECK((defaults["status"]["default"]) == ("active"));
  auto enums = conformance::elicitation_enums_request()["requestedSchema"]["properties"];
  CAF_CHECK((enums["titledSingle"]["oneOf"][0]["const"]) == ("value1"));
  CAF_CHECK((enums["legacyEnum"]["enumNames"].size()) == (enums["legacyEnum"]["enum"].size()));
  CAF_CHECK(enums["titledMulti"]["items"]["anyOf"].is_array());
}
