#include "protocol/ledger.hpp"

#include "runtime/defaults.hpp"

#include <fmt/format.h>

#include <cmath>

namespace offload {

price_table default_price_table() {
  price_table out;
  out.comparison_model = defaults::comparison_model;
  for (const auto& price : defaults::cloud_list_prices)
    out.cloud_prices[price.model] = {price.input_per_1m, price.output_per_1m};
  return out;
}

std::optional<std::string> price_table_problem(const price_table& prices) {
  for (const auto& [model, price] : prices.cloud_prices)
    if (!std::isfinite(price.input_per_1m) || !std::isfinite(price.output_per_1m) ||
        price.input_per_1m < 0 || price.output_per_1m < 0)
      return fmt::format("the price of \"{}\" must be a number of USD of at least 0", model);
  auto known = [&](const std::string& model) { return prices.cloud_prices.count(model) > 0; };
  if (!known(prices.comparison_model))
    return fmt::format("the comparison model \"{}\" has no price; add it to "
                       "pricing.cloud_prices",
                       prices.comparison_model);
  for (const auto& [local, cloud] : prices.local_models)
    if (!known(cloud))
      return fmt::format("local model \"{}\" is compared with \"{}\", which has no price; add it "
                         "to pricing.cloud_prices",
                         local, cloud);
  return std::nullopt;
}

double estimate_saved_usd(const price_table& prices, const std::string& local_model,
                          int64_t tokens_in, int64_t tokens_out) {
  const auto* cloud = &prices.comparison_model;
  if (auto mapped = prices.local_models.find(local_model); mapped != prices.local_models.end())
    cloud = &mapped->second;
  auto price = prices.cloud_prices.find(*cloud);
  if (price == prices.cloud_prices.end())
    return 0;
  constexpr double per_million = 1e-6;
  return static_cast<double>(std::max<int64_t>(tokens_in, 0)) * per_million *
             price->second.input_per_1m +
         static_cast<double>(std::max<int64_t>(tokens_out, 0)) * per_million *
             price->second.output_per_1m;
}

usage_record make_usage_record(const task_result& result, const std::string& tool,
                               const price_table& prices) {
  usage_record out;
  out.task_index = result.index;
  out.tool = tool;
  out.model = result.model;
  out.backend = result.backend;
  out.tokens_in = result.tokens_in;
  out.tokens_out = result.tokens_out;
  out.duration_ms = result.duration_ms;
  out.outcome = std::string{to_string(result.status)};
  if (result.status != task_status::ok)
    out.error_code = std::string{to_string(result.error.code)};
  out.attempts = result.attempts;
  // A task that failed saved nothing: the agent has to do it after all.
  if (result.status == task_status::ok)
    out.saved_usd = estimate_saved_usd(prices, result.model, result.tokens_in, result.tokens_out);
  return out;
}

int64_t usage_window_start_ms(uint32_t days, std::chrono::system_clock::time_point now) {
  if (days == 0)
    return 0;
  auto today = std::chrono::floor<std::chrono::days>(now);
  auto start = today - std::chrono::days(static_cast<int64_t>(days) - 1);
  return std::chrono::duration_cast<std::chrono::milliseconds>(start.time_since_epoch()).count();
}

std::string utc_day(int64_t epoch_ms) {
  auto time = std::chrono::sys_time<std::chrono::milliseconds>{std::chrono::milliseconds{epoch_ms}};
  std::chrono::year_month_day day{std::chrono::floor<std::chrono::days>(time)};
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(day.year()),
                     static_cast<unsigned>(day.month()), static_cast<unsigned>(day.day()));
}

namespace {

// The value of an optional string argument `name` that must be one of `allowed`; the first of
// `allowed` when absent.
std::optional<std::string> choice_arg(const json& args, const char* name,
                                      std::initializer_list<const char*> allowed,
                                      std::string& error) {
  std::string list;
  for (const auto* value : allowed)
    list += fmt::format("{}\"{}\"", list.empty() ? "" : ", ", value);
  if (!args.is_null() && !args.is_object()) {
    error = "the arguments must be an object";
    return std::nullopt;
  }
  auto it = args.is_object() ? args.find(name) : args.end();
  if (!args.is_object() || it == args.end() || it->is_null())
    return std::string{*allowed.begin()};
  if (it->is_string())
    for (const auto* value : allowed)
      if (it->get<std::string>() == value)
        return std::string{value};
  error = fmt::format("{} must be one of {}, got {}", name, list, it->dump());
  return std::nullopt;
}

} // namespace

std::optional<uint32_t> parse_cost_dashboard_args(const json& args, std::string& error) {
  auto period = choice_arg(args, "period", {"all", "day", "week", "month"}, error);
  if (!period)
    return std::nullopt;
  if (*period == "day")
    return 1;
  if (*period == "week")
    return 7;
  if (*period == "month")
    return 30;
  return 0;
}

std::optional<metrics_format> parse_get_metrics_args(const json& args, std::string& error) {
  auto format = choice_arg(args, "format", {"json", "prometheus"}, error);
  if (!format)
    return std::nullopt;
  return *format == "prometheus" ? metrics_format::prometheus : metrics_format::json;
}

json cost_dashboard_input_schema() {
  return {
      {"type", "object"},
      {"properties",
       {{"period",
         {{"type", "string"},
          {"enum", {"all", "day", "week", "month"}},
          {"default", "all"},
          {"description", "Which UTC days to count: today (day), the last 7 (week), the last "
                          "30 (month), or everything recorded (all)."}}}}},
  };
}

json get_metrics_input_schema() {
  return {
      {"type", "object"},
      {"properties",
       {{"format",
         {{"type", "string"},
          {"enum", {"json", "prometheus"}},
          {"default", "json"},
          {"description", "JSON, or the Prometheus text exposition format."}}}}},
  };
}

} // namespace offload
