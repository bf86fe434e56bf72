#include "protocol/fakellm_state.hpp"

#include <algorithm>
#include <cassert>
#include <nlohmann/json.hpp>

namespace offload::fakellm {

using json = nlohmann::json;

namespace {

json record_json(const request_record& r) {
  const auto& a = r.applied;
  json out = {{"sequence", r.sequence},
              {"endpoint", to_string(r.target)},
              {"model", r.model},
              {"prompt", r.prompt},
              {"rule", r.rule.empty() ? json{} : json(r.rule)},
              {"markers", r.markers},
              {"response", to_string(a.response)}};
  if (r.attempt > 0)
    out["attempt"] = r.attempt;
  if (a.response == response_kind::error)
    out["status"] = error_status(a);
  if (a.latency.count() > 0)
    out["latency_ms"] = a.latency.count();
  if (a.first_token_delay.count() > 0)
    out["first_token_delay_ms"] = a.first_token_delay.count();
  if (a.token_delay.count() > 0)
    out["token_delay_ms"] = a.token_delay.count();
  if (a.chunks_before_break)
    out["chunks"] = *a.chunks_before_break;
  return out;
}

json plan_json(const plan_summary& plan) {
  json rules = json::array();
  for (const auto& rule : plan.rules)
    rules.push_back(
        {{"name", rule.name}, {"line", rule.line}, {"seen", rule.seen}, {"matched", rule.matched}});
  return {{"source", plan.source},
          {"description", plan.description},
          {"seed", plan.seed},
          {"rules", std::move(rules)}};
}

json proxy_json(const proxy_summary& proxy) {
  json out = {{"directory", proxy.directory}, {"exchanges", proxy.exchanges}};
  if (proxy.mode == "replay")
    out["missing"] = proxy.missing;
  else
    out["failed"] = proxy.failed;
  return out;
}

} // namespace

bool slot_pool::try_acquire() {
  if (closed_ || !waiters_.empty() || (capacity_ != 0 && in_use_ >= capacity_))
    return false;
  take();
  return true;
}

slot_pool::ticket slot_pool::enqueue(std::function<void()> on_granted) {
  return waiters_.insert(waiters_.end(), std::move(on_granted));
}

void slot_pool::release() {
  assert(in_use_ > 0 && "a slot was released twice");
  --in_use_;
  if (closed_ || waiters_.empty())
    return;
  auto on_granted = std::move(waiters_.front());
  waiters_.pop_front();
  take();
  on_granted();
}

void slot_pool::close() {
  closed_ = true;
  // Moved out first: a callback's destructor may release a slot and so call back into us.
  auto waiters = std::move(waiters_);
  waiters_.clear();
}

void slot_pool::take() {
  ++in_use_;
  max_in_use_ = std::max(max_in_use_, in_use_);
}

void model_residency::touch(const std::string& model, std::chrono::system_clock::time_point now,
                            std::optional<std::chrono::milliseconds> keep_alive) {
  using namespace std::chrono;
  auto keep = keep_alive.value_or(duration_cast<milliseconds>(default_keep_alive));
  if (keep.count() == 0) {
    expiry_.erase(model);
    return;
  }
  // Ollama shows "forever" as the largest Go duration from now, some 292 years ahead; the
  // nanosecond system clock ends in 2262, so the fake's forever is a year before that.
  auto forever = system_clock::time_point::max() - hours{24 * 366};
  auto until = keep.count() < 0 || keep > duration_cast<milliseconds>(forever - now)
                   ? forever
                   : now + duration_cast<system_clock::duration>(keep);
  expiry_[model] = until;
}

std::vector<std::pair<std::string, std::chrono::system_clock::time_point>>
model_residency::loaded(std::chrono::system_clock::time_point now) const {
  std::vector<std::pair<std::string, std::chrono::system_clock::time_point>> result;
  for (const auto& [name, until] : expiry_)
    if (until > now)
      result.emplace_back(name, until);
  return result;
}

void stats::count_model(endpoint target, const std::string& model) {
  ++models[model];
  ++endpoint_models[std::string{to_string(target)}][model];
}

void stats::remember(request_record record) {
  if (recent.size() == recent_requests_kept)
    recent.pop_front();
  recent.push_back(std::move(record));
}

void stats::reset_counters() {
  endpoint_models.clear();
  recent.clear();
  requests = 0;
  faults = {};
  endpoints = {};
  models.clear();
  rejected_busy = 0;
  rejected_loading = 0;
}

std::string make_stats_body(const stats& counters) {
  json faults = json::object();
  for (auto f : injectable_faults)
    faults[std::string{to_string(f)}] = counters.faults[static_cast<size_t>(f)];
  json endpoints = json::object();
  for (size_t i = 0; i < endpoint_count; ++i)
    endpoints[std::string{to_string(static_cast<endpoint>(i))}] = counters.endpoints[i];
  json models = json::object();
  for (const auto& [name, count] : counters.models)
    models[name] = count;
  json recent = json::array();
  for (const auto& r : counters.recent)
    recent.push_back(record_json(r));
  json body = {
      {"requests", counters.requests},
      {"in_flight", counters.in_flight},
      {"max_concurrent", counters.max_concurrent},
      {"waiting", counters.waiting},
      {"faults", std::move(faults)},
      {"endpoints", std::move(endpoints)},
      {"models", std::move(models)},
      {"rejected", {{"busy", counters.rejected_busy}, {"loading", counters.rejected_loading}}},
      {"api", to_string(counters.api)},
      {"endpoint_models", counters.endpoint_models},
      {"recent", std::move(recent)},
      {"plan", counters.plan ? plan_json(*counters.plan) : json{}}};
  if (counters.proxy)
    body[counters.proxy->mode] = proxy_json(*counters.proxy);
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace offload::fakellm
