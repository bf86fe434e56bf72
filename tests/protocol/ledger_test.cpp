#define CAF_SUITE ledger
#include <caf/test/unit_test.hpp>

#include "protocol/ledger.hpp"

#include <regex>
#include <sstream>

using namespace offload;
using namespace std::chrono_literals;

namespace {

// 2027-01-15 08:00:20 UTC.
const auto wall_time = std::chrono::system_clock::from_time_t(1'800'000'020);

price_table two_prices() {
  price_table prices;
  prices.comparison_model = "big";
  prices.cloud_prices = {{"big", {3.0, 15.0}}, {"small", {1.0, 4.0}}};
  prices.local_models = {{"tiny:1b", "small"}};
  return prices;
}

task_result finished(task_status status, int64_t in, int64_t out) {
  task_result r;
  r.index = 2;
  r.status = status;
  r.model = "coder:7b";
  r.backend = "ollama@127.0.0.1:11434";
  r.tokens_in = in;
  r.tokens_out = out;
  r.duration_ms = 1234;
  r.attempts = 2;
  if (status != task_status::ok)
    r.error = {errc::timeout, "too slow", true};
  return r;
}

usage_totals totals(int64_t ok, int64_t error, int64_t tokens_in, int64_t tokens_out,
                    double saved) {
  usage_totals t;
  t.tasks = ok + error;
  t.ok = ok;
  t.error = error;
  t.tokens_in = tokens_in;
  t.tokens_out = tokens_out;
  t.duration_ms = 1500 * t.tasks;
  t.attempts = t.tasks;
  t.saved_usd = saved;
  return t;
}

usage_summary sample_summary() {
  usage_summary s;
  s.since_day = "2027-01-09";
  s.totals = totals(3, 1, 300, 600, 0.1 + 0.2);
  s.by_agent = {{"", totals(1, 1, 100, 200, 0.1)}, {"alice", totals(2, 0, 200, 400, 0.2)}};
  s.by_model = {{"coder:7b", s.totals}};
  s.by_tool = {{"batch_offload", s.totals}};
  s.by_backend = {{"ollama@127.0.0.1:11434", s.totals}};
  s.by_day = {{"2027-01-14", totals(1, 0, 100, 200, 0.1)},
              {"2027-01-15", totals(2, 1, 200, 400, 0.2)}};
  s.errors_by_code = {{"timeout", 1}};
  s.ran = 4;
  s.ran_duration_ms = 6000;
  s.duration_p50_ms = 1500;
  s.duration_p95_ms = 2500;
  s.duration_p99_ms = 2500;
  return s;
}

} // namespace

// -- prices --------------------------------------------------------------------------------------

CAF_TEST(the built - in table compares with the original model at its list price) {
  auto prices = default_price_table();
  CAF_CHECK_EQUAL(prices.comparison_model, "claude-sonnet-4-5");
  CAF_REQUIRE_EQUAL(prices.cloud_prices.count("claude-sonnet-4-5"), 1u);
  CAF_CHECK_EQUAL(prices.cloud_prices["claude-sonnet-4-5"].input_per_1m, 3.0);
  CAF_CHECK_EQUAL(prices.cloud_prices["claude-sonnet-4-5"].output_per_1m, 15.0);
  CAF_CHECK(!price_table_problem(prices));
}

CAF_TEST(a saving is the tokens at the comparison model or the mapped one) {
  auto prices = two_prices();
  // 1M in + 1M out at 3 + 15 USD.
  CAF_CHECK_EQUAL(estimate_saved_usd(prices, "coder:7b", 1'000'000, 1'000'000), 18.0);
  CAF_CHECK_EQUAL(estimate_saved_usd(prices, "coder:7b", 500'000, 0), 1.5);
  // tiny:1b stands in for "small": 1 + 4 USD per million.
  CAF_CHECK_EQUAL(estimate_saved_usd(prices, "tiny:1b", 1'000'000, 1'000'000), 5.0);
  CAF_CHECK_EQUAL(estimate_saved_usd(prices, "coder:7b", -5, -5), 0.0);
  prices.comparison_model = "gone";
  CAF_CHECK_EQUAL(estimate_saved_usd(prices, "coder:7b", 1'000'000, 0), 0.0);
}

CAF_TEST(a table whose models lack prices is a problem naming the model) {
  auto prices = two_prices();
  CAF_CHECK(!price_table_problem(prices));
  prices.comparison_model = "unknown-cloud";
  auto problem = price_table_problem(prices);
  CAF_REQUIRE(problem.has_value());
  CAF_CHECK_NOT_EQUAL(problem->find("unknown-cloud"), std::string::npos);
  prices = two_prices();
  prices.local_models["tiny:1b"] = "nowhere";
  problem = price_table_problem(prices);
  CAF_REQUIRE(problem.has_value());
  CAF_CHECK_NOT_EQUAL(problem->find("nowhere"), std::string::npos);
  prices = two_prices();
  prices.cloud_prices["small"].output_per_1m = -1;
  CAF_CHECK(price_table_problem(prices).has_value());
}

CAF_TEST(a record carries the task figures and only a success saves) {
  auto prices = two_prices();
  auto ok = make_usage_record(finished(task_status::ok, 1'000'000, 0), "batch_offload", prices);
  CAF_CHECK_EQUAL(ok.task_index, 2u);
  CAF_CHECK_EQUAL(ok.tool, "batch_offload");
  CAF_CHECK_EQUAL(ok.model, "coder:7b");
  CAF_CHECK_EQUAL(ok.backend, "ollama@127.0.0.1:11434");
  CAF_CHECK_EQUAL(ok.tokens_in, 1'000'000);
  CAF_CHECK_EQUAL(ok.duration_ms, 1234);
  CAF_CHECK_EQUAL(ok.attempts, 2u);
  CAF_CHECK_EQUAL(ok.outcome, "ok");
  CAF_CHECK_EQUAL(ok.error_code, "");
  CAF_CHECK_EQUAL(ok.saved_usd, 3.0);
  auto failed = make_usage_record(finished(task_status::error, 500, 20), "offload_work", prices);
  CAF_CHECK_EQUAL(failed.outcome, "error");
  CAF_CHECK_EQUAL(failed.error_code, "timeout");
  CAF_CHECK_EQUAL(failed.tokens_out, 20);
  CAF_CHECK_EQUAL(failed.saved_usd, 0.0);
  auto cancelled = make_usage_record(finished(task_status::cancelled, 0, 0), "x", prices);
  CAF_CHECK_EQUAL(cancelled.outcome, "cancelled");
}

// -- time windows --------------------------------------------------------------------------------

CAF_TEST(windows start at midnight utc and count today) {
  CAF_CHECK_EQUAL(usage_window_start_ms(0, wall_time), 0);
  auto today = usage_window_start_ms(1, wall_time);
  CAF_CHECK_EQUAL(utc_day(today), "2027-01-15");
  CAF_CHECK_EQUAL(today % 86'400'000, 0);
  CAF_CHECK_EQUAL(utc_day(usage_window_start_ms(7, wall_time)), "2027-01-09");
  CAF_CHECK_EQUAL(utc_day(usage_window_start_ms(30, wall_time)), "2026-12-17");
  CAF_CHECK_EQUAL(utc_day(today - 1), "2027-01-14");
}

// -- tool arguments ------------------------------------------------------------------------------

CAF_TEST(cost dashboard periods map to utc days) {
  std::string error;
  CAF_CHECK_EQUAL(parse_cost_dashboard_args(json::object(), error), 0u);
  CAF_CHECK_EQUAL(parse_cost_dashboard_args(json(), error), 0u);
  CAF_CHECK_EQUAL(parse_cost_dashboard_args(json{{"period", "all"}}, error), 0u);
  CAF_CHECK_EQUAL(parse_cost_dashboard_args(json{{"period", "day"}}, error), 1u);
  CAF_CHECK_EQUAL(parse_cost_dashboard_args(json{{"period", "week"}}, error), 7u);
  CAF_CHECK_EQUAL(parse_cost_dashboard_args(json{{"period", "month"}}, error), 30u);
  CAF_CHECK_EQUAL(error, "");
  CAF_CHECK(!parse_cost_dashboard_args(json{{"period", "year"}}, error));
  CAF_CHECK_NOT_EQUAL(error.find("period must be one of"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(error.find("\"year\""), std::string::npos);
  CAF_CHECK(!parse_cost_dashboard_args(json{{"period", 7}}, error));
  CAF_CHECK(!parse_cost_dashboard_args(json::array(), error));
}

CAF_TEST(metrics come as json by default or as prometheus text) {
  std::string error;
  CAF_CHECK(parse_get_metrics_args(json::object(), error) == metrics_format::json);
  CAF_CHECK(parse_get_metrics_args(json{{"format", "prometheus"}}, error) ==
            metrics_format::prometheus);
  CAF_CHECK(!parse_get_metrics_args(json{{"format", "xml"}}, error));
  CAF_CHECK_NOT_EQUAL(error.find("format must be one of \"json\", \"prometheus\""),
                      std::string::npos);
  CAF_CHECK_EQUAL(get_metrics_input_schema()["properties"]["format"]["enum"].size(), 2u);
  CAF_CHECK_EQUAL(cost_dashboard_input_schema()["properties"]["period"]["enum"].size(), 4u);
}

// -- renderings ----------------------------------------------------------------------------------

CAF_TEST(the json summary has every group and money in micro - dollars) {
  auto j = render_usage_json(sample_summary());
  CAF_CHECK_EQUAL(j["since"].get<std::string>(), "2027-01-09");
  CAF_CHECK_EQUAL(j["totals"]["tasks"].get<int64_t>(), 4);
  CAF_CHECK_EQUAL(j["totals"]["error"].get<int64_t>(), 1);
  CAF_CHECK_EQUAL(j["totals"]["saved_usd"].dump(), "0.3");
  CAF_REQUIRE_EQUAL(j["by_agent"].size(), 2u);
  CAF_CHECK_EQUAL(j["by_agent"][1]["agent"].get<std::string>(), "alice");
  CAF_CHECK_EQUAL(j["by_agent"][1]["tokens_out"].get<int64_t>(), 400);
  CAF_CHECK_EQUAL(j["by_day"][0]["day"].get<std::string>(), "2027-01-14");
  CAF_CHECK_EQUAL(j["by_model"][0]["model"].get<std::string>(), "coder:7b");
  CAF_CHECK_EQUAL(j["by_backend"][0]["backend"].get<std::string>(), "ollama@127.0.0.1:11434");
  CAF_CHECK_EQUAL(j["errors_by_code"]["timeout"].get<int64_t>(), 1);
  CAF_CHECK_EQUAL(j["duration_ms"]["p95"].get<int64_t>(), 2500);
  CAF_CHECK_EQUAL(j["duration_ms"]["tasks"].get<int64_t>(), 4);
  CAF_CHECK(render_usage_json(usage_summary{})["since"].is_null());
}

CAF_TEST(the prometheus text is well formed with escaped labels) {
  auto summary = sample_summary();
  summary.by_agent.push_back({"we\"ird\\agent\nx", totals(1, 0, 1, 1, 0)});
  auto text = render_usage_prometheus(summary);
  CAF_REQUIRE(!text.empty());
  CAF_CHECK_EQUAL(text.back(), '\n');
  // Every line is a comment or `name{labels} value`, labels escaped.
  std::regex sample{R"re(^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? -?[0-9.e+-]+$)re"};
  std::istringstream lines{text};
  std::string line;
  size_t samples = 0;
  while (std::getline(lines, line)) {
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE "))
      continue;
    ++samples;
    if (!std::regex_match(line, sample))
      CAF_ERROR("malformed sample: " << line);
  }
  CAF_CHECK(samples > 10);
  CAF_CHECK_NOT_EQUAL(text.find("# TYPE offload_tasks_total counter\n"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(
      text.find("offload_tasks_total{tool=\"batch_offload\",outcome=\"error\"} 1\n"),
      std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("offload_tokens_total{direction=\"output\"} 600\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("offload_saved_usd_total 0.3\n"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("offload_task_duration_ms{quantile=\"0.95\"} 2500\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("offload_task_duration_ms_count 4\n"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("offload_task_errors_total{code=\"timeout\"} 1\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find(R"(offload_agent_tasks_total{agent="we\"ird\\agent\nx"} 1)"),
                      std::string::npos);
}

CAF_TEST(the table shows totals and every group) {
  auto text = render_usage_table(sample_summary());
  CAF_CHECK_EQUAL(text.rfind("offload usage since 2027-01-09 (UTC)\n", 0), 0u);
  CAF_CHECK_NOT_EQUAL(text.find("tasks: 4 (3 ok, 1 error, 0 skipped, 0 cancelled)"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("tokens: 300 in, 600 out"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("estimated cloud cost saved: $0.3000"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("not ok by code: timeout 1"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("time in tasks: 6.0 s; backend attempts: 4; task duration p50 "
                                "1.5 s, p95 2.5 s\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("\nby agent\n"), std::string::npos);
  // Anonymous calls have their own row; columns line up (numbers right-aligned).
  CAF_CHECK_NOT_EQUAL(text.find("(anonymous)      2   1       1        100         200     "
                                "0.1000\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("alice            2   2       0        200         400     "
                                "0.2000\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(text.find("2027-01-15"), std::string::npos);
  auto quick = sample_summary();
  quick.duration_p50_ms = 8;
  CAF_CHECK_NOT_EQUAL(render_usage_table(quick).find("p50 8 ms, p95 2.5 s"), std::string::npos);
  CAF_CHECK_EQUAL(render_usage_table(usage_summary{}),
                  "offload usage: everything recorded\nNo tasks recorded.\n");
}

CAF_TEST(a record renders with a utc timestamp) {
  usage_record r;
  r.time = wall_time + 7ms;
  r.run_id = "run";
  r.call_no = 3;
  r.outcome = "ok";
  r.saved_usd = 0.1 + 0.2;
  auto j = render_usage_record(r);
  CAF_CHECK_EQUAL(j["time"].get<std::string>(), "2027-01-15T08:00:20.007Z");
  CAF_CHECK_EQUAL(j["call_no"].get<uint64_t>(), 3u);
  CAF_CHECK_EQUAL(j["saved_usd"].dump(), "0.3");
}
