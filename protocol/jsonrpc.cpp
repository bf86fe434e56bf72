#include "protocol/jsonrpc.hpp"

namespace offload::jsonrpc {

namespace {

bool valid_id(const json& id) {
  return id.is_string() || id.is_number_integer() || id.is_number_unsigned();
}

failure invalid(std::string message, json id = json()) {
  return failure{invalid_request, std::move(message), std::move(id)};
}

} // namespace

parsed parse(std::string_view text) {
  json value;
  try {
    value = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // e.what() names the byte offset, which helps the person writing the client.
    return failure{parse_error, std::string{"Parse error: "} + e.what(), json()};
  }
  if (value.is_array())
    return batch{std::move(value)};
  return classify(std::move(value));
}

parsed classify(json value) {
  if (!value.is_object())
    return invalid("Invalid Request: a JSON-RPC message must be a JSON object");
  json id = value.contains("id") ? value["id"] : json();
  bool has_id = value.contains("id");
  json reply_id = has_id && valid_id(id) ? id : json();
  auto version = value.find("jsonrpc");
  if (version == value.end() || *version != "2.0")
    return invalid("Invalid Request: \"jsonrpc\" must be \"2.0\"", reply_id);
  if (has_id && !valid_id(id))
    return invalid("Invalid Request: \"id\" must be a string or an integer", json());
  auto method = value.find("method");
  if (method != value.end()) {
    if (!method->is_string())
      return invalid("Invalid Request: \"method\" must be a string", reply_id);
    message msg;
    msg.type = has_id ? kind::request : kind::notification;
    msg.id = std::move(id);
    msg.method = method->get<std::string>();
    if (auto params = value.find("params"); params != value.end()) {
      if (!params->is_object() && !params->is_array())
        return invalid("Invalid Request: \"params\" must be an object or an array", reply_id);
      msg.params = std::move(*params);
    }
    return msg;
  }
  // No method: a response to a request we sent.
  if (!has_id)
    return invalid("Invalid Request: a message needs \"method\" or \"id\"");
  auto result = value.find("result");
  auto error = value.find("error");
  if ((result == value.end()) == (error == value.end()))
    return invalid("Invalid Request: a response needs exactly one of \"result\" and \"error\"",
                   reply_id);
  message msg;
  msg.type = kind::response;
  msg.id = std::move(id);
  msg.is_error = error != value.end();
  msg.result = msg.is_error ? std::move(*error) : std::move(*result);
  return msg;
}

std::string make_result(const json& id, const json& result) {
  json out = {{"jsonrpc", "2.0"}, {"id", id}, {"result", result}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string make_error(const json& id, int code, std::string_view message, const json& data) {
  json error = {{"code", code}, {"message", message}};
  if (!data.is_null())
    error["data"] = data;
  json out = {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string make_notification(std::string_view method, const json& params) {
  json out = {{"jsonrpc", "2.0"}, {"method", method}, {"params", params}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string make_request(const json& id, std::string_view method, const json& params) {
  json msg = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null())
    msg["params"] = params;
  return msg.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace offload::jsonrpc
