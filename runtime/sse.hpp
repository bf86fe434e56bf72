#pragma once
// Server-Sent Events for the Streamable HTTP transport: event framing, event ids, and the
// per-session event log that lets a client resume a broken stream with Last-Event-ID.
//
// Streams: 0 is the session's standalone stream (GET /mcp); every POST answered with SSE opens
// a new one (1, 2, ...). An event id is "<stream>:<seq>", unique within the session, so that a
// Last-Event-ID names the stream to resume and the place in it. Pure code, no I/O.

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace offload::sse {

inline constexpr uint64_t standalone_stream = 0;

struct event_id {
  uint64_t stream = 0;
  uint64_t seq = 0;
  friend bool operator==(const event_id&, const event_id&) = default;
};

std::string format_id(event_id id);
// Parses "<stream>:<seq>" (decimal); nullopt for anything else.
std::optional<event_id> parse_id(std::string_view text);

// One event carrying `data` (one JSON-RPC message). A line break in `data` starts another data
// line, so the client reassembles the text exactly.
std::string frame(event_id id, std::string_view data);

// The event that opens a stream: an id and empty data, so that the client can resume from here
// even before the first message; with `retry`, how long the client waits before reconnecting.
std::string priming_frame(event_id id, std::optional<std::chrono::milliseconds> retry);

// The events a session sent on its SSE streams, kept for replay. Bounded by event count and by
// bytes; the oldest events go first. A stream is forgotten once it has finished and none of its
// events are left.
class event_log {
public:
  event_log(size_t max_events, size_t max_bytes);

  // A new stream (1, 2, ...). The standalone stream 0 always exists.
  uint64_t open_stream();
  // The next id of `stream`, for an event that is not kept (a priming event).
  event_id next_id(uint64_t stream);
  // Keeps a message of `stream` and returns its id.
  event_id append(uint64_t stream, std::string data);
  // `stream` gets no more events (its request was answered).
  void finish(uint64_t stream);
  bool finished(uint64_t stream) const;

  enum class replay_status {
    ok,
    unknown, // no such stream or event was ever issued in this session
    lost,    // events after `last` were dropped from the log: a replay would have a gap
  };
  struct replay {
    replay_status status = replay_status::unknown;
    std::vector<std::pair<event_id, std::string>> events; // in order
    bool finished = false; // the stream is complete: nothing follows these events
  };
  // The events of `last.stream` after `last`.
  replay events_after(event_id last) const;

  size_t size() const { return events_.size(); }
  size_t bytes() const { return bytes_; }

private:
  struct stored {
    event_id id;
    std::string data;
  };
  struct stream_state {
    uint64_t next_seq = 0;
    size_t kept = 0;                         // events of this stream still in the log
    std::optional<uint64_t> dropped_through; // highest seq dropped from the log
    bool finished = false;
  };
  void evict_oldest();
  void forget_if_done(uint64_t stream);

  size_t max_events_;
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::deque<stored> events_;
  std::unordered_map<uint64_t, stream_state> streams_;
  uint64_t next_stream_ = 1;
};

} // namespace offload::sse
