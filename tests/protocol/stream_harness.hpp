#pragma once
// Feeds a response body to a stream parser whole, split in two at every byte, and one byte at a
// time, so that tests can require the same outcome however the bytes arrived.

#include "protocol/llm_stream.hpp"

#include <caf/test/unit_test.hpp>

#include <string>
#include <string_view>

namespace offload::test {

// Everything a parser exposes after finish().
struct stream_outcome {
  bool done = false;
  bool failed = false;
  errc code = errc::no_error;
  std::string message;
  bool retryable = false;
  std::string text;
  std::string model;
  std::string done_reason;
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
  size_t chunks = 0;
  bool operator==(const stream_outcome&) const = default;
};

template <class Parser>
stream_outcome outcome_of(const Parser& parser) {
  return {parser.done(),          parser.failed(),          parser.error().code,
          parser.error().message, parser.error().retryable, parser.text(),
          parser.model(),         parser.done_reason(),     parser.tokens_in(),
          parser.tokens_out(),    parser.chunks()};
}

// The outcome of `body` fed in one piece, after checking that every other way of cutting it up
// gives the very same outcome.
template <class Parser>
stream_outcome parse_every_way(std::string_view body) {
  Parser whole;
  whole.feed(body);
  whole.finish();
  auto expected = outcome_of(whole);
  for (size_t cut = 0; cut <= body.size(); ++cut) {
    Parser split;
    split.feed(body.substr(0, cut));
    split.feed(body.substr(cut));
    split.finish();
    if (!(outcome_of(split) == expected))
      CAF_FAIL("splitting the body at byte " << cut << " changed the outcome");
  }
  Parser bytewise;
  for (char c : body)
    bytewise.feed(std::string_view{&c, 1});
  bytewise.finish();
  CAF_CHECK(outcome_of(bytewise) == expected);
  return expected;
}

} // namespace offload::test
