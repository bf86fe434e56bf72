#include "protocol/fakellm_response.hpp"

#include "protocol/fakellm_ollama.hpp"
#include "protocol/fakellm_openai.hpp"

#include <algorithm>
#include <cassert>
#include <fmt/format.h>
#include <utility>

namespace offload::fakellm {

namespace {

using namespace std::chrono_literals;

ollama_shape shape_of(dialect d) {
  return d == dialect::ollama_generate ? ollama_shape::generate : ollama_shape::chat;
}

// Whether the stream stops after some of the content chunks.
bool breaks_stream(response_kind kind) {
  return kind == response_kind::drop || kind == response_kind::midstream_error ||
         kind == response_kind::truncate;
}

// How many content chunks go out before a drop, truncation or midstream error breaks the stream.
size_t chunks_before_break(const action& a, size_t pieces) {
  return std::min(a.chunks_before_break.value_or((pieces + 1) / 2), pieces);
}

// Hands out the delay of each next frame: the first-token delay first, the token delay after.
struct frame_delays {
  const action& a;
  bool first = true;

  std::chrono::milliseconds next() {
    return std::exchange(first, false) ? a.first_token_delay : a.token_delay;
  }
};

response_plan unstreamed(dialect d, const chat_request& request, const action& a,
                         const generation_context& context, std::string_view reply,
                         const usage& counts) {
  auto family = family_of(d);
  if (a.response == response_kind::midstream_error)
    // A server that fails while building a whole body can only say so with a status.
    return plan_error(family, error_for(a, request, family));
  std::string body;
  if (a.response == response_kind::malformed) {
    body = family == api_family::openai ? std::string{malformed_completion_body}
                                        : std::string{malformed_line};
  } else if (family == api_family::openai) {
    completion_ids ids{fmt::format("chatcmpl-fake-{}", context.sequence), unix_seconds(context.now),
                       request.model};
    body = make_completion_body(ids, reply, counts);
  } else {
    body = make_complete_body(request.model, format_created_at(context.now), reply, counts,
                              shape_of(d));
  }
  auto plan = plan_body(200, json_content_type, std::move(body));
  if (a.response == response_kind::drop) {
    // The header promises the whole body; half of it arrives.
    plan.body.resize(plan.body.size() / 2);
    plan.frames.back().end = plan.body.size();
    plan.cut = true;
  } else if (a.response == response_kind::truncate) {
    // A complete HTTP message whose JSON stops halfway.
    plan.body.resize(plan.body.size() / 2);
    plan.frames.back().end = plan.body.size();
    plan.content_length = plan.body.size();
  }
  return plan;
}

response_plan streamed_ollama(dialect d, const chat_request& request, const action& a,
                              const generation_context& context,
                              const std::vector<std::string_view>& pieces, const usage& counts) {
  response_plan plan;
  plan.streamed = true;
  plan.content_type = ndjson_content_type;
  plan.body.reserve(pieces.size() * 160 + 512);
  auto created_at = format_created_at(context.now);
  auto shape = shape_of(d);
  frame_delays delays{a};
  if (a.response == response_kind::malformed) {
    plan.body.append(malformed_line);
    plan.end_frame(delays.next());
  }
  auto sent = breaks_stream(a.response) ? chunks_before_break(a, pieces.size()) : pieces.size();
  for (size_t i = 0; i < sent; ++i) {
    append_content_line(plan.body, request.model, created_at, pieces[i], shape);
    plan.end_frame(delays.next());
  }
  if (a.response == response_kind::drop) {
    plan.cut = true;
  } else if (a.response == response_kind::truncate) {
    // The body ends cleanly where the final line should have come.
  } else if (a.response == response_kind::midstream_error) {
    append_error_line(plan.body, error_for(a, request, api_family::ollama).message);
    plan.end_frame(delays.next());
  } else {
    append_final_line(plan.body, request.model, created_at, counts, shape);
    plan.end_frame(delays.next());
  }
  return plan;
}

response_plan streamed_openai(const chat_request& request, const action& a,
                              const generation_context& context,
                              const std::vector<std::string_view>& pieces, const usage& counts) {
  response_plan plan;
  plan.streamed = true;
  plan.content_type = sse_content_type;
  plan.body.reserve(pieces.size() * 220 + 768);
  completion_ids ids{fmt::format("chatcmpl-fake-{}", context.sequence), unix_seconds(context.now),
                     request.model};
  auto usage_null = request.include_usage;
  frame_delays delays{a};
  if (a.response == response_kind::malformed) {
    plan.body.append(malformed_event);
    plan.end_frame(delays.next());
  }
  // The role travels with the first text, as a server sends it once the first token exists.
  append_role_chunk(plan.body, ids, usage_null);
  auto sent = breaks_stream(a.response) ? chunks_before_break(a, pieces.size()) : pieces.size();
  for (size_t i = 0; i < sent; ++i) {
    append_content_chunk(plan.body, ids, pieces[i], usage_null);
    plan.end_frame(delays.next());
  }
  if (a.response == response_kind::drop || a.response == response_kind::truncate) {
    if (sent == 0)
      plan.end_frame(delays.next()); // the role chunk alone
    plan.cut = a.response == response_kind::drop;
    return plan;
  }
  if (a.response == response_kind::midstream_error) {
    append_error_event(plan.body,
                       error_body(api_family::openai, error_for(a, request, api_family::openai)));
    plan.end_frame(delays.next());
    return plan;
  }
  append_finish_chunk(plan.body, ids, "stop", usage_null);
  if (request.include_usage)
    append_usage_chunk(plan.body, ids, counts);
  plan.body.append(done_event);
  plan.end_frame(delays.next());
  return plan;
}

} // namespace

api_family family_of(dialect d) {
  return d == dialect::openai_chat ? api_family::openai : api_family::ollama;
}

std::string_view response_plan::frame_bytes(size_t index) const {
  auto start = index == 0 ? size_t{0} : frames[index - 1].end;
  return std::string_view{body}.substr(start, frames[index].end - start);
}

void response_plan::end_frame(std::chrono::milliseconds delay) {
  frames.push_back({body.size(), delay});
}

response_plan plan_body(uint16_t status, std::string_view content_type, std::string body) {
  response_plan plan;
  plan.status = status;
  plan.content_type = content_type;
  plan.body = std::move(body);
  plan.content_length = plan.body.size();
  plan.end_frame();
  return plan;
}

error_reply make_error_reply(error_kind kind, std::string message) {
  return {kind, default_status(kind), std::move(message), std::nullopt, std::nullopt, std::nullopt};
}

error_reply error_for(const action& a, const chat_request& request, api_family family) {
  error_reply reply;
  reply.kind = a.error;
  reply.status = a.response == response_kind::error ? a.status : default_status(a.error);
  reply.retry_after = a.retry_after;
  switch (a.error) {
  case error_kind::model_not_found:
    reply.message = model_not_found_message(request.model);
    break;
  case error_kind::busy:
    reply.message = std::string{server_busy_message};
    break;
  case error_kind::loading:
    reply.message = std::string{loading_message};
    break;
  case error_kind::context_too_long: {
    // Whatever the prompt's real size, the injected error claims one past the window, so that
    // the numbers a client reads agree with the message.
    auto prompt_tokens =
        std::max<uint64_t>(count_prompt_words(request.messages), fake_context_size + 1);
    if (family == api_family::openai) {
      reply.message = fmt::format("request ({} tokens) exceeds the available context size ({} "
                                  "tokens), try increasing it",
                                  prompt_tokens, fake_context_size);
      reply.n_prompt_tokens = prompt_tokens;
      reply.n_ctx = fake_context_size;
    } else {
      reply.message = std::string{context_too_long_message};
    }
    break;
  }
  case error_kind::rate_limited:
    reply.message = injected_fault_message(to_string(fault::http429));
    break;
  default:
    if (a.response == response_kind::midstream_error)
      reply.message = injected_fault_message(to_string(fault::midstream_error));
    else if (reply.status == 500)
      reply.message = injected_fault_message(to_string(fault::http500));
    else
      reply.message = injected_fault_message(fmt::format("http{}", reply.status));
    break;
  }
  if (a.message)
    reply.message = *a.message;
  return reply;
}

std::string error_body(api_family family, const error_reply& error) {
  if (family == api_family::ollama)
    return make_error_body(error.message);
  return make_openai_error_body({error.status, openai_error_type(error.kind), error.message,
                                 error.n_prompt_tokens, error.n_ctx});
}

response_plan plan_error(api_family family, const error_reply& error) {
  auto plan = plan_body(error.status, json_content_type, error_body(family, error));
  plan.retry_after = error.retry_after;
  return plan;
}

response_plan plan_generation(dialect d, const chat_request& request, const action& a,
                              const generation_context& context) {
  assert(a.response != response_kind::hang && "a hang sends nothing; there is nothing to plan");
  if (a.response == response_kind::error)
    return plan_error(family_of(d), error_for(a, request, family_of(d)));
  auto reply = reply_to(request);
  auto counts = make_usage(count_prompt_words(request.messages), count_words(reply), a.latency);
  if (!request.stream)
    return unstreamed(d, request, a, context, reply, counts);
  auto pieces = split_pieces(reply);
  if (d == dialect::openai_chat)
    return streamed_openai(request, a, context, pieces, counts);
  return streamed_ollama(d, request, a, context, pieces, counts);
}

std::chrono::milliseconds wait_before_response(const action& a, const chat_request& request) {
  auto wait = a.latency;
  if (!request.stream && carries_answer(a.response)) {
    auto pieces = static_cast<int64_t>(split_pieces(reply_to(request)).size());
    wait += a.first_token_delay + pieces * a.token_delay;
  }
  return wait;
}

response_plan plan_preload(dialect d, const chat_request& request,
                           std::chrono::system_clock::time_point now) {
  bool unload = request.keep_alive && request.keep_alive->count() == 0;
  return plan_body(200, json_content_type,
                   make_load_body(request.model, format_created_at(now), unload, shape_of(d)));
}

response_plan plan_pull(const pull_request& request, bool available) {
  if (!is_valid_model_name(request.model))
    return plan_error(
        api_family::ollama,
        make_error_reply(error_kind::bad_request, std::string{invalid_model_name_message}));
  if (!request.stream) {
    if (available)
      return plan_body(200, json_content_type, std::string{pull_success_body});
    return plan_error(api_family::ollama,
                      make_error_reply(error_kind::internal, std::string{pull_not_found_message}));
  }
  response_plan plan;
  plan.streamed = true;
  plan.content_type = ndjson_content_type;
  if (available) {
    // A download takes time: spaced lines let clients see progress arrive before the answer.
    bool first = true;
    for (const auto& line : make_pull_lines(request.model)) {
      plan.body.append(line);
      plan.end_frame(first ? std::chrono::milliseconds{0} : pull_line_interval);
      first = false;
    }
    return plan;
  }
  plan.body.append(pull_manifest_line);
  plan.end_frame();
  append_error_line(plan.body, pull_not_found_message);
  plan.end_frame();
  return plan;
}

} // namespace offload::fakellm
