#include "runtime/sse.hpp"

#include <fmt/format.h>

#include <charconv>

namespace offload::sse {

namespace {

std::optional<uint64_t> parse_number(std::string_view text) {
  uint64_t value = 0;
  if (text.empty() || text.size() > 20)
    return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size())
    return std::nullopt;
  return value;
}

} // namespace

std::string format_id(event_id id) {
  return fmt::format("{}:{}", id.stream, id.seq);
}

std::optional<event_id> parse_id(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos)
    return std::nullopt;
  auto stream = parse_number(text.substr(0, colon));
  auto seq = parse_number(text.substr(colon + 1));
  if (!stream || !seq)
    return std::nullopt;
  return event_id{*stream, *seq};
}

std::string frame(event_id id, std::string_view data) {
  std::string out = fmt::format("id: {}\n", format_id(id));
  out.reserve(out.size() + data.size() + 16);
  for (;;) {
    auto newline = data.find('\n');
    auto line = data.substr(0, newline);
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    out += "data: ";
    out += line;
    out += '\n';
    if (newline == std::string_view::npos)
      break;
    data.remove_prefix(newline + 1);
  }
  out += '\n';
  return out;
}

std::string priming_frame(event_id id, std::optional<std::chrono::milliseconds> retry) {
  std::string out = fmt::format("id: {}\n", format_id(id));
  if (retry)
    out += fmt::format("retry: {}\n", retry->count());
  out += "data: \n\n";
  return out;
}

event_log::event_log(size_t max_events, size_t max_bytes)
    : max_events_(max_events)
    , max_bytes_(max_bytes) {
  streams_[standalone_stream] = {};
}

uint64_t event_log::open_stream() {
  auto stream = next_stream_++;
  streams_[stream] = {};
  return stream;
}

event_id event_log::next_id(uint64_t stream) {
  auto& state = streams_[stream];
  return {stream, state.next_seq++};
}

event_id event_log::append(uint64_t stream, std::string data) {
  auto id = next_id(stream);
  ++streams_[stream].kept;
  bytes_ += data.size();
  events_.push_back({id, std::move(data)});
  // The newest event always stays, even when it alone is over the byte bound: dropping it
  // would make the very next resume report a gap.
  while (events_.size() > 1 && (events_.size() > max_events_ || bytes_ > max_bytes_))
    evict_oldest();
  return id;
}

void event_log::finish(uint64_t stream) {
  if (stream == standalone_stream)
    return; // the standalone stream lasts as long as the session
  auto it = streams_.find(stream);
  if (it == streams_.end())
    return;
  it->second.finished = true;
  forget_if_done(stream);
}

bool event_log::finished(uint64_t stream) const {
  auto it = streams_.find(stream);
  // A stream no longer known had finished (or never existed).
  return it == streams_.end() || it->second.finished;
}

void event_log::evict_oldest() {
  auto& oldest = events_.front();
  auto& state = streams_[oldest.id.stream];
  --state.kept;
  state.dropped_through = oldest.id.seq;
  bytes_ -= oldest.data.size();
  auto stream = oldest.id.stream;
  events_.pop_front();
  forget_if_done(stream);
}

void event_log::forget_if_done(uint64_t stream) {
  auto it = streams_.find(stream);
  if (it != streams_.end() && it->second.finished && it->second.kept == 0)
    streams_.erase(it);
}

event_log::replay event_log::events_after(event_id last) const {
  replay out;
  auto it = streams_.find(last.stream);
  if (it == streams_.end()) {
    // A stream issued earlier whose events have all been dropped since: its end (at least the
    // response) is gone. A stream never issued is unknown.
    out.status = last.stream < next_stream_ ? replay_status::lost : replay_status::unknown;
    return out;
  }
  const auto& state = it->second;
  if (last.seq >= state.next_seq) {
    out.status = replay_status::unknown;
    return out;
  }
  if (state.dropped_through && *state.dropped_through > last.seq) {
    out.status = replay_status::lost;
    return out;
  }
  out.status = replay_status::ok;
  out.finished = state.finished;
  for (const auto& event : events_)
    if (event.id.stream == last.stream && event.id.seq > last.seq)
      out.events.emplace_back(event.id, event.data);
  return out;
}

} // namespace offload::sse
