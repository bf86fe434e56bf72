#pragma once
// One MCP session served over Streamable HTTP: the session actor's handle, the POSTs waiting for
// answers, the SSE streams and their event log. It decides where each message of the actor goes:
//
//   - a response goes to the POST that carried its request: as application/json when nothing
//     else came first, otherwise as the last event of that POST's SSE stream, which then ends;
//   - a notification or request related to a waiting POST turns that POST's answer into an SSE
//     stream (a priming event for 2025-11-25 clients, then the messages);
//   - a message of the session as a whole (no related request) goes to the standalone stream
//     (GET /mcp), as does a message related to a POST that ended before any event was sent;
//   - every SSE event is kept in the event log, so that GET with Last-Event-ID replays what a
//     broken stream missed, on that stream only, and continues it.
// Everything here runs on the io_context thread.

#include "actors/spawn.hpp"
#include "runtime/http_server.hpp"
#include "runtime/metrics.hpp"
#include "runtime/sse.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace offload {

struct http_session_limits {
  std::chrono::milliseconds sse_retry{0};
  size_t event_buffer = 0;
  size_t event_buffer_bytes = 0;
};

class http_session : public std::enable_shared_from_this<http_session> {
public:
  using clock = std::chrono::steady_clock;

  // `on_failed_init` runs when the initialize request got no result (an error, or its client
  // left): the session must then be removed without ever having been usable.
  http_session(std::string id, std::string agent, http_session_limits limits,
               metrics::registry* metrics, std::function<void()> on_failed_init);

  const std::string& id() const { return id_; }
  // The session's name in logs, audit records and policy counters (http_checks::session_name).
  const std::string& log_name() const { return log_name_; }
  const std::string& agent() const { return agent_; }
  const std::string& protocol_version() const { return protocol_version_; }

  mcp_session_actor actor;
  clock::time_point last_active = clock::now();

  // Requests still waiting for their response.
  size_t inflight() const { return waiting_.size(); }
  bool is_waiting(const std::string& request_id) const { return waiting_.count(request_id) > 0; }
  // No request waiting, no stream open, and nothing received for `timeout`.
  bool idle(clock::time_point now, std::chrono::milliseconds timeout) const;

  // A POST carrying requests (their ids as compact JSON texts, e.g. `1` or `"a"`), whose answer
  // `connection` now waits for. `batch`: the answer is a JSON array (protocol 2025-03-26);
  // `errors` are responses already known (invalid batch elements), put first in that array.
  void await_responses(const http_connection_ptr& connection, std::vector<std::string> ids,
                       bool batch, bool initialize, std::vector<std::string> errors = {});

  enum class get_outcome { streaming, conflict, unknown_event, lost_events };
  // GET /mcp: the standalone stream, or with `last` the resumption of the stream it names.
  get_outcome open_get(const http_connection_ptr& connection, std::optional<sse::event_id> last);

  // The client cancelled a request (notifications/cancelled): no response will come. Its slot
  // is free at once; a POST still waiting in JSON mode is answered 202 without a body, an SSE
  // stream stays open (see cancel()).
  void cancel(const std::string& request_id);

  // A message from the session actor (the output sink posts it here).
  void deliver(const std::string& text, const std::string& related);

  // Ends the session: waiting POSTs get `status` with a JSON-RPC error saying `reason`, open
  // streams end. Later messages from the actor are dropped.
  void close(beast_http::status status, const std::string& reason);
  bool closed() const { return closed_; }

private:
  struct exchange {
    http_connection_ptr connection; // null once it was answered or its client left
    std::vector<std::string> awaiting;
    std::vector<std::string> gathered; // batch responses so far (JSON mode)
    std::optional<uint64_t> stream;    // set once the answer became an SSE stream
    bool batch = false;
    bool initialize = false;
  };
  using exchange_ptr = std::shared_ptr<exchange>;

  void reply(const http_connection_ptr& connection, http_response response);
  void reply_json(exchange& ex, std::string body);
  void switch_to_stream(exchange& ex);
  void start_stream(const http_connection_ptr& connection, uint64_t stream, bool initialize);
  void emit(uint64_t stream, const std::string& text);
  void end_stream(uint64_t stream);
  void attach(uint64_t stream, const http_connection_ptr& connection);
  void detach(uint64_t stream, const http_connection*);
  void answered_initialize(const std::string& text, bool delivered);
  bool wants_priming() const { return protocol_version_ >= "2025-11-25"; }

  std::string id_;
  std::string log_name_;
  std::string agent_;
  std::string protocol_version_; // negotiated; empty until initialize was answered
  http_session_limits limits_;
  metrics::registry* metrics_;
  std::function<void()> on_failed_init_;
  sse::event_log log_;
  std::unordered_map<std::string, exchange_ptr> waiting_;      // by request id
  std::unordered_map<uint64_t, http_connection_ptr> attached_; // stream -> its connection
  bool closed_ = false;
};

using http_session_ptr = std::shared_ptr<http_session>;

// A response with a JSON body (a JSON-RPC message, or an array of them).
http_response make_json_response(beast_http::status status, unsigned version, std::string body);

} // namespace offload
