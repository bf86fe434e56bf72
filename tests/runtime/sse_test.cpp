#define CAF_SUITE sse
#include <caf/test/unit_test.hpp>

#include "tests/check_case.hpp"

#include "runtime/sse.hpp"

using namespace offload;
using namespace offload::sse;
using namespace std::chrono_literals;

namespace {

using status = event_log::replay_status;

std::vector<std::string> texts(const event_log::replay& replay) {
  std::vector<std::string> out;
  for (const auto& [id, data] : replay.events)
    out.push_back(data);
  return out;
}

} // namespace

CAF_TEST(event ids name the stream and the position) {
  CAF_CHECK_EQUAL(format_id({3, 17}), "3:17");
  auto parsed = parse_id("3:17");
  CAF_REQUIRE(parsed.has_value());
  CAF_CHECK_EQUAL(parsed->stream, 3u);
  CAF_CHECK_EQUAL(parsed->seq, 17u);
  CAF_CHECK(parse_id("0:0") == (event_id{0, 0}));
  for (auto bad : {"", "3", "3:", ":4", "a:1", "1:b", "1:2:3", "-1:2", " 1:2", "1:2 ",
                   "99999999999999999999999:1"})
    CHECK_CASE(!parse_id(bad), "accepted " << bad);
}

CAF_TEST(an event carries its id and the message as data) {
  CAF_CHECK_EQUAL(frame({1, 2}, R"({"jsonrpc":"2.0"})"),
                  "id: 1:2\ndata: {\"jsonrpc\":\"2.0\"}\n\n");
  // A line break inside the data becomes a second data line, which the client joins with "\n".
  CAF_CHECK_EQUAL(frame({0, 5}, "a\nb\r\nc"), "id: 0:5\ndata: a\ndata: b\ndata: c\n\n");
  CAF_CHECK_EQUAL(frame({0, 6}, ""), "id: 0:6\ndata: \n\n");
}

CAF_TEST(a priming event has an id and empty data and may set the retry delay) {
  CAF_CHECK_EQUAL(priming_frame({4, 0}, 1500ms), "id: 4:0\nretry: 1500\ndata: \n\n");
  CAF_CHECK_EQUAL(priming_frame({4, 0}, std::nullopt), "id: 4:0\ndata: \n\n");
}

CAF_TEST(a replay gives the events after the given id of that stream only) {
  event_log log{100, 1 << 20};
  auto a = log.open_stream();
  auto b = log.open_stream();
  CAF_CHECK_EQUAL(a, 1u);
  CAF_CHECK_EQUAL(b, 2u);
  auto primed = log.next_id(a); // a priming event: an id, nothing kept
  CAF_CHECK(primed == (event_id{a, 0}));
  auto a1 = log.append(a, "a1");
  log.append(b, "b1");
  auto a2 = log.append(a, "a2");
  log.append(sse::standalone_stream, "s1");
  log.append(a, "a3");
  CAF_CHECK(a1 == (event_id{a, 1}));
  CAF_CHECK(a2 == (event_id{a, 2}));

  auto from_priming = log.events_after(primed);
  CAF_CHECK(from_priming.status == status::ok);
  CAF_CHECK_EQUAL(texts(from_priming), (std::vector<std::string>{"a1", "a2", "a3"}));
  CAF_CHECK(!from_priming.finished);
  CAF_CHECK_EQUAL(texts(log.events_after(a2)), (std::vector<std::string>{"a3"}));
  CAF_CHECK(log.events_after(a2).events.front().first == (event_id{a, 3}));
  CAF_CHECK_EQUAL(texts(log.events_after({b, 0})), (std::vector<std::string>{}));
  CAF_CHECK_EQUAL(texts(log.events_after({sse::standalone_stream, 0})),
                  (std::vector<std::string>{}));
}

CAF_TEST(the standalone stream exists from the start and never finishes) {
  event_log log{10, 1 << 20};
  auto first = log.append(sse::standalone_stream, "s0");
  log.append(sse::standalone_stream, "s1");
  log.finish(sse::standalone_stream);
  CAF_CHECK(!log.finished(sse::standalone_stream));
  auto replay = log.events_after(first);
  CAF_CHECK(replay.status == status::ok);
  CAF_CHECK_EQUAL(texts(replay), (std::vector<std::string>{"s1"}));
  CAF_CHECK(!replay.finished);
}

CAF_TEST(ids that were never issued are unknown) {
  event_log log{10, 1 << 20};
  auto a = log.open_stream();
  log.append(a, "a0");
  CAF_CHECK(log.events_after({a, 1}).status == status::unknown);     // seq not issued yet
  CAF_CHECK(log.events_after({a + 1, 0}).status == status::unknown); // stream not opened
  CAF_CHECK(log.events_after({sse::standalone_stream, 0}).status == status::unknown);
}

CAF_TEST(a finished stream replays its end and says that nothing follows) {
  event_log log{10, 1 << 20};
  auto a = log.open_stream();
  auto start = log.next_id(a);
  log.append(a, "progress");
  log.append(a, "response");
  log.finish(a);
  CAF_CHECK(log.finished(a));
  auto replay = log.events_after(start);
  CAF_CHECK(replay.status == status::ok);
  CAF_CHECK(replay.finished);
  CAF_CHECK_EQUAL(texts(replay), (std::vector<std::string>{"progress", "response"}));
}

CAF_TEST(a replay with a gap is refused rather than sent incomplete) {
  event_log log{3, 1 << 20};
  auto a = log.open_stream();
  auto b = log.open_stream();
  auto a0 = log.append(a, "a0");
  auto a1 = log.append(a, "a1");
  log.append(b, "b0");
  log.append(b, "b1"); // evicts a0
  CAF_CHECK_EQUAL(log.size(), 3u);
  // After a0 the log still has everything (a1); before it, a0 itself is gone.
  CAF_CHECK(log.events_after(a0).status == status::ok);
  CAF_CHECK_EQUAL(texts(log.events_after(a0)), (std::vector<std::string>{"a1"}));
  log.append(b, "b2"); // evicts a1
  CAF_CHECK(log.events_after(a0).status == status::lost);
  CAF_CHECK(log.events_after(a1).status == status::ok); // nothing missed after a1
  CAF_CHECK_EQUAL(texts(log.events_after(a1)), (std::vector<std::string>{}));
}

CAF_TEST(resuming a finished stream whose events are all gone fails) {
  event_log log{2, 1 << 20};
  auto a = log.open_stream();
  auto start = log.next_id(a);
  log.append(a, "response");
  log.finish(a);
  auto b = log.open_stream();
  log.append(b, "b0");
  log.append(b, "b1"); // evicts the response of a
  CAF_CHECK(log.events_after(start).status == status::lost);
}

CAF_TEST(the log is bounded by bytes as well as by events) {
  event_log log{100, 10};
  auto a = log.open_stream();
  log.append(a, "12345");
  log.append(a, "67890");
  CAF_CHECK_EQUAL(log.size(), 2u);
  CAF_CHECK_EQUAL(log.bytes(), 10u);
  log.append(a, "x");
  CAF_CHECK_EQUAL(log.size(), 2u);
  CAF_CHECK_EQUAL(log.bytes(), 6u);
  // One event larger than the bound stays, alone.
  log.append(a, std::string(50, 'y'));
  CAF_CHECK_EQUAL(log.size(), 1u);
  CAF_CHECK_EQUAL(log.bytes(), 50u);
}
