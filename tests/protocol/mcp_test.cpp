#define CAF_SUITE mcp
#include <caf/test/unit_test.hpp>

#include "protocol/mcp.hpp"

#include <map>

using namespace offload;
using json = nlohmann::json;

CAF_TEST(supported versions are echoed and others get the latest) {
  std::string error;
  for (auto v : {"2025-11-25", "2025-06-18", "2025-03-26"}) {
    auto got = mcp::negotiate_version(json{{"protocolVersion", v}}, error);
    CAF_REQUIRE(got.has_value());
    CAF_CHECK_EQUAL(*got, v);
  }
  auto other = mcp::negotiate_version(json{{"protocolVersion", "1999-01-01"}}, error);
  CAF_REQUIRE(other.has_value());
  CAF_CHECK_EQUAL(*other, "2025-11-25");
}

CAF_TEST(malformed initialize params name the field) {
  std::string error;
  CAF_CHECK(!mcp::negotiate_version(json::array(), error));
  CAF_CHECK(!mcp::negotiate_version(json{{"protocolVersion", 5}}, error));
  CAF_CHECK_NOT_EQUAL(error.find("protocolVersion"), std::string::npos);
}

CAF_TEST(the catalogue has every tool with object schemas) {
  auto tools = mcp::tool_catalogue();
  CAF_REQUIRE_EQUAL(tools.size(), 8u);
  std::map<std::string, json> by_name;
  for (const auto& tool : tools) {
    CAF_CHECK_EQUAL(tool["inputSchema"]["type"].get<std::string>(), "object");
    by_name[tool["name"].get<std::string>()] = tool;
  }
  CAF_CHECK_EQUAL(tools[0]["name"].get<std::string>(), "batch_offload");
  // The task tools promise the batch result's shape.
  for (auto name : {"batch_offload", "offload_work", "compress_context"})
    CAF_CHECK_EQUAL(by_name.at(name)["outputSchema"]["type"].get<std::string>(), "object");
  CAF_CHECK_EQUAL(by_name.at("compress_context")["inputSchema"]["required"][0].get<std::string>(),
                  "content");
  // The read tools.
  CAF_CHECK(by_name.at("cost_dashboard")["annotations"]["readOnlyHint"].get<bool>());
  CAF_CHECK(by_name.at("get_metrics")["inputSchema"]["properties"].contains("format"));
  // The model tools keep the original server's names and required arguments.
  CAF_CHECK(!by_name.at("list_loaded_models")["inputSchema"].contains("required"));
  CAF_CHECK_EQUAL(by_name.at("preload_model")["inputSchema"]["required"][0].get<std::string>(),
                  "model");
  CAF_CHECK(by_name.at("preload_model")["inputSchema"]["properties"].contains("keep_alive"));
  CAF_CHECK_EQUAL(by_name.at("pull_model")["inputSchema"]["required"][0].get<std::string>(),
                  "model");
  // The deadline overrides are offered on every task tool.
  CAF_CHECK(by_name.at("batch_offload")["inputSchema"]["properties"].contains("task_timeout_ms"));
  CAF_CHECK(
      by_name.at("offload_work")["inputSchema"]["properties"].contains("first_token_timeout_ms"));
  CAF_CHECK(by_name.at("batch_offload")["inputSchema"]["properties"].contains("stop_on_error"));
}

CAF_TEST(tool results carry text and optional structured content) {
  auto plain = mcp::tool_result("hi", false);
  CAF_CHECK_EQUAL(plain["content"][0]["text"].get<std::string>(), "hi");
  CAF_CHECK(!plain.contains("structuredContent"));
  auto rich = mcp::tool_result("hi", true, json{{"a", 1}});
  CAF_CHECK(rich["isError"].get<bool>());
  CAF_CHECK_EQUAL(rich["structuredContent"]["a"].get<int>(), 1);
}
