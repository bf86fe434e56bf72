#pragma once
// The checks the Streamable HTTP transport makes on a request before anything reaches a session:
// Host and Origin (DNS rebinding), Accept and Content-Type, bearer tokens, session id syntax;
// plus session id generation and the JSON-RPC error bodies of refused requests. Pure functions
// (the token table hashes with OpenSSL; ids come from its CSPRNG), unit-tested with plain strings.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload::http_checks {

// JSON-RPC error codes of refusals made by the transport itself (the SDKs use the same ones).
inline constexpr int transport_error = -32000;
inline constexpr int session_not_found = -32001;

// "host[:port]" split into a lower-case host ("[::1]" keeps its brackets) and a port ("" when
// absent); nullopt when malformed (empty host, bad port, stray brackets or spaces).
struct authority {
  std::string host;
  std::string port;
};
std::optional<authority> parse_authority(std::string_view text);

// localhost, 127.0.0.1 or [::1], with any port.
bool is_loopback_authority(std::string_view text);

// A Host header we serve: a loopback name, or an entry of `allowed` ("name" matches any port,
// "name:port" only that port; case-insensitive). A missing or malformed Host is refused.
bool host_allowed(std::string_view host, const std::vector<std::string>& allowed);

// An Origin header we serve: http(s) on a loopback name with any port, or exactly an entry of
// `allowed` ("https://app.example.com", "http://10.0.0.5:3000"; case-insensitive, a trailing
// slash ignored). "null" and anything unparsable are refused. Only call it when Origin is present.
bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed);

// Whether an Accept header admits `media_type` ("application/json"): listed by name or by a
// wildcard (*/*, application/*), and not with q=0.
bool accepts(std::string_view accept, std::string_view media_type);

// Whether a Content-Type is application/json (parameters such as charset are allowed).
bool is_json(std::string_view content_type);

// The token of "Authorization: Bearer <token>" (scheme case-insensitive); nullopt otherwise.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// What we accept as an Mcp-Session-Id before looking it up: 1..128 visible ASCII characters.
bool plausible_session_id(std::string_view id);

// A new session id: 128 bits from OpenSSL's CSPRNG as 32 lower-case hex digits (visible ASCII,
// as the spec requires). Throws std::runtime_error if the CSPRNG fails.
std::string new_session_id();
// The id spelled from given random bytes (what new_session_id does with the CSPRNG's output).
std::string session_id_from(const std::array<uint8_t, 16>& random);

// The name a session goes by in logs, audit records and session-scoped policy counters:
// "http-" and 64 bits of the id's SHA-256. Unique for practical purposes (also across restarts,
// where counters persist), and it gives nothing of the id away, which works like a password.
std::string session_name(std::string_view id);

// A JSON-RPC error response without an id, for a refused HTTP request.
std::string error_body(int code, std::string_view message);

// Bearer tokens and the agent each one stands for. Only SHA-256 digests are kept, and a lookup
// compares against every entry in constant time, so neither timing nor a memory dump gives a
// token away.
class token_table {
public:
  // Throws std::invalid_argument for an empty token or agent, or a token given twice (the
  // message never contains the token).
  void add(std::string_view token, std::string agent);
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // The agent of `token`, or nullopt.
  std::optional<std::string> agent_for(std::string_view token) const;

private:
  struct entry {
    std::array<uint8_t, 32> digest;
    std::string agent;
  };
  std::vector<entry> entries_;
};

} // namespace offload::http_checks
