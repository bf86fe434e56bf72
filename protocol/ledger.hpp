#pragma once
// The usage ledger's records and what is shown from them: one record per finished task, the
// estimate of what a task saved (its tokens at a cloud model's price), summaries (totals, per
// agent, model, tool, backend and UTC day) and their renderings: JSON, Prometheus text and a
// table for people. Pure code: the SQLite side is actors/usage_db.cpp.

#include "protocol/batch.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace offload {

// One finished task. (run_id, session, call_no, task_index) identifies it: call numbers start
// again in every daemon run, so the run id keeps two runs' calls apart.
struct usage_record {
  std::chrono::system_clock::time_point time; // when the task finished
  std::string run_id;                         // the daemon process that ran it
  std::string session;                        // "stdio" or an HTTP session id
  std::string agent;                          // authenticated identity; empty: anonymous
  uint64_t call_no = 0;                       // the session's tools/call number
  uint64_t task_index = 0;                    // the task's place in its call, from 0
  std::string tool;                           // batch_offload, offload_work, compress_context
  std::string model;
  std::string backend; // empty when no backend was asked (e.g. a skipped task)
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  int64_t duration_ms = 0;
  std::string outcome;    // the task status: ok, error, skipped, cancelled
  std::string error_code; // errc name when not ok, else empty
  uint32_t attempts = 0;
  double saved_usd = 0; // see estimate_saved_usd; 0 unless ok
};

// -- prices --------------------------------------------------------------------------------------

// A cloud model's list price in USD per million tokens.
struct token_price {
  double input_per_1m = 0;
  double output_per_1m = 0;

  friend bool operator==(const token_price&, const token_price&) = default;
};

// What offloaded work is compared with. A task done locally saves what its tokens would have
// cost at a cloud model: the comparison model, or the one a local model is mapped to.
struct price_table {
  std::string comparison_model;
  std::map<std::string, token_price> cloud_prices; // by cloud model name
  std::map<std::string, std::string> local_models; // local model -> cloud model it stands in for

  friend bool operator==(const price_table&, const price_table&) = default;
};
using price_table_ptr = std::shared_ptr<const price_table>;

// The built-in table (runtime/defaults.hpp): a few cloud models' list prices and the comparison
// model of the original server.
price_table default_price_table();

// What is wrong with a table (a model without a price, a negative price), or nullopt.
std::optional<std::string> price_table_problem(const price_table& prices);

// What `tokens_in` + `tokens_out` of `local_model`'s work would cost at the cloud model it
// stands in for (0 when that model has no price).
double estimate_saved_usd(const price_table& prices, const std::string& local_model,
                          int64_t tokens_in, int64_t tokens_out);

// The record of one finished task of a call of `tool`: the result's figures, its outcome, and
// what it saved (0 unless ok). The caller fills in when, and whose call it was.
usage_record make_usage_record(const task_result& result, const std::string& tool,
                               const price_table& prices);

// -- summaries -----------------------------------------------------------------------------------

struct usage_totals {
  int64_t tasks = 0;
  int64_t ok = 0;
  int64_t error = 0;
  int64_t skipped = 0;
  int64_t cancelled = 0;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  int64_t duration_ms = 0;
  int64_t attempts = 0;
  double saved_usd = 0;
};

// The totals of the records sharing one value of a column (an agent, a model, a UTC day, ...).
struct usage_group {
  std::string key;
  usage_totals totals;
};

struct usage_summary {
  // The first UTC day counted ("2024-03-10"), or empty when every record is.
  std::string since_day;
  usage_totals totals;
  // Each sorted by key.
  std::vector<usage_group> by_agent, by_model, by_tool, by_backend, by_day;
  std::map<std::string, int64_t> errors_by_code; // tasks not ok, by error code
  // Tasks that ran (ok or error), their summed duration, and nearest-rank percentiles of it.
  int64_t ran = 0;
  int64_t ran_duration_ms = 0;
  int64_t duration_p50_ms = 0;
  int64_t duration_p95_ms = 0;
  int64_t duration_p99_ms = 0;
};

// Epoch milliseconds of 00:00 UTC `days - 1` days before `now`'s day: the start of the last
// `days` UTC days, today included. 0 (everything) when `days` is 0.
int64_t usage_window_start_ms(uint32_t days, std::chrono::system_clock::time_point now);

// "2024-03-10" for a time in epoch milliseconds (UTC).
std::string utc_day(int64_t epoch_ms);

// -- the tools -----------------------------------------------------------------------------------

using json = nlohmann::json;

// cost_dashboard's arguments: {period?: "day" | "week" | "month" | "all"} (default "all"), as
// the number of UTC days to show (0: all). nullopt with `error` set when they are invalid.
std::optional<uint32_t> parse_cost_dashboard_args(const json& args, std::string& error);

enum class metrics_format : uint8_t { json, prometheus };

// get_metrics's arguments: {format?: "json" | "prometheus"} (default "json").
std::optional<metrics_format> parse_get_metrics_args(const json& args, std::string& error);

json cost_dashboard_input_schema();
json get_metrics_input_schema();

// -- renderings (protocol/ledger_render.cpp) -----------------------------------------------------

// {since, totals, by_agent: [{agent, ...totals}], by_model, by_tool, by_backend, by_day,
// errors_by_code, duration_ms: {p50, p95, p99}}; money rounded to micro-dollars.
json render_usage_json(const usage_summary& summary);

// The Prometheus text exposition format (version 0.0.4), metric names prefixed `offload_`.
std::string render_usage_prometheus(const usage_summary& summary);

// Aligned plain-text tables for people: totals, then per agent, model, tool and day.
std::string render_usage_table(const usage_summary& summary);

// One record as a JSON object (for `offload stats --format records`).
json render_usage_record(const usage_record& record);

} // namespace offload
