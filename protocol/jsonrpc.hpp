#pragma once
// JSON-RPC 2.0 framing: turns one received text into a message or a precise error, and builds the
// texts we send. Pure functions; no I/O.

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <variant>

namespace offload::jsonrpc {

using json = nlohmann::json;

// Standard JSON-RPC error codes.
enum code : int {
  parse_error = -32700,
  invalid_request = -32600,
  method_not_found = -32601,
  invalid_params = -32602,
  internal_error = -32603,
};

enum class kind { request, notification, response };

// A well-formed JSON-RPC message.
struct message {
  kind type = kind::request;
  json id;            // request and response: a string or an integer
  std::string method; // request and notification
  json params;        // request and notification: object, array or null when absent
  json result;        // response: the result or, when `is_error`, the error object
  bool is_error = false;
};

// A text that is not a valid JSON-RPC message. `id` is the request's id when it could be read,
// so the error response can be matched by the client; null otherwise.
struct failure {
  int code = parse_error;
  std::string message;
  json id;
};

// A JSON array: a JSON-RPC batch (only allowed by protocol revision 2025-03-26).
struct batch {
  json items;
};

using parsed = std::variant<message, failure, batch>;

// Parses one complete JSON text.
parsed parse(std::string_view text);

// Classifies one already-parsed JSON value (an element of a batch, or a whole message).
parsed classify(json value);

// Compact serialisations, one line each, without a trailing newline.
std::string make_result(const json& id, const json& result);
std::string make_error(const json& id, int code, std::string_view message,
                       const json& data = json());
std::string make_notification(std::string_view method, const json& params);
std::string make_request(const json& id, std::string_view method, const json& params);

} // namespace offload::jsonrpc
