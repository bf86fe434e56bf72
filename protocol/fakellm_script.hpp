#pragma once
// The rules of `offload fakellm`, the fake Ollama server that tests and demos talk to: which
// markers a prompt may carry, what the fake model answers, and the exact bytes of each response.
// Pure code, so every rule is unit-tested without sockets; runtime/fakellm.cpp does the I/O.
//
// The fake deliberately does not reuse protocol/ollama.hpp: a test double that shared the
// client's encoder and parser would agree with the client's bugs instead of exposing them.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <vector>

namespace offload::fakellm {

// -- scripts -------------------------------------------------------------------------------------

// A failure a test injects with a `[[fault=NAME]]` marker in the last user message.
enum class fault : uint8_t {
  none,
  http500,   // 500 with an Ollama-style error body
  drop,      // 200 stream cut off halfway: no final line, no chunked terminator
  hang,      // no response at all until the client gives up
  malformed, // 200 stream whose first line is not JSON
  notfound,  // 404 "model not found" for the requested model
};

inline constexpr std::array<fault, 5> injectable_faults = {fault::http500, fault::drop, fault::hang,
                                                           fault::malformed, fault::notfound};

// The marker name of a fault, e.g. "http500"; "none" for fault::none.
std::string_view to_string(fault f);

// What the markers in a message ask the server to do.
struct script {
  std::chrono::milliseconds latency{0}; // wait before the response starts, holding a slot
  fault injected = fault::none;

  friend bool operator==(const script&, const script&) = default;
};

// Latencies above this are treated as malformed markers: nobody means to wait longer, and the
// cap keeps the millisecond count far from overflowing a timer.
inline constexpr std::chrono::milliseconds max_latency{24 * 60 * 60 * 1000};

// Reads every `[[latency=MS]]` and `[[fault=NAME]]` marker in `text`. Markers that do not parse
// (a non-numeric latency, an unknown fault name, a missing `]]`) are plain text, so a typo in a
// test shows up as an ordinary answer rather than as a different fault. When a kind of marker
// repeats, the last valid one wins, like a repeated command-line flag.
script parse_script(std::string_view text);

// -- requests ------------------------------------------------------------------------------------

struct message {
  std::string role;
  std::string content;
};

// Body of POST /api/chat, reduced to what the fake needs.
struct chat_request {
  std::string model;
  std::vector<message> messages;
  bool stream = true; // Ollama streams unless told otherwise
};

struct parsed_chat_request {
  chat_request request;
  std::string error; // why the body was rejected (a 400); empty on success

  bool ok() const { return error.empty(); }
};

// Validates and reads a /api/chat body. Fields the fake does not use (options, tools, ...) are
// ignored; a message without `content` (e.g. an assistant tool call) counts as empty text.
parsed_chat_request parse_chat_request(std::string_view body);

// Whether `requested` names one of `served`, with Ollama's rule that a name without a tag means
// ":latest".
bool serves_model(const std::vector<std::string>& served, std::string_view requested);

// The fake model's answer: the last user message verbatim (markers included), so every result
// shows which task it answers. Empty when there is no user message.
std::string_view reply_to(const chat_request& request);

// -- tokens --------------------------------------------------------------------------------------

// Number of whitespace-separated words: the fake's notion of a token.
size_t count_words(std::string_view text);

// Prompt tokens of a request: the words of all messages, whatever their role.
size_t count_prompt_words(const std::vector<message>& messages);

// Splits a reply into stream pieces of one word plus the whitespace after it (leading whitespace
// joins the first piece), so concatenating the pieces gives back the reply exactly. An empty
// reply has no pieces.
std::vector<std::string_view> split_pieces(std::string_view reply);

// -- responses -----------------------------------------------------------------------------------

// Token counts and durations of the final `done: true` object. Durations are invented but
// plausible: the scripted latency counts as model load time.
struct usage {
  uint64_t prompt_tokens = 0;
  uint64_t reply_tokens = 0;
  std::chrono::nanoseconds total{0};
  std::chrono::nanoseconds load{0};
  std::chrono::nanoseconds prompt_eval{0};
  std::chrono::nanoseconds eval{0};
};

usage make_usage(size_t prompt_words, size_t reply_words, std::chrono::nanoseconds load);

// Ollama's `created_at`: UTC with nanoseconds, e.g. "2024-05-01T12:34:56.123456789Z".
std::string format_created_at(std::chrono::system_clock::time_point t);

// Appends one streamed NDJSON line (`done: false`) carrying `piece`, newline included.
void append_content_line(std::string& out, std::string_view model, std::string_view created_at,
                         std::string_view piece);

// Appends the last NDJSON line of a stream (`done: true`, empty content), newline included.
void append_final_line(std::string& out, std::string_view model, std::string_view created_at,
                       const usage& counts);

// The whole answer of a `stream: false` request: the final object with the full reply.
std::string make_complete_body(std::string_view model, std::string_view created_at,
                               std::string_view reply, const usage& counts);

// First line of a `[[fault=malformed]]` stream: an object that never closes.
inline constexpr std::string_view malformed_line =
    "{\"model\": \"x\", \"message\": {\"content\": \"oops\"\n";

// Ollama's error body, {"error": message}.
std::string make_error_body(std::string_view message);

// Ollama's text for a model it does not have.
std::string model_not_found_message(std::string_view model);

// Error text of an injected fault that answers with an error status.
std::string injected_fault_message(fault f);

// Body of GET /api/tags listing `models` with plausible, deterministic metadata.
std::string make_tags_body(const std::vector<std::string>& models);

// Body of GET /api/version.
std::string make_version_body();

// Counters behind GET /_fake/stats.
struct stats {
  uint64_t requests = 0;     // POST /api/chat requests received, valid or not
  size_t in_flight = 0;      // generations holding a slot now
  size_t max_concurrent = 0; // highest in_flight since start or the last reset
  size_t waiting = 0;        // requests queued for a slot now
  std::array<uint64_t, injectable_faults.size() + 1> faults{}; // injected, indexed by fault
};

std::string make_stats_body(const stats& counters);

// -- slots ---------------------------------------------------------------------------------------

// At most `capacity` generations hold a slot at once (0 = no limit); the rest wait first come,
// first served. Not thread-safe: the server runs it on its one I/O thread.
class slot_pool {
public:
  using waiter_list = std::list<std::function<void()>>;
  using ticket = waiter_list::iterator;

  explicit slot_pool(size_t capacity)
      : capacity_(capacity) {}

  // Takes a slot if one is free and nobody is queued ahead.
  bool try_acquire();

  // Queues a request; `on_granted` runs once a slot has been taken on its behalf.
  ticket enqueue(std::function<void()> on_granted);

  // Leaves the queue (the client went away); the ticket is invalid afterwards.
  void cancel(ticket t) { waiters_.erase(t); }

  // Returns a slot, handing it straight to the first waiter so a newcomer cannot overtake.
  void release();

  // Empties the queue (destroying the callbacks) and stops granting slots, for shutdown.
  void close();

  size_t in_use() const { return in_use_; }
  size_t waiting() const { return waiters_.size(); }
  size_t max_in_use() const { return max_in_use_; }
  void reset_max() { max_in_use_ = in_use_; }

private:
  void take();

  size_t capacity_;
  size_t in_use_ = 0;
  size_t max_in_use_ = 0;
  waiter_list waiters_;
  bool closed_ = false;
};

// -- routing -------------------------------------------------------------------------------------

enum class endpoint : uint8_t {
  root,        // GET /: Ollama's liveness answer, which some clients probe
  chat,        // POST /api/chat
  tags,        // GET /api/tags
  version,     // GET /api/version
  stats,       // GET /_fake/stats
  reset_stats, // POST /_fake/reset_stats
  not_found,
};

struct route {
  endpoint target = endpoint::not_found;
  bool method_allowed = false;
  std::string_view allowed_method; // for the Allow header of a 405
};

// Maps a request line to an endpoint; the query string is ignored.
route route_request(std::string_view method, std::string_view target);

} // namespace offload::fakellm
