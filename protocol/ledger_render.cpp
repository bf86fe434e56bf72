// Renderings of usage summaries: JSON (get_metrics, cost_dashboard's structuredContent, `offload
// stats --format json`), Prometheus text, and plain-text tables for people.

#include "protocol/ledger.hpp"
#include "protocol/prometheus.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace offload {

namespace {

// Money in micro-dollars: sums of many small doubles otherwise print as 0.30000000000000004.
double rounded_usd(double usd) {
  return std::round(usd * 1e6) / 1e6;
}

json totals_json(const usage_totals& t) {
  return {{"tasks", t.tasks},           {"ok", t.ok},
          {"error", t.error},           {"skipped", t.skipped},
          {"cancelled", t.cancelled},   {"tokens_in", t.tokens_in},
          {"tokens_out", t.tokens_out}, {"duration_ms", t.duration_ms},
          {"attempts", t.attempts},     {"saved_usd", rounded_usd(t.saved_usd)}};
}

json groups_json(const std::vector<usage_group>& groups, const char* key_name) {
  auto out = json::array();
  for (const auto& group : groups) {
    auto item = totals_json(group.totals);
    item[key_name] = group.key;
    out.push_back(std::move(item));
  }
  return out;
}

// -- Prometheus ----------------------------------------------------------------------------------

struct exposition {
  std::string text;

  void family(std::string_view name, std::string_view type, std::string_view help) {
    prometheus::append_family_header(text, name, type, help);
  }
  template <class Value>
  void sample(std::string_view name, std::string_view labels, Value value) {
    if (labels.empty())
      text += fmt::format("{} {}\n", name, value);
    else
      text += fmt::format("{}{{{}}} {}\n", name, labels, value);
  }
};

std::string label(std::string_view name, std::string_view value) {
  return fmt::format("{}=\"{}\"", name, prometheus::escape_label_value(value));
}

// -- tables --------------------------------------------------------------------------------------

// Columns padded to their widest cell; the first left-aligned, the rest (numbers) right-aligned.
std::string aligned(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      widths.resize(std::max(widths.size(), row.size()));
      widths[i] = std::max(widths[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i == 0)
        line += fmt::format("{:<{}}", row[i], widths[i]);
      else
        line += fmt::format("  {:>{}}", row[i], widths[i]);
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line + '\n';
  }
  return out;
}

std::string usd(double value) {
  return fmt::format("{:.4f}", rounded_usd(value));
}

std::string group_table(const char* title, const char* key_name,
                        const std::vector<usage_group>& groups, const char* empty_key) {
  std::vector<std::vector<std::string>> rows{
      {key_name, "tasks", "ok", "not ok", "tokens in", "tokens out", "saved USD"}};
  for (const auto& group : groups) {
    const auto& t = group.totals;
    rows.push_back({group.key.empty() ? empty_key : group.key, std::to_string(t.tasks),
                    std::to_string(t.ok), std::to_string(t.tasks - t.ok),
                    std::to_string(t.tokens_in), std::to_string(t.tokens_out), usd(t.saved_usd)});
  }
  return fmt::format("\n{}\n{}", title, aligned(rows));
}

std::string seconds(int64_t ms) {
  if (ms < 1000)
    return fmt::format("{} ms", ms);
  return fmt::format("{:.1f} s", static_cast<double>(ms) / 1000.0);
}

} // namespace

json render_usage_json(const usage_summary& summary) {
  return {
      {"since", summary.since_day.empty() ? json() : json(summary.since_day)},
      {"totals", totals_json(summary.totals)},
      {"by_agent", groups_json(summary.by_agent, "agent")},
      {"by_model", groups_json(summary.by_model, "model")},
      {"by_tool", groups_json(summary.by_tool, "tool")},
      {"by_backend", groups_json(summary.by_backend, "backend")},
      {"by_day", groups_json(summary.by_day, "day")},
      {"errors_by_code", summary.errors_by_code},
      {"duration_ms",
       {{"tasks", summary.ran},
        {"sum", summary.ran_duration_ms},
        {"p50", summary.duration_p50_ms},
        {"p95", summary.duration_p95_ms},
        {"p99", summary.duration_p99_ms}}},
  };
}

std::string render_usage_prometheus(const usage_summary& summary) {
  exposition out;
  out.family("offload_tasks_total", "counter", "Tasks finished, by tool and outcome.");
  for (const auto& group : summary.by_tool) {
    const auto& t = group.totals;
    auto tool = label("tool", group.key);
    for (auto [outcome, count] :
         {std::pair{"ok", t.ok}, std::pair{"error", t.error}, std::pair{"skipped", t.skipped},
          std::pair{"cancelled", t.cancelled}})
      out.sample("offload_tasks_total", tool + "," + label("outcome", outcome), count);
  }
  out.family("offload_task_errors_total", "counter", "Tasks that did not succeed, by error code.");
  for (const auto& [code, count] : summary.errors_by_code)
    out.sample("offload_task_errors_total", label("code", code), count);
  out.family("offload_tokens_total", "counter", "Tokens processed by the local LLMs.");
  out.sample("offload_tokens_total", label("direction", "input"), summary.totals.tokens_in);
  out.sample("offload_tokens_total", label("direction", "output"), summary.totals.tokens_out);
  out.family("offload_saved_usd_total", "counter",
             "Estimated cloud cost saved in USD: successful tasks' tokens at cloud list prices.");
  out.sample("offload_saved_usd_total", "", rounded_usd(summary.totals.saved_usd));
  out.family("offload_backend_attempts_total", "counter",
             "Requests sent to backends for tasks, retries included.");
  out.sample("offload_backend_attempts_total", "", summary.totals.attempts);
  out.family("offload_task_duration_ms", "summary",
             "Duration of tasks that ran (ok or error), in milliseconds.");
  out.sample("offload_task_duration_ms", label("quantile", "0.5"), summary.duration_p50_ms);
  out.sample("offload_task_duration_ms", label("quantile", "0.95"), summary.duration_p95_ms);
  out.sample("offload_task_duration_ms", label("quantile", "0.99"), summary.duration_p99_ms);
  out.sample("offload_task_duration_ms_sum", "", summary.ran_duration_ms);
  out.sample("offload_task_duration_ms_count", "", summary.ran);
  out.family("offload_model_tasks_total", "counter", "Tasks finished, by model.");
  for (const auto& group : summary.by_model)
    out.sample("offload_model_tasks_total", label("model", group.key), group.totals.tasks);
  out.family("offload_model_tokens_total", "counter", "Tokens processed, by model.");
  for (const auto& group : summary.by_model) {
    auto model = label("model", group.key);
    out.sample("offload_model_tokens_total", model + "," + label("direction", "input"),
               group.totals.tokens_in);
    out.sample("offload_model_tokens_total", model + "," + label("direction", "output"),
               group.totals.tokens_out);
  }
  out.family("offload_model_saved_usd_total", "counter", "Estimated cloud cost saved, by model.");
  for (const auto& group : summary.by_model)
    out.sample("offload_model_saved_usd_total", label("model", group.key),
               rounded_usd(group.totals.saved_usd));
  out.family("offload_agent_tasks_total", "counter",
             "Tasks finished, by agent (empty: anonymous).");
  for (const auto& group : summary.by_agent)
    out.sample("offload_agent_tasks_total", label("agent", group.key), group.totals.tasks);
  out.family("offload_agent_saved_usd_total", "counter", "Estimated cloud cost saved, by agent.");
  for (const auto& group : summary.by_agent)
    out.sample("offload_agent_saved_usd_total", label("agent", group.key),
               rounded_usd(group.totals.saved_usd));
  out.family("offload_backend_tasks_total", "counter",
             "Tasks finished, by the backend that served them (empty: none).");
  for (const auto& group : summary.by_backend)
    out.sample("offload_backend_tasks_total", label("backend", group.key), group.totals.tasks);
  return out.text;
}

std::string render_usage_table(const usage_summary& summary) {
  const auto& t = summary.totals;
  auto out = summary.since_day.empty()
                 ? std::string{"offload usage: everything recorded\n"}
                 : fmt::format("offload usage since {} (UTC)\n", summary.since_day);
  if (t.tasks == 0)
    return out + "No tasks recorded.\n";
  out += fmt::format("tasks: {} ({} ok, {} error, {} skipped, {} cancelled)\n", t.tasks, t.ok,
                     t.error, t.skipped, t.cancelled);
  out += fmt::format("tokens: {} in, {} out\n", t.tokens_in, t.tokens_out);
  out += fmt::format("estimated cloud cost saved: ${} (successful tasks' tokens at cloud list "
                     "prices)\n",
                     usd(t.saved_usd));
  out += fmt::format("time in tasks: {}; backend attempts: {}; task duration p50 {}, p95 {}\n",
                     seconds(t.duration_ms), t.attempts, seconds(summary.duration_p50_ms),
                     seconds(summary.duration_p95_ms));
  if (!summary.errors_by_code.empty()) {
    std::string codes;
    for (const auto& [code, count] : summary.errors_by_code)
      codes += fmt::format("{}{} {}", codes.empty() ? "" : ", ", code, count);
    out += fmt::format("not ok by code: {}\n", codes);
  }
  out += group_table("by agent", "agent", summary.by_agent, "(anonymous)");
  out += group_table("by model", "model", summary.by_model, "(none)");
  out += group_table("by tool", "tool", summary.by_tool, "(none)");
  out += group_table("by backend", "backend", summary.by_backend, "(none)");
  out += group_table("by day (UTC)", "day", summary.by_day, "(none)");
  return out;
}

json render_usage_record(const usage_record& record) {
  auto ms = std::chrono::time_point_cast<std::chrono::milliseconds>(record.time);
  auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(ms);
  return {
      {"time", fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", seconds, (ms - seconds).count())},
      {"run_id", record.run_id},
      {"session", record.session},
      {"agent", record.agent},
      {"call_no", record.call_no},
      {"task_index", record.task_index},
      {"tool", record.tool},
      {"model", record.model},
      {"backend", record.backend},
      {"tokens_in", record.tokens_in},
      {"tokens_out", record.tokens_out},
      {"duration_ms", record.duration_ms},
      {"outcome", record.outcome},
      {"error_code", record.error_code},
      {"attempts", record.attempts},
      {"saved_usd", rounded_usd(record.saved_usd)},
  };
}

} // namespace offload
