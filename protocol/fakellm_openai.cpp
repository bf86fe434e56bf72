#include "protocol/fakellm_openai.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace offload::fakellm {

// Ordered, so that fields come in the order the real server writes them.
using json = nlohmann::ordered_json;

namespace {

void append_chunk_head(std::string& out, const completion_ids& ids) {
  out.append("data: {\"id\":");
  append_json_string(out, ids.id);
  fmt::format_to(std::back_inserter(out), ",\"object\":\"chat.completion.chunk\",\"created\":{}",
                 ids.created);
  out.append(",\"model\":");
  append_json_string(out, ids.model);
}

// Closes a chunk that has one choice whose delta is already written up to its last field.
void append_choice_tail(std::string& out, std::string_view finish_reason, bool usage_null) {
  out.append("},\"logprobs\":null,\"finish_reason\":");
  if (finish_reason.empty())
    out.append("null");
  else
    append_json_string(out, finish_reason);
  out.append("}]");
  if (usage_null)
    out.append(",\"usage\":null");
  out.append("}\n\n");
}

void append_usage_fields(std::string& out, const usage& counts) {
  fmt::format_to(std::back_inserter(out),
                 "\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{}}},"
                 "\"timings\":{{\"prompt_n\":{},\"prompt_ms\":{:.3f},\"predicted_n\":{},"
                 "\"predicted_ms\":{:.3f}}}",
                 counts.prompt_tokens, counts.reply_tokens,
                 counts.prompt_tokens + counts.reply_tokens, counts.prompt_tokens,
                 static_cast<double>(counts.prompt_eval.count()) / 1e6, counts.reply_tokens,
                 static_cast<double>(counts.eval.count()) / 1e6);
}

} // namespace

void append_role_chunk(std::string& out, const completion_ids& ids, bool usage_null) {
  append_chunk_head(out, ids);
  out.append(",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"");
  append_choice_tail(out, {}, usage_null);
}

void append_content_chunk(std::string& out, const completion_ids& ids, std::string_view piece,
                          bool usage_null) {
  append_chunk_head(out, ids);
  out.append(",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
  append_json_string(out, piece);
  append_choice_tail(out, {}, usage_null);
}

void append_finish_chunk(std::string& out, const completion_ids& ids,
                         std::string_view finish_reason, bool usage_null) {
  append_chunk_head(out, ids);
  out.append(",\"choices\":[{\"index\":0,\"delta\":{");
  append_choice_tail(out, finish_reason, usage_null);
}

void append_usage_chunk(std::string& out, const completion_ids& ids, const usage& counts) {
  append_chunk_head(out, ids);
  out.append(",\"choices\":[],");
  append_usage_fields(out, counts);
  out.append("}\n\n");
}

void append_error_event(std::string& out, std::string_view error_body) {
  out.append("data: ");
  out.append(error_body);
  out.append("\n\n");
}

std::string make_completion_body(const completion_ids& ids, std::string_view reply,
                                 const usage& counts) {
  std::string out;
  out.reserve(reply.size() + 400);
  out.append("{\"id\":");
  append_json_string(out, ids.id);
  fmt::format_to(std::back_inserter(out), ",\"object\":\"chat.completion\",\"created\":{}",
                 ids.created);
  out.append(",\"model\":");
  append_json_string(out, ids.model);
  out.append(",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
  append_json_string(out, reply);
  out.append("},\"logprobs\":null,\"finish_reason\":\"stop\"}],");
  append_usage_fields(out, counts);
  out.push_back('}');
  return out;
}

std::string make_models_body(const std::vector<std::string>& models) {
  json data = json::array();
  for (const auto& name : models)
    data.push_back({{"id", name},
                    {"object", "model"},
                    {"created", 1704067200}, // 2024-01-01, like /api/tags' modified_at
                    {"owned_by", "offload-fakellm"}});
  return json{{"object", "list"}, {"data", std::move(data)}}.dump(-1, ' ', false,
                                                                  json::error_handler_t::replace);
}

std::string_view openai_error_type(error_kind kind) {
  switch (kind) {
  case error_kind::bad_request:
  case error_kind::method_not_allowed:
  case error_kind::too_large:
    return "invalid_request_error";
  case error_kind::path_not_found:
  case error_kind::model_not_found:
    return "not_found_error";
  case error_kind::internal:
    return "server_error";
  case error_kind::busy:
  case error_kind::loading:
    return "unavailable_error";
  case error_kind::rate_limited:
    // llama.cpp never answers 429; this is the type OpenAI-style gateways use for it.
    return "rate_limit_error";
  case error_kind::context_too_long:
    return "exceed_context_size_error";
  }
  return "server_error";
}

std::string make_openai_error_body(const openai_error& error) {
  json inner = {{"code", error.code}, {"message", error.message}, {"type", error.type}};
  if (error.n_prompt_tokens)
    inner["n_prompt_tokens"] = *error.n_prompt_tokens;
  if (error.n_ctx)
    inner["n_ctx"] = *error.n_ctx;
  return json{{"error", std::move(inner)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace offload::fakellm
