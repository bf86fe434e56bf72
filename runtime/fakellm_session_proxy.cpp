// Record and replay in a fake LLM session: `--record DIR --upstream URL` relays each request to
// the real server, streaming its answer back while storing it; `--replay DIR` answers from the
// stored exchanges.

#include "runtime/fakellm_session.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace offload::fakellm_detail {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;

bool is_generation(fakellm::endpoint target) {
  return target == fakellm::endpoint::chat || target == fakellm::endpoint::generate ||
         target == fakellm::endpoint::completions;
}

// The part of a canonical request after its request line: the body.
std::string canonical_body(const std::string& canonical) {
  auto newline = canonical.find('\n');
  return newline == std::string::npos ? std::string{} : canonical.substr(newline + 1);
}

} // namespace

void session::handle_proxied(const fakellm::route& route, const http_request& request) {
  if (is_generation(route.target))
    ++server_.counters.requests;
  proxied_family_ = route.family;
  auto canonical = fakellm::canonical_request(request.method_string(), request.target(),
                                              request.body(), server_.options.ignore_fields);
  auto key = fakellm::recording_key(canonical);
  if (server_.library)
    return replay(request, key);
  record(request, key, canonical);
}

void session::replay(const http_request& request, const std::string& key) {
  const auto* exchange = server_.library->next(key);
  if (!exchange) {
    ++server_.proxy.missing;
    server_.log->warn("fakellm: no recording of {} {} (key {})",
                      std::string{request.method_string()}, std::string{request.target()}, key);
    return send_plan(fakellm::plan_missing_recording(proxied_family_, request.method_string(),
                                                     request.target(), key,
                                                     server_.library->directory()));
  }
  ++server_.proxy.exchanges;
  send_plan(fakellm::plan_replay(*exchange, server_.options.replay_timing));
}

void session::record(const http_request& request, const std::string& key,
                     const std::string& canonical) {
  const auto& upstream = *server_.upstream;
  recording_ = {};
  recording_.status = 0; // until the upstream's head arrives
  recording_.key = key;
  recording_.occurrence = server_.recorder->take_occurrence(key);
  recording_.method = std::string{request.method_string()};
  recording_.target = std::string{request.target()};
  recording_.request_body = canonical_body(canonical);

  http_request outgoing{request.method(), upstream.base_path + std::string{request.target()}, 11};
  outgoing.set(http::field::host, upstream.host + ":" + upstream.port);
  outgoing.set(http::field::user_agent, "offload-fakellm-recorder");
  // Only what changes the answer travels; the connection is the recorder's own.
  for (auto field : {http::field::content_type, http::field::accept, http::field::authorization})
    if (auto value = request[field]; !value.empty())
      outgoing.set(field, value);
  outgoing.keep_alive(false);
  outgoing.body() = request.body();
  outgoing.prepare_payload();

  recording_started_ = std::chrono::steady_clock::now();
  auto self = shared_from_this();
  upstream_handlers handlers{
      [self](const upstream_head& head) { self->on_upstream_head(head); },
      [self](std::string_view data) { self->on_upstream_data(data); },
      [self](bool complete, const std::string& error) { self->on_upstream_end(complete, error); }};
  auto call = std::make_shared<upstream_call>(stream_.get_executor(), upstream, std::move(outgoing),
                                              std::move(handlers));
  upstream_ = call;
  phase_ = phase::relaying;
  call->start();
}

void session::on_upstream_head(const upstream_head& head) {
  recording_.status = head.status;
  recording_.content_type = head.content_type;
  recording_.retry_after = head.retry_after;
  recording_.streamed = head.chunked;
  recording_.content_length = head.content_length;
  if (phase_ == phase::closed || !head.chunked)
    return; // a body with a length goes out whole once it is all here
  fakellm::response_plan relayed;
  relayed.status = head.status;
  relayed.content_type = head.content_type;
  relayed.retry_after = head.retry_after;
  relayed.streamed = true;
  relay_open_ = true;
  send_plan(std::move(relayed));
}

void session::on_upstream_data(std::string_view data) {
  auto at = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  recording_started_);
  recording_.frames.push_back({at, std::string{data}});
  if (phase_ == phase::closed || !relay_open_)
    return;
  plan_.body.append(data);
  plan_.end_frame();
  if (phase_ == phase::relaying)
    write_frames(false);
}

void session::on_upstream_end(bool complete, const std::string& error) {
  upstream_.reset();
  bool answered = recording_.status != 0;
  if (answered) {
    recording_.complete = complete;
    if (auto problem = server_.recorder->save(recording_); !problem.empty())
      server_.log->error("fakellm: {}", problem);
    ++server_.proxy.exchanges;
  } else {
    ++server_.proxy.failed;
  }
  if (!complete)
    server_.log->warn("fakellm: upstream {} {}: {}", recording_.method, recording_.target, error);
  if (phase_ == phase::closed)
    return;
  if (!answered) {
    auto reply = fakellm::make_error_reply(
        fakellm::error_kind::internal,
        fmt::format("fakellm record: upstream {}: {}", server_.upstream->display(), error));
    reply.status = 502;
    return send_plan(fakellm::plan_error(proxied_family_, reply));
  }
  if (relay_open_) {
    relay_open_ = false;
    plan_.cut = !complete;
    // An empty last frame: writing it ends the body (or, cut, the connection) even when a write
    // is in flight now.
    plan_.end_frame();
    if (phase_ == phase::relaying)
      write_frames(false);
    return;
  }
  send_plan(fakellm::plan_replay(recording_, false));
}

} // namespace offload::fakellm_detail
