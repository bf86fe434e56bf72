#define CAF_SUITE batch
#include <caf/test/unit_test.hpp>

#include "protocol/batch.hpp"

using namespace offload;
using json = nlohmann::json;

namespace {

batch_limits limits() {
  return batch_limits{10, 100, 1000, 20};
}

// Returns the validation error for `args`, failing the test if they were accepted.
std::string batch_error(const json& args) {
  std::string error;
  auto spec = parse_batch_offload(args, limits(), error);
  CAF_CHECK(!spec.has_value());
  return error;
}

bool mentions(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

json tasks_of(size_t n) {
  json tasks = json::array();
  for (size_t i = 0; i < n; ++i)
    tasks.push_back({{"task", "t" + std::to_string(i)}});
  return tasks;
}

} // namespace

CAF_TEST(a valid batch keeps every field and the order) {
  std::string error;
  auto spec = parse_batch_offload(json{{"tasks",
                                        {{{"task", "a"},
                                          {"language", "python"},
                                          {"context", "ctx"},
                                          {"output_format", "code"},
                                          {"model", "m"},
                                          {"category", "c"}},
                                         {{"task", "b"}}}},
                                       {"sequential", true}},
                                  limits(), error);
  CAF_REQUIRE(spec.has_value());
  CAF_CHECK_EQUAL(spec->tool, "batch_offload");
  CAF_CHECK(spec->sequential);
  CAF_REQUIRE_EQUAL(spec->tasks.size(), 2u);
  CAF_CHECK_EQUAL(spec->tasks[0].language, "python");
  CAF_CHECK_EQUAL(spec->tasks[0].context, "ctx");
  CAF_CHECK_EQUAL(spec->tasks[0].output_format, "code");
  CAF_CHECK_EQUAL(spec->tasks[0].model, "m");
  CAF_CHECK_EQUAL(spec->tasks[0].category, "c");
  CAF_CHECK_EQUAL(spec->tasks[1].task, "b");
  CAF_CHECK(spec->tasks[1].model.empty());
}

CAF_TEST(sequential defaults to false and null optional fields are absent) {
  std::string error;
  auto spec = parse_batch_offload(json{{"tasks", {{{"task", "a"}, {"language", nullptr}}}}},
                                  limits(), error);
  CAF_REQUIRE(spec.has_value());
  CAF_CHECK(!spec->sequential);
  CAF_CHECK(spec->tasks[0].language.empty());
}

CAF_TEST(missing or mistyped tasks name the field) {
  CAF_CHECK(mentions(batch_error(json::object()), "tasks: required"));
  CAF_CHECK(mentions(batch_error(json{{"tasks", "do it"}}), "tasks: must be an array"));
  CAF_CHECK(mentions(batch_error(json::array()), "arguments: must be an object"));
  CAF_CHECK(mentions(batch_error(json{{"tasks", json::array()}}), "empty"));
}

CAF_TEST(oversized batches name the limit) {
  auto error = batch_error(json{{"tasks", tasks_of(11)}});
  CAF_CHECK(mentions(error, "11 tasks"));
  CAF_CHECK(mentions(error, "the limit is 10"));
  std::string ignored;
  CAF_CHECK(parse_batch_offload(json{{"tasks", tasks_of(10)}}, limits(), ignored).has_value());
}

CAF_TEST(bad tasks name their index and field) {
  CAF_CHECK(mentions(batch_error(json{{"tasks", {{{"task", "a"}}, {{"language", "x"}}}}}),
                     "tasks[1].task: required"));
  CAF_CHECK(
      mentions(batch_error(json{{"tasks", {{{"task", 5}}}}}), "tasks[0].task: must be a string"));
  CAF_CHECK(mentions(batch_error(json{{"tasks", {{{"task", "   "}}}}}),
                     "tasks[0].task: must not be empty"));
  CAF_CHECK(
      mentions(batch_error(json{{"tasks", {"just a string"}}}), "tasks[0]: must be an object"));
  CAF_CHECK(mentions(batch_error(json{{"tasks", {{{"task", std::string(101, 'x')}}}}}),
                     "the limit is 100"));
  CAF_CHECK(
      mentions(batch_error(json{{"tasks", {{{"task", "a"}, {"context", std::string(1001, 'x')}}}}}),
               "tasks[0].context"));
  CAF_CHECK(mentions(batch_error(json{{"tasks", {{{"task", "a"}, {"language", 3}}}}}),
                     "tasks[0].language: must be a string"));
}

CAF_TEST(sequential must be boolean) {
  CAF_CHECK(mentions(batch_error(json{{"tasks", tasks_of(1)}, {"sequential", "yes"}}),
                     "sequential: must be true or false"));
}

CAF_TEST(offload_work takes one task at top level) {
  std::string error;
  auto spec =
      parse_offload_work(json{{"task", "write a test"}, {"language", "go"}}, limits(), error);
  CAF_REQUIRE(spec.has_value());
  CAF_CHECK_EQUAL(spec->tool, "offload_work");
  CAF_REQUIRE_EQUAL(spec->tasks.size(), 1u);
  CAF_CHECK_EQUAL(spec->tasks[0].language, "go");
  CAF_CHECK(!parse_offload_work(json{{"language", "go"}}, limits(), error));
  CAF_CHECK(mentions(error, "task: required"));
}

CAF_TEST(results render per task in order with totals) {
  batch_spec spec;
  spec.tool = "batch_offload";
  spec.tasks.resize(2);
  batch_result result;
  task_result ok;
  ok.index = 0;
  ok.status = task_status::ok;
  ok.text = "answer zero";
  ok.model = "m";
  ok.backend = "b";
  ok.tokens_in = 3;
  ok.tokens_out = 2;
  task_result bad;
  bad.index = 1;
  bad.status = task_status::error;
  bad.error = task_error{errc::backend_http_error, "HTTP 500", true};
  bad.tokens_in = 0;
  result.tasks = {ok, bad};
  auto text = render_text(spec, result);
  CAF_CHECK(mentions(text, "answer zero"));
  CAF_CHECK(mentions(text, "[backend_http_error] HTTP 500"));
  CAF_CHECK(mentions(text, "FALLBACK_TO_CLOUD"));
  CAF_CHECK(mentions(text, "Summary: 1 of 2 tasks succeeded"));
  CAF_CHECK_LESS(text.find("answer zero"), text.find("backend_http_error"));
  auto structured = render_structured(result);
  CAF_CHECK_EQUAL(structured["tasks"][0]["text"].get<std::string>(), "answer zero");
  CAF_CHECK(!structured["tasks"][0].contains("error"));
  CAF_CHECK_EQUAL(structured["tasks"][1]["error"]["code"].get<std::string>(), "backend_http_error");
  CAF_CHECK(structured["tasks"][1]["error"]["retryable"].get<bool>());
  CAF_CHECK_EQUAL(structured["totals"]["ok"].get<int>(), 1);
  CAF_CHECK_EQUAL(structured["totals"]["failed"].get<int>(), 1);
  CAF_CHECK_EQUAL(structured["totals"]["tokens_in"].get<int>(), 3);
  CAF_CHECK(!all_failed(result));
  result.tasks[0] = bad;
  CAF_CHECK(all_failed(result));
}

CAF_TEST(structured output has every field the schema requires) {
  batch_result result;
  task_result bad;
  bad.error = task_error{errc::timeout, "slow", true};
  result.tasks = {bad};
  auto structured = render_structured(result);
  auto schema = batch_output_schema();
  for (const auto& key : schema["required"])
    CAF_CHECK(structured.contains(key.get<std::string>()));
  const auto& task_schema = schema["properties"]["tasks"]["items"];
  for (const auto& key : task_schema["required"])
    CAF_CHECK(structured["tasks"][0].contains(key.get<std::string>()));
  for (const auto& key : schema["properties"]["totals"]["required"])
    CAF_CHECK(structured["totals"].contains(key.get<std::string>()));
}
