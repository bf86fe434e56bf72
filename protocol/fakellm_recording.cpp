#include "protocol/fakellm_recording.hpp"

#include "protocol/audit.hpp"
#include "protocol/fakellm_script.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>

namespace offload::fakellm {

namespace {

using json = nlohmann::json;

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string to_base64(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  for (size_t i = 0; i < data.size(); i += 3) {
    uint32_t group = static_cast<uint8_t>(data[i]) << 16;
    if (i + 1 < data.size())
      group |= static_cast<uint8_t>(data[i + 1]) << 8;
    if (i + 2 < data.size())
      group |= static_cast<uint8_t>(data[i + 2]);
    out += base64_alphabet[(group >> 18) & 63];
    out += base64_alphabet[(group >> 12) & 63];
    out += i + 1 < data.size() ? base64_alphabet[(group >> 6) & 63] : '=';
    out += i + 2 < data.size() ? base64_alphabet[group & 63] : '=';
  }
  return out;
}

std::optional<std::string> from_base64(std::string_view text) {
  if (text.size() % 4 != 0)
    return std::nullopt;
  std::string out;
  uint32_t group = 0;
  int bits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '=') {
      // Padding only at the very end.
      if (i + 2 < text.size() || (i + 1 < text.size() && text[i + 1] != '='))
        return std::nullopt;
      break;
    }
    auto index = base64_alphabet.find(text[i]);
    if (index == std::string_view::npos)
      return std::nullopt;
    group = (group << 6) | static_cast<uint32_t>(index);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((group >> bits) & 0xff);
    }
  }
  return out;
}

bool is_utf8(std::string_view data) {
  size_t i = 0;
  while (i < data.size()) {
    auto c = static_cast<uint8_t>(data[i]);
    size_t length = c < 0x80           ? 1
                    : (c >> 5) == 0x6  ? 2
                    : (c >> 4) == 0xe  ? 3
                    : (c >> 3) == 0x1e ? 4
                                       : 0;
    if (length == 0 || i + length > data.size())
      return false;
    for (size_t k = 1; k < length; ++k)
      if ((static_cast<uint8_t>(data[i + k]) & 0xc0) != 0x80)
        return false;
    i += length;
  }
  return true;
}

json frame_json(const recorded_frame& frame) {
  json out = {{"at_ms", frame.at.count()}};
  if (is_utf8(frame.data))
    out["data"] = frame.data;
  else
    out["base64"] = to_base64(frame.data);
  return out;
}

} // namespace

std::string canonical_request(std::string_view method, std::string_view target,
                              std::string_view body, const std::vector<std::string>& ignored) {
  auto head = fmt::format("{} {}\n", method, target);
  auto parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || body.empty())
    return head + std::string{body};
  if (parsed.is_object())
    for (const auto& field : ignored)
      parsed.erase(field);
  // nlohmann's objects keep their keys sorted, so equal JSON dumps to equal text.
  return head + parsed.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string recording_key(std::string_view canonical) {
  return sha256_hex(canonical).substr(0, 20);
}

std::string exchange_file_name(std::string_view key, uint64_t occurrence) {
  return fmt::format("{}-{:04}.json", key, occurrence);
}

std::string serialize_exchange(const recorded_exchange& e) {
  json frames = json::array();
  for (const auto& frame : e.frames)
    frames.push_back(frame_json(frame));
  json request = {{"method", e.method}, {"target", e.target}};
  auto body = json::parse(e.request_body, nullptr, false);
  if (!body.is_discarded() && !e.request_body.empty())
    request["body"] = std::move(body);
  else
    request["body_text"] = e.request_body;
  json response = {{"status", e.status},
                   {"content_type", e.content_type},
                   {"streamed", e.streamed},
                   {"complete", e.complete},
                   {"frames", std::move(frames)}};
  if (e.retry_after)
    response["retry_after_s"] = e.retry_after->count();
  if (!e.streamed)
    response["content_length"] = e.content_length;
  json out = {{"key", e.key},
              {"occurrence", e.occurrence},
              {"request", std::move(request)},
              {"response", std::move(response)}};
  return out.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

parsed_exchange parse_exchange(std::string_view text) {
  parsed_exchange result;
  try {
    auto doc = json::parse(text);
    recorded_exchange e;
    e.key = doc.at("key").get<std::string>();
    e.occurrence = doc.at("occurrence").get<uint64_t>();
    const auto& request = doc.at("request");
    e.method = request.at("method").get<std::string>();
    e.target = request.at("target").get<std::string>();
    if (request.contains("body"))
      e.request_body = request.at("body").dump();
    else if (request.contains("body_text"))
      e.request_body = request.at("body_text").get<std::string>();
    const auto& response = doc.at("response");
    e.status = response.at("status").get<uint16_t>();
    e.content_type = response.at("content_type").get<std::string>();
    e.streamed = response.at("streamed").get<bool>();
    e.complete = response.at("complete").get<bool>();
    if (!e.streamed)
      e.content_length = response.at("content_length").get<uint64_t>();
    if (response.contains("retry_after_s"))
      e.retry_after = std::chrono::seconds{response.at("retry_after_s").get<int64_t>()};
    for (const auto& frame : response.at("frames")) {
      recorded_frame f;
      f.at = std::chrono::milliseconds{frame.at("at_ms").get<int64_t>()};
      if (frame.contains("base64")) {
        auto decoded = from_base64(frame.at("base64").get<std::string>());
        if (!decoded)
          throw std::invalid_argument("a frame's base64 does not decode");
        f.data = std::move(*decoded);
      } else {
        f.data = frame.at("data").get<std::string>();
      }
      e.frames.push_back(std::move(f));
    }
    if (e.status < 100 || e.status > 599)
      throw std::invalid_argument(fmt::format("status {} is not an HTTP status", e.status));
    if (e.occurrence == 0)
      throw std::invalid_argument("occurrence counts from 1");
    result.exchange = std::move(e);
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

response_plan plan_replay(const recorded_exchange& e, bool preserve_timing) {
  response_plan plan;
  plan.status = e.status;
  plan.content_type = e.content_type;
  plan.retry_after = e.retry_after;
  plan.streamed = e.streamed;
  plan.cut = !e.complete;
  std::chrono::milliseconds previous{0};
  for (const auto& frame : e.frames) {
    plan.body.append(frame.data);
    // The first frame's gap is the time to the first byte; a clock that went backwards while
    // recording must not make a negative wait.
    auto gap = std::max(frame.at - previous, std::chrono::milliseconds{0});
    previous = std::max(previous, frame.at);
    if (e.streamed)
      plan.end_frame(preserve_timing ? gap : std::chrono::milliseconds{0});
  }
  if (!e.streamed) {
    // A Content-Length body goes out whole, after the time its last byte took.
    plan.end_frame(preserve_timing ? previous : std::chrono::milliseconds{0});
    plan.content_length = e.complete ? plan.body.size() : e.content_length;
  }
  return plan;
}

response_plan plan_missing_recording(api_family family, std::string_view method,
                                     std::string_view target, std::string_view key,
                                     std::string_view directory) {
  return plan_error(family,
                    make_error_reply(error_kind::path_not_found,
                                     fmt::format("fakellm replay: no recording of {} {} (key {}) "
                                                 "in {}",
                                                 method, target, key, directory)));
}

} // namespace offload::fakellm
