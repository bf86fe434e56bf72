#pragma once
// Record and replay for `offload fakellm`: a request reduced to the key that identifies it, one
// recorded exchange (status, the headers that matter, the body as timed frames) as a file, and
// the response plan that replays it. Pure code; runtime/fakellm_proxy.cpp does the I/O.

#include "protocol/fakellm_response.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload::fakellm {

// What decides a request's answer: "METHOD TARGET\n" and the body, which, when it is JSON, is
// re-serialised with sorted keys and without the top-level fields in `ignored` (fields that vary
// between otherwise identical requests); any other body is taken verbatim.
std::string canonical_request(std::string_view method, std::string_view target,
                              std::string_view body, const std::vector<std::string>& ignored);

// The first 20 hex digits (80 bits) of the canonical request's SHA-256: short enough for a file
// name, long enough that two requests of one test suite never share one.
std::string recording_key(std::string_view canonical);

struct recorded_frame {
  std::chrono::milliseconds at{0}; // since the request went upstream
  std::string data;                // one HTTP chunk of the upstream's body, or a whole body
};

struct recorded_exchange {
  std::string key;
  uint64_t occurrence = 1; // the Nth exchange of this key, from 1
  std::string method;
  std::string target;
  std::string request_body; // canonical, for people reading the file
  uint16_t status = 200;
  std::string content_type;
  std::optional<std::chrono::seconds> retry_after;
  bool streamed = false;       // chunked transfer encoding
  bool complete = true;        // false: the upstream closed the connection before the end
  uint64_t content_length = 0; // not streamed: what the Content-Length header promised
  std::vector<recorded_frame> frames;
};

// "KEY-0003.json" for the third exchange of KEY; zero-padded so a directory listing sorts.
std::string exchange_file_name(std::string_view key, uint64_t occurrence);

// The file's text: JSON, with each frame's data as a string (or as base64 when it is not UTF-8).
std::string serialize_exchange(const recorded_exchange& exchange);

struct parsed_exchange {
  std::optional<recorded_exchange> exchange;
  std::string error; // why the text is not a recorded exchange

  bool ok() const { return exchange.has_value(); }
};

parsed_exchange parse_exchange(std::string_view text);

// The response that replays an exchange: the recorded frames one HTTP chunk each, at once or,
// with `preserve_timing`, each after the gap it had when recorded.
response_plan plan_replay(const recorded_exchange& exchange, bool preserve_timing);

// The 404 of a request that was never recorded, in the API's error shape, naming its key.
response_plan plan_missing_recording(api_family family, std::string_view method,
                                     std::string_view target, std::string_view key,
                                     std::string_view directory);

} // namespace offload::fakellm
