// Fault plans in a fake LLM session: which action a request gets, faults on the endpoints with
// fixed answers, and PUT /_fake/plan.

#include "runtime/fakellm_session.hpp"

#include "protocol/fakellm_ollama.hpp"
#include "protocol/fakellm_plan.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>

namespace offload::fakellm_detail {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using namespace std::chrono_literals;

// The value of `name` in the query string of `target`, if present.
std::optional<std::string_view> query_value(std::string_view target, std::string_view name) {
  auto question = target.find('?');
  if (question == std::string_view::npos)
    return std::nullopt;
  auto query = target.substr(question + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name)
      return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (amp == std::string_view::npos)
      break;
    query = query.substr(amp + 1);
  }
  return std::nullopt;
}

fakellm::response_plan control_error(uint16_t status, std::string message) {
  return fakellm::plan_body(status, fakellm::json_content_type, fakellm::make_error_body(message));
}

} // namespace

fakellm::action session::choose_action(fakellm::dialect dialect) {
  auto prompt = fakellm::reply_to(chat_);
  auto script = fakellm::parse_script(prompt);
  fakellm::request_record record;
  record.sequence = server_.arrivals;
  record.target = dialect == fakellm::dialect::openai_chat       ? fakellm::endpoint::completions
                  : dialect == fakellm::dialect::ollama_generate ? fakellm::endpoint::generate
                                                                 : fakellm::endpoint::chat;
  record.model = chat_.model;
  record.prompt = std::string{prompt.substr(0, fakellm::recent_prompt_chars)};
  // A prompt that carries markers asks for something explicit; the plan is the background.
  record.markers = !script.faults.empty() || script.latency > 0ms;
  if (record.markers || !server_.plan) {
    auto attempt = script.counts_attempts() ? server_.attempts.record(prompt) : 1;
    record.applied = fakellm::resolve_action(script, attempt);
  } else {
    fakellm::request_facts facts{fakellm::family_of(dialect),
                                 record.target,
                                 chat_.model,
                                 prompt,
                                 fakellm::count_prompt_words(chat_.messages),
                                 fakellm::request_identity(chat_)};
    auto decision = server_.plan->decide(facts, std::chrono::steady_clock::now());
    record.attempt = decision.attempt;
    if (decision.rule) {
      record.rule = server_.plan->plan().rules[*decision.rule].name;
      record.applied = std::move(decision.chosen);
    }
  }
  auto chosen = record.applied;
  server_.counters.remember(std::move(record));
  return chosen;
}

void session::handle_fixed(const fakellm::route& route, const std::string& body) {
  fakellm::request_facts facts{
      route.family, route.target, {}, {}, 0, fakellm::request_identity(route.target)};
  auto decision = server_.plan->decide(facts, std::chrono::steady_clock::now());
  if (!decision.rule)
    return dispatch(route.target, body);
  fakellm::request_record record;
  record.sequence = server_.arrivals;
  record.target = route.target;
  record.rule = server_.plan->plan().rules[*decision.rule].name;
  record.attempt = decision.attempt;
  record.applied = decision.chosen;
  server_.counters.remember(std::move(record));
  action_ = std::move(decision.chosen);
  fixed_ = route;
  if (action_.response == fakellm::response_kind::hang) {
    phase_ = phase::hanging;
    return do_watch();
  }
  if (action_.latency == 0ms)
    return finish_fixed();
  phase_ = phase::delaying;
  do_watch();
  timer_.expires_after(action_.latency);
  timer_.async_wait(beast::bind_front_handler(&session::on_wait_elapsed, shared_from_this()));
}

void session::finish_fixed() {
  auto route = *fixed_;
  fixed_.reset();
  // The parser still holds the request: nothing is read until its answer is out.
  const auto& body = parser_->get().body();
  if (action_.response != fakellm::response_kind::error)
    return dispatch(route.target, body);
  send_plan(fakellm::plan_error(
      route.family, fakellm::error_for(action_, fakellm::chat_request{}, route.family)));
}

void session::handle_put_plan(const http_request& request) {
  if (server_.proxying())
    return send_plan(control_error(409, "fault plans do not apply in record or replay mode"));
  auto seed = server_.options.seed;
  if (auto text = query_value(request.target(), "seed")) {
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), seed);
    if (ec != std::errc{} || end != text->data() + text->size())
      return send_plan(
          control_error(400, fmt::format("seed={} is not a whole number from 0 to 2^64-1", *text)));
  }
  auto parsed = fakellm::parse_fault_plan(request.body(), "PUT /_fake/plan");
  if (!parsed.ok()) {
    // The old plan stays: a test that sent a bad plan must not run on no plan at all.
    server_.log->warn("fakellm: rejected plan: {}", parsed.error);
    return send_plan(control_error(400, parsed.error));
  }
  server_.log->info("fakellm: plan swapped: {} rule(s), seed {}", parsed.plan->rules.size(), seed);
  server_.plan.emplace(std::move(*parsed.plan), seed);
  send_plan(fakellm::plan_body(200, fakellm::json_content_type,
                               fakellm::make_stats_body(server_.snapshot())));
}

} // namespace offload::fakellm_detail
