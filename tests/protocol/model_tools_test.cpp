#define CAF_SUITE model_tools
#include <caf/test/unit_test.hpp>

#include "protocol/model_tools.hpp"

using namespace offload;
using namespace offload::model_tools;

namespace {

std::optional<model_tool_args> parse(const std::string& tool, const json& args,
                                     std::string& error) {
  error.clear();
  return parse_args(tool, args, error);
}

std::string text_of(const json& result) {
  return result["content"][0]["text"].get<std::string>();
}

bool mentions(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

} // namespace

CAF_TEST(the model tools are recognised by name) {
  CAF_CHECK(is_model_tool("list_loaded_models"));
  CAF_CHECK(is_model_tool("preload_model"));
  CAF_CHECK(is_model_tool("pull_model"));
  CAF_CHECK(!is_model_tool("batch_offload"));
  auto defs = definitions();
  CAF_REQUIRE_EQUAL(defs.size(), 3u);
  for (const auto& tool : defs) {
    CAF_CHECK(is_model_tool(tool["name"].get<std::string>()));
    CAF_CHECK_EQUAL(tool["outputSchema"]["type"].get<std::string>(), "object");
    // A policy denial's structuredContent must fit every tool's schema.
    CAF_CHECK(tool["outputSchema"]["properties"].contains("policy"));
    CAF_CHECK(!tool["outputSchema"].contains("required"));
  }
}

CAF_TEST(arguments are validated with the field named) {
  std::string error;
  auto list = parse("list_loaded_models", json::object(), error);
  CAF_REQUIRE(list);
  CAF_CHECK(list->model.empty());
  CAF_CHECK(!parse("preload_model", json::object(), error));
  CAF_CHECK(mentions(error, "model: required"));
  CAF_CHECK(!parse("pull_model", json{{"model", ""}}, error));
  CAF_CHECK(mentions(error, "model: must not be empty"));
  CAF_CHECK(!parse("pull_model", json{{"model", 7}}, error));
  CAF_CHECK(mentions(error, "model: must be a string"));
  CAF_CHECK(!parse("pull_model", json{{"model", "a\nb"}}, error));
  CAF_CHECK(mentions(error, "control characters"));
  CAF_CHECK(!parse("pull_model", json{{"model", std::string(300, 'x')}}, error));
  CAF_CHECK(mentions(error, "the limit is 256"));
  CAF_CHECK(!parse("list_loaded_models", json::array(), error));
  CAF_CHECK(mentions(error, "arguments: must be an object"));
  auto pull = parse("pull_model", json{{"model", "llama3.2:3b"}, {"backend", "gpu"}}, error);
  CAF_REQUIRE(pull);
  CAF_CHECK_EQUAL(pull->model, "llama3.2:3b");
  CAF_CHECK_EQUAL(pull->backend, "gpu");
}

CAF_TEST(keep alive takes durations and seconds) {
  std::string error;
  for (const char* good : {"5m", "1h30m", "-1", "0", "300", "-1m", "2.5h", "90s"}) {
    auto args = parse("preload_model", json{{"model", "m"}, {"keep_alive", good}}, error);
    CAF_CHECK(args.has_value());
    if (args)
      CAF_CHECK_EQUAL(args->keep_alive, good);
  }
  auto number = parse("preload_model", json{{"model", "m"}, {"keep_alive", -1}}, error);
  CAF_REQUIRE(number);
  CAF_CHECK_EQUAL(number->keep_alive, "-1");
  for (const char* bad : {"soon", "5 m", "m5", "", "-", "5x", "1h-2m"}) {
    CAF_CHECK(!parse("preload_model", json{{"model", "m"}, {"keep_alive", bad}}, error));
    CAF_CHECK(mentions(error, "keep_alive"));
  }
  CAF_CHECK(!parse("preload_model", json{{"model", "m"}, {"keep_alive", true}}, error));
}

CAF_TEST(loaded models render as a table and structured content) {
  backend_loaded gpu{"gpu", "ollama", true,
                     "",    "",       {{"a", 5'000'000'000, 4'000'000'000, "t", 8192}}};
  backend_loaded laptop{"laptop", "ollama", false, "connection refused", "", {}};
  auto result = render_loaded({gpu, laptop});
  CAF_CHECK(!result["isError"].get<bool>());
  const auto& sc = result["structuredContent"];
  CAF_REQUIRE_EQUAL(sc["models"].size(), 1u);
  CAF_CHECK_EQUAL(sc["models"][0]["backend"].get<std::string>(), "gpu");
  CAF_CHECK_EQUAL(sc["models"][0]["size_vram"].get<int64_t>(), 4'000'000'000);
  CAF_CHECK_EQUAL(sc["backends"][1]["error"].get<std::string>(), "connection refused");
  auto text = text_of(result);
  CAF_CHECK(mentions(text, "| a | gpu | 3.7 GB | 4.7 GB | t |"));
  CAF_CHECK(mentions(text, "laptop: connection refused"));
  // Nobody answered: an error.
  CAF_CHECK(render_loaded({laptop})["isError"].get<bool>());
  CAF_CHECK(render_loaded({})["isError"].get<bool>());
  auto empty = render_loaded({{"gpu", "ollama", true, "", "", {}}});
  CAF_CHECK(mentions(text_of(empty), "No models are loaded"));
}

CAF_TEST(preload and pull results say what happened) {
  auto ok = render_preload("a", "10m", {{"gpu", true, "", ""}, {"box", false, "refused", ""}});
  CAF_CHECK(!ok["isError"].get<bool>());
  CAF_CHECK(mentions(text_of(ok), "Preloaded a (kept loaded for 10m)"));
  CAF_CHECK(mentions(text_of(ok), "box: failed: refused"));
  CAF_CHECK(render_preload("a", "-1", {{"box", false, "refused", ""}})["isError"].get<bool>());
  CAF_CHECK(mentions(text_of(render_preload("a", "-1", {{"gpu", true, "", ""}})),
                     "until the server restarts"));

  pull_outcome pulled{"m", "gpu", true, {}, "success", 100, 100, 1500};
  auto done = render_pull(pulled);
  CAF_CHECK(!done["isError"].get<bool>());
  CAF_CHECK_EQUAL(done["structuredContent"]["status"].get<std::string>(), "success");
  CAF_CHECK(mentions(text_of(done), "Pulled m on gpu (100 bytes, 1.5 s)"));
  pull_outcome failed{"m", "gpu", false, {errc::backend_error, "no such manifest", false},
                      "",  0,     0,     10};
  auto error = render_pull(failed);
  CAF_CHECK(error["isError"].get<bool>());
  CAF_CHECK_EQUAL(error["structuredContent"]["status"].get<std::string>(), "error");
  CAF_CHECK(mentions(text_of(error), "(backend_error): no such manifest"));
  auto failure = render_failure("preload_model", {errc::model_not_found, "no such model", false});
  CAF_CHECK(failure["isError"].get<bool>());
  CAF_CHECK(!failure.contains("structuredContent"));
}

CAF_TEST(bytes are shown readably) {
  CAF_CHECK_EQUAL(format_bytes(512), "512 bytes");
  CAF_CHECK_EQUAL(format_bytes(3 * 1024 * 1024), "3 MB");
  CAF_CHECK_EQUAL(format_bytes(int64_t{4'700'000'000}), "4.4 GB");
}
