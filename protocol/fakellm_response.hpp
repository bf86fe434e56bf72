#pragma once
// Every response of the fake LLM server as data: status, headers, and the body as frames, each
// with the delay before it goes out. The server only writes plans; what is in them is decided
// here, so the exact wire shape of every API, fault and delay is unit-tested without sockets.

#include "protocol/fakellm_request.hpp"
#include "protocol/fakellm_route.hpp"
#include "protocol/fakellm_script.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload::fakellm {

// What Ollama sends with unstreamed bodies.
inline constexpr std::string_view json_content_type = "application/json; charset=utf-8";
inline constexpr std::string_view ndjson_content_type = "application/x-ndjson";
inline constexpr std::string_view sse_content_type = "text/event-stream";
inline constexpr std::string_view text_content_type = "text/plain; charset=utf-8";

// The kinds of generation request, each with its own response shape.
enum class dialect : uint8_t { ollama_chat, ollama_generate, openai_chat };

api_family family_of(dialect d);

// One piece of a body that goes out on its own: an NDJSON line, an SSE event (or a few that
// belong together), or a whole body.
struct frame {
  size_t end = 0;                     // where the frame's bytes end in response_plan::body
  std::chrono::milliseconds delay{0}; // wait before this frame goes out
};

struct response_plan {
  uint16_t status = 200;
  std::string content_type{json_content_type};     // owned: a replayed one comes from a file
  std::optional<std::chrono::seconds> retry_after; // Retry-After header
  std::string_view allow;                          // Allow header of a 405
  bool streamed = false;     // chunked transfer encoding, one HTTP chunk per frame
  std::string body;          // the frames' bytes, back to back
  std::vector<frame> frames; // in order; together they cover `body`
  // Close the connection after the frames without finishing the body: no chunked terminator,
  // or fewer bytes than Content-Length promised.
  bool cut = false;
  size_t content_length = 0; // unstreamed: what the header promises

  std::string_view frame_bytes(size_t index) const;

  // Makes the bytes appended to `body` since the previous frame a frame of their own.
  void end_frame(std::chrono::milliseconds delay = {});
};

// A whole body in one frame.
response_plan plan_body(uint16_t status, std::string_view content_type, std::string body);

// -- errors --------------------------------------------------------------------------------------

struct error_reply {
  error_kind kind = error_kind::internal;
  uint16_t status = 500;
  std::string message;
  std::optional<std::chrono::seconds> retry_after;
  std::optional<uint64_t> n_prompt_tokens; // context_too_long, on OpenAI
  std::optional<uint64_t> n_ctx;
};

// An error with the kind's usual status.
error_reply make_error_reply(error_kind kind, std::string message);

// The error an action's `error` response (or its midstream error) stands for, worded for
// `request` in the way of the API `family`.
error_reply error_for(const action& a, const chat_request& request, api_family family);

// An error response with the body in the API's shape.
response_plan plan_error(api_family family, const error_reply& error);

// The error body alone, e.g. for the last line of a stream.
std::string error_body(api_family family, const error_reply& error);

// -- generation ----------------------------------------------------------------------------------

// What varies between otherwise identical responses.
struct generation_context {
  std::chrono::system_clock::time_point now;
  uint64_t sequence = 0; // numbers OpenAI completion ids
};

// The response to a generation request under an action; `hang` is the caller's to do (it sends
// nothing), so it must not be planned. Streams put the first-token delay before their first
// frame and the token delay before every later one; the header goes out at once.
response_plan plan_generation(dialect d, const chat_request& request, const action& a,
                              const generation_context& context);

// How long the server waits, holding a slot, before it starts the response: the latency, plus
// for an unstreamed answer the delays its stream would have had (one per piece of the reply).
std::chrono::milliseconds wait_before_response(const action& a, const chat_request& request);

// The answer to an Ollama request with nothing to generate (`request.preload`).
response_plan plan_preload(dialect d, const chat_request& request,
                           std::chrono::system_clock::time_point now);

// -- pulls ---------------------------------------------------------------------------------------

// The answer to POST /api/pull: progress then "success" when `available`; a malformed name is a
// 400; an unavailable model is a "pulling manifest" line and an error line (status 200), or a
// 500 when not streamed.
response_plan plan_pull(const pull_request& request, bool available);

} // namespace offload::fakellm
