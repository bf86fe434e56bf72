#include "protocol/fakellm_script.hpp"

#include <charconv>

namespace offload::fakellm {

namespace {

std::optional<fault> fault_from_string(std::string_view name) {
  for (auto f : injectable_faults)
    if (to_string(f) == name)
      return f;
  return std::nullopt;
}

// A decimal number of at most `max`. from_chars alone would accept a leading '-'; markers are
// written by hand, so be strict.
std::optional<uint64_t> parse_number(std::string_view digits, uint64_t max) {
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc{} || end != digits.data() + digits.size() || value > max)
    return std::nullopt;
  return value;
}

std::optional<std::chrono::milliseconds> parse_millis(std::string_view digits) {
  auto ms = parse_number(digits, static_cast<uint64_t>(max_latency.count()));
  if (!ms)
    return std::nullopt;
  return std::chrono::milliseconds{*ms};
}

bool takes_delay(fault f) {
  return f == fault::slow_first_token || f == fault::slow_tokens;
}

bool takes_retry_after(fault f) {
  return f == fault::http429 || f == fault::http503;
}

// Reads `NAME[=MS][:param=value]...`, the value of a fault marker.
std::optional<fault_spec> parse_fault(std::string_view text) {
  auto colon = text.find(':');
  auto head = text.substr(0, colon);
  fault_spec spec;
  auto eq = head.find('=');
  auto kind = fault_from_string(head.substr(0, eq));
  if (!kind)
    return std::nullopt;
  spec.kind = *kind;
  if (takes_delay(spec.kind) != (eq != std::string_view::npos))
    return std::nullopt;
  if (eq != std::string_view::npos) {
    auto delay = parse_millis(head.substr(eq + 1));
    if (!delay)
      return std::nullopt;
    spec.delay = *delay;
  }
  while (colon != std::string_view::npos) {
    auto start = colon + 1;
    colon = text.find(':', start);
    auto param = text.substr(start, colon == std::string_view::npos ? colon : colon - start);
    auto param_eq = param.find('=');
    if (param_eq == std::string_view::npos)
      return std::nullopt;
    auto key = param.substr(0, param_eq);
    auto value = param.substr(param_eq + 1);
    // A repeated parameter is a typo more likely than an intent; reject it like one.
    if (key == "times" && spec.times == 0) {
      auto times = parse_number(value, max_times);
      if (!times || *times == 0)
        return std::nullopt;
      spec.times = static_cast<uint32_t>(*times);
    } else if (key == "retry_after" && takes_retry_after(spec.kind) && !spec.retry_after) {
      auto seconds = parse_number(value, static_cast<uint64_t>(max_retry_after.count()));
      if (!seconds)
        return std::nullopt;
      spec.retry_after = std::chrono::seconds{*seconds};
    } else {
      return std::nullopt;
    }
  }
  return spec;
}

// Applies the marker text between `[[` and `]]`; returns whether it was a valid marker.
bool apply_marker(std::string_view marker, script& result) {
  auto eq = marker.find('=');
  if (eq == std::string_view::npos)
    return false;
  auto key = marker.substr(0, eq);
  auto value = marker.substr(eq + 1);
  if (key == "latency") {
    if (auto latency = parse_millis(value)) {
      result.latency = *latency;
      return true;
    }
  } else if (key == "fault") {
    if (auto spec = parse_fault(value)) {
      result.faults.push_back(*spec);
      return true;
    }
  }
  return false;
}

} // namespace

std::string_view to_string(fault f) {
  switch (f) {
  case fault::none:
    return "none";
  case fault::http500:
    return "http500";
  case fault::drop:
    return "drop";
  case fault::hang:
    return "hang";
  case fault::malformed:
    return "malformed";
  case fault::notfound:
    return "notfound";
  case fault::http503:
    return "http503";
  case fault::http429:
    return "http429";
  case fault::slow_first_token:
    return "slow_first_token";
  case fault::slow_tokens:
    return "slow_tokens";
  case fault::midstream_error:
    return "midstream_error";
  case fault::context_too_long:
    return "context_too_long";
  }
  return "none";
}

bool is_delay(fault f) {
  return takes_delay(f);
}

bool script::counts_attempts() const {
  for (const auto& spec : faults)
    if (spec.times != 0)
      return true;
  return false;
}

script parse_script(std::string_view text) {
  script result;
  size_t pos = 0;
  while ((pos = text.find("[[", pos)) != std::string_view::npos) {
    auto close = text.find("]]", pos + 2);
    if (close == std::string_view::npos)
      break;
    // After a bad marker, step one character only: in "[[[latency=5]]" the real marker starts
    // inside the span just rejected.
    pos = apply_marker(text.substr(pos + 2, close - pos - 2), result) ? close + 2 : pos + 1;
  }
  return result;
}

uint16_t default_status(error_kind kind) {
  switch (kind) {
  case error_kind::bad_request:
  case error_kind::context_too_long:
    return 400;
  case error_kind::path_not_found:
  case error_kind::model_not_found:
    return 404;
  case error_kind::method_not_allowed:
    return 405;
  case error_kind::too_large:
    return 413;
  case error_kind::rate_limited:
    return 429;
  case error_kind::internal:
    return 500;
  case error_kind::busy:
  case error_kind::loading:
    return 503;
  }
  return 500;
}

action resolve_action(const script& s, uint64_t attempt) {
  action result;
  result.latency = s.latency;
  const fault_spec* shape = nullptr;
  for (const auto& spec : s.faults) {
    if (spec.times != 0 && attempt > spec.times)
      continue;
    if (spec.kind == fault::slow_first_token)
      result.first_token_delay = spec.delay;
    else if (spec.kind == fault::slow_tokens)
      result.token_delay = spec.delay;
    else
      shape = &spec;
  }
  auto fail = [&](error_kind kind) {
    result.response = response_kind::error;
    result.error = kind;
    result.status = default_status(kind);
  };
  switch (shape ? shape->kind : fault::none) {
  case fault::http500:
    fail(error_kind::internal);
    break;
  case fault::notfound:
    fail(error_kind::model_not_found);
    break;
  case fault::http503:
    fail(error_kind::busy);
    result.retry_after = shape->retry_after;
    break;
  case fault::http429:
    fail(error_kind::rate_limited);
    result.retry_after = shape->retry_after.value_or(default_retry_after);
    break;
  case fault::context_too_long:
    fail(error_kind::context_too_long);
    break;
  case fault::hang:
    result.response = response_kind::hang;
    break;
  case fault::drop:
    result.response = response_kind::drop;
    break;
  case fault::malformed:
    result.response = response_kind::malformed;
    break;
  case fault::midstream_error:
    result.response = response_kind::midstream_error;
    result.error = error_kind::internal;
    break;
  case fault::none:
  case fault::slow_first_token:
  case fault::slow_tokens:
    break;
  }
  if (shape)
    result.applied.push_back(shape->kind);
  // A delay only counts when there is a stream for it to slow down.
  if (carries_answer(result.response)) {
    if (result.first_token_delay.count() > 0)
      result.applied.push_back(fault::slow_first_token);
    if (result.token_delay.count() > 0)
      result.applied.push_back(fault::slow_tokens);
  }
  return result;
}

bool carries_answer(response_kind kind) {
  return kind == response_kind::answer || kind == response_kind::drop ||
         kind == response_kind::malformed || kind == response_kind::midstream_error ||
         kind == response_kind::truncate;
}

std::string_view to_string(response_kind kind) {
  switch (kind) {
  case response_kind::answer:
    return "answer";
  case response_kind::error:
    return "error";
  case response_kind::hang:
    return "hang";
  case response_kind::drop:
    return "drop";
  case response_kind::malformed:
    return "malformed";
  case response_kind::midstream_error:
    return "midstream_error";
  case response_kind::truncate:
    return "truncate";
  }
  return "answer";
}

uint16_t error_status(const action& a) {
  return a.response == response_kind::error ? a.status : default_status(a.error);
}

uint64_t attempt_counter::record(std::string_view prompt) {
  return ++attempts_[std::string{prompt}];
}

} // namespace offload::fakellm
