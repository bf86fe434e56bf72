#pragma once
// The rules of `offload fakellm`, the fake Ollama / OpenAI-compatible server that tests and demos
// talk to: which markers a prompt may carry and what the server does about them. Pure code, so
// every rule is unit-tested without sockets; runtime/fakellm_*.cpp does the I/O.
//
// Markers turn into a `script` (what the prompt asks for), and a script plus the number of the
// attempt turns into an `action` (what the server does with this one request). The action is the
// server's only input about faults, so fault plans (rules with a match and an action,
// protocol/fakellm_plan.hpp) produce actions too, without a second code path.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace offload::fakellm {

// -- markers -------------------------------------------------------------------------------------

// A failure or slowdown a test injects with a `[[fault=...]]` marker in the last user message.
enum class fault : uint8_t {
  none,
  http500,          // 500 with an error body in the API's shape
  drop,             // 200 stream cut off halfway: no end of stream, no chunked terminator
  hang,             // no response at all until the client gives up
  malformed,        // 200 stream whose first line or event is not JSON
  notfound,         // 404 "model not found" for the requested model
  http503,          // 503 "server busy"
  http429,          // 429 with a Retry-After header
  slow_first_token, // the header at once, the first chunk only after a delay
  slow_tokens,      // a delay before every chunk after the first
  midstream_error,  // 200 stream: some chunks, then an error line or event
  context_too_long, // 400: the prompt exceeds the context window
};

inline constexpr std::array<fault, 11> injectable_faults = {fault::http500,
                                                            fault::drop,
                                                            fault::hang,
                                                            fault::malformed,
                                                            fault::notfound,
                                                            fault::http503,
                                                            fault::http429,
                                                            fault::slow_first_token,
                                                            fault::slow_tokens,
                                                            fault::midstream_error,
                                                            fault::context_too_long};

// The marker name of a fault, e.g. "http500"; "none" for fault::none.
std::string_view to_string(fault f);

// Delays combine with any other fault; every other fault decides the shape of the response.
bool is_delay(fault f);

// One valid `[[fault=...]]` marker.
struct fault_spec {
  fault kind = fault::none;
  std::chrono::milliseconds delay{0};              // slow_first_token, slow_tokens
  std::optional<std::chrono::seconds> retry_after; // http429, http503
  uint32_t times = 0;                              // only the first `times` attempts; 0 = all

  friend bool operator==(const fault_spec&, const fault_spec&) = default;
};

// What the markers in a message ask for.
struct script {
  std::chrono::milliseconds latency{0}; // wait before the response starts, holding a slot
  std::vector<fault_spec> faults;       // in the order of the text

  // Whether some fault depends on the attempt number, which the server then has to count.
  bool counts_attempts() const;

  friend bool operator==(const script&, const script&) = default;
};

// Latencies and delays above this are treated as malformed markers: nobody means to wait longer,
// and the cap keeps the millisecond count far from overflowing a timer.
inline constexpr std::chrono::milliseconds max_latency{24 * 60 * 60 * 1000};
inline constexpr std::chrono::seconds max_retry_after{24 * 60 * 60};
inline constexpr uint32_t max_times = 1'000'000;
// What a 429 says when the marker does not: retry in a second, quick enough for tests.
inline constexpr std::chrono::seconds default_retry_after{1};

// Reads every `[[latency=MS]]` and `[[fault=NAME]]` marker in `text`. A fault marker may carry a
// value (`[[fault=slow_tokens=50]]`) and parameters after colons (`[[fault=http503:times=2]]`,
// `[[fault=http429:retry_after=2:times=1]]`). Markers that do not parse (a non-numeric latency,
// an unknown fault or parameter, a missing `]]`) are plain text, so a typo in a test shows up as
// an ordinary answer rather than as a different fault. A repeated latency marker: the last valid
// one wins, like a repeated command-line flag; fault markers are all kept (see resolve_action).
script parse_script(std::string_view text);

// -- actions -------------------------------------------------------------------------------------

// What an error response is about; each API words and shapes it its own way.
enum class error_kind : uint8_t {
  bad_request,        // 400: the body is not a valid request
  path_not_found,     // 404: no such endpoint
  method_not_allowed, // 405
  too_large,          // 413: the body exceeds the fake's limit
  model_not_found,    // 404: the model is not served
  internal,           // 500
  busy,               // 503: all slots busy and the queue full
  loading,            // 503: still in the loading phase
  rate_limited,       // 429
  context_too_long,   // 400: the prompt exceeds the context window
};

// The HTTP status each kind has unless an action says otherwise.
uint16_t default_status(error_kind kind);

// The shape of the response to one request.
enum class response_kind : uint8_t {
  answer,          // the echo, streamed or not
  error,           // an error status with a body in the API's shape
  hang,            // nothing, until the client leaves
  drop,            // part of the answer, then the connection closes
  malformed,       // a first line or event that is not JSON, then the answer
  midstream_error, // part of the answer, then an error line or event (status 200)
  truncate,        // part of the answer, then a clean end of the body without the final chunk
};

// What the server does with one attempt: the action half of a fault rule.
struct action {
  std::chrono::milliseconds latency{0}; // before the response starts, holding a slot
  response_kind response = response_kind::answer;
  error_kind error = error_kind::internal;         // of `error` and `midstream_error` responses
  uint16_t status = 200;                           // of an `error` response
  std::optional<std::chrono::seconds> retry_after; // Retry-After header of an `error` response
  std::chrono::milliseconds first_token_delay{0};  // streams: header at once, first chunk later
  std::chrono::milliseconds token_delay{0};        // streams: before every later chunk
  // `drop`, `truncate` and `midstream_error`: content chunks sent before the break; unset = half
  // the reply.
  std::optional<size_t> chunks_before_break;
  // Replaces the usual wording of an `error` or `midstream_error` (fault plans may set it).
  std::optional<std::string> message;
  std::vector<fault> applied; // the faults in force, for /_fake/stats

  friend bool operator==(const action&, const action&) = default;
};

// The action for attempt `attempt` (1 = the first) of a prompt whose markers gave `s`. Faults
// whose `times` is used up do not apply. Delays apply to answers and partial answers; of the
// other faults, the last one that applies decides the response.
action resolve_action(const script& s, uint64_t attempt);

// Whether a response of this kind sends (part of) the answer, which delays can slow down.
bool carries_answer(response_kind kind);

// The kind's name in /_fake/stats, e.g. "midstream_error".
std::string_view to_string(response_kind kind);

// The status of an `error` response: the action's, as error_for words it.
uint16_t error_status(const action& a);

// -- attempts ------------------------------------------------------------------------------------

// Counts the attempts of each prompt text, so that `times=K` faults hit only the first K tries of
// the same prompt and a test can watch a retry succeed. Not thread-safe: the server runs it on
// its one I/O thread.
class attempt_counter {
public:
  // Records one more attempt of `prompt` and returns its number, starting at 1.
  uint64_t record(std::string_view prompt);

  // Forgets every prompt (POST /_fake/reset_stats).
  void clear() { attempts_.clear(); }

  size_t prompts() const { return attempts_.size(); }

private:
  std::unordered_map<std::string, uint64_t> attempts_;
};

} // namespace offload::fakellm
