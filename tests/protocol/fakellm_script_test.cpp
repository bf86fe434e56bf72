#define CAF_SUITE fakellm_script
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_script.hpp"

using namespace offload::fakellm;
using namespace std::chrono_literals;

namespace {

std::string name_of(fault f) {
  return std::string{to_string(f)};
}

// The fault that decides the response's shape on the first attempt, "none" for a plain answer.
std::string shape_of(std::string_view text) {
  auto a = resolve_action(parse_script(text), 1);
  for (auto f : a.applied)
    if (!is_delay(f))
      return name_of(f);
  return "none";
}

fault_spec spec(fault kind) {
  fault_spec result;
  result.kind = kind;
  return result;
}

} // namespace

// -- markers -------------------------------------------------------------------------------------

CAF_TEST(text without markers asks for nothing) {
  CAF_CHECK(parse_script("write a parser") == script{});
  CAF_CHECK(parse_script("") == script{});
  CAF_CHECK(parse_script("[[]] [[=]] [[latency]] [x]") == script{});
}

CAF_TEST(latency marker sets the wait) {
  CAF_CHECK_EQUAL(parse_script("[[latency=250]]").latency.count(), 250);
  CAF_CHECK_EQUAL(parse_script("slow please [[latency=0]]").latency.count(), 0);
  CAF_CHECK_EQUAL(parse_script("a[[latency=86400000]]b").latency.count(), 86400000);
}

CAF_TEST(malformed latency markers are ignored) {
  for (auto text : {"[[latency=abc]]", "[[latency=]]", "[[latency=-5]]", "[[latency=1.5]]",
                    "[[latency=+5]]", "[[latency=5ms]]", "[[latency= 5]]", "[[ latency=5]]",
                    "[[latency=86400001]]", "[[latency=99999999999999999999999]]", "[[latency=5",
                    "[latency=5]", "[[LATENCY=5]]", "[[latency=5:times=1]]"})
    CAF_CHECK(parse_script(text) == script{});
}

CAF_TEST(every fault name is recognised) {
  for (auto f : injectable_faults) {
    auto text = "x [[fault=" + name_of(f) + (is_delay(f) ? "=10" : "") + "]] y";
    auto parsed = parse_script(text);
    CAF_REQUIRE_EQUAL(parsed.faults.size(), 1u);
    CAF_CHECK_EQUAL(name_of(parsed.faults[0].kind), name_of(f));
    CAF_CHECK_EQUAL(parsed.faults[0].times, 0u);
  }
}

CAF_TEST(unknown fault names are ignored) {
  for (auto text : {"[[fault=boom]]", "[[fault=]]", "[[fault=none]]", "[[fault=HTTP500]]",
                    "[[fault=http500 ]]", "[[fault:http500]]", "[[fault=http500=5]]"})
    CAF_CHECK(parse_script(text) == script{});
}

CAF_TEST(delay faults need a valid number of milliseconds) {
  auto parsed = parse_script("[[fault=slow_first_token=250]][[fault=slow_tokens=0]]");
  CAF_REQUIRE_EQUAL(parsed.faults.size(), 2u);
  CAF_CHECK_EQUAL(parsed.faults[0].delay.count(), 250);
  CAF_CHECK_EQUAL(parsed.faults[1].delay.count(), 0);
  for (auto text : {"[[fault=slow_tokens]]", "[[fault=slow_tokens=]]", "[[fault=slow_tokens=-1]]",
                    "[[fault=slow_tokens=5ms]]", "[[fault=slow_first_token=86400001]]",
                    "[[fault=slow_tokens=1.5]]"})
    CAF_CHECK(parse_script(text) == script{});
}

CAF_TEST(fault parameters) {
  auto parsed = parse_script("[[fault=http503:times=2]] [[fault=http429:retry_after=7:times=1]] "
                             "[[fault=slow_tokens=20:times=3]] [[fault=http503:retry_after=0]]");
  CAF_REQUIRE_EQUAL(parsed.faults.size(), 4u);
  CAF_CHECK_EQUAL(parsed.faults[0].times, 2u);
  CAF_CHECK(!parsed.faults[0].retry_after);
  CAF_CHECK_EQUAL(parsed.faults[1].retry_after->count(), 7);
  CAF_CHECK_EQUAL(parsed.faults[1].times, 1u);
  CAF_CHECK_EQUAL(parsed.faults[2].delay.count(), 20);
  CAF_CHECK_EQUAL(parsed.faults[2].times, 3u);
  CAF_CHECK_EQUAL(parsed.faults[3].retry_after->count(), 0);
  CAF_CHECK(parsed.counts_attempts());
  CAF_CHECK(!parse_script("[[fault=http500]]").counts_attempts());
}

CAF_TEST(invalid fault parameters make the marker plain text) {
  for (auto text :
       {"[[fault=http503:times=0]]", "[[fault=http503:times=]]", "[[fault=http503:times=x]]",
        "[[fault=http503:times=1000001]]", "[[fault=http503:times=1:times=2]]",
        "[[fault=http500:retry_after=1]]", "[[fault=drop:retry_after=1]]",
        "[[fault=http429:retry_after=86401]]", "[[fault=http429:retry_after=-1]]",
        "[[fault=http429:retry_after=1:retry_after=2]]", "[[fault=http503:]]",
        "[[fault=http503:times]]", "[[fault=http503:colour=red]]", "[[fault=http503::times=1]]",
        "[[fault=http503 :times=1]]"})
    CAF_CHECK(parse_script(text) == script{});
}

CAF_TEST(several markers combine) {
  auto result = parse_script("[[latency=100]] do it [[fault=drop]] [[fault=slow_tokens=5]]");
  CAF_CHECK_EQUAL(result.latency.count(), 100);
  CAF_CHECK_EQUAL(result.faults.size(), 2u);
  auto a = resolve_action(result, 1);
  CAF_CHECK(a.response == response_kind::drop);
  CAF_CHECK_EQUAL(a.token_delay.count(), 5);
  CAF_CHECK_EQUAL(a.latency.count(), 100);
}

CAF_TEST(the last valid marker of a kind wins) {
  auto result = parse_script("[[fault=hang]][[latency=1]][[fault=http500]][[latency=2]]");
  CAF_CHECK_EQUAL(result.latency.count(), 2);
  CAF_CHECK_EQUAL(shape_of("[[fault=hang]][[latency=1]][[fault=http500]][[latency=2]]"), "http500");
  // An invalid later marker does not undo a valid earlier one.
  auto kept = parse_script("[[latency=7]] [[latency=x]] [[fault=drop]] [[fault=nope]]");
  CAF_CHECK_EQUAL(kept.latency.count(), 7);
  CAF_CHECK_EQUAL(shape_of("[[latency=7]] [[latency=x]] [[fault=drop]] [[fault=nope]]"), "drop");
  auto delays = resolve_action(parse_script("[[fault=slow_tokens=1]][[fault=slow_tokens=9]]"), 1);
  CAF_CHECK_EQUAL(delays.token_delay.count(), 9);
}

CAF_TEST(markers are found next to stray brackets) {
  CAF_CHECK_EQUAL(parse_script("[[[latency=5]]").latency.count(), 5);
  CAF_CHECK_EQUAL(parse_script("[[note [[latency=6]]").latency.count(), 6);
  CAF_CHECK_EQUAL(parse_script("[[latency=8]]]]").latency.count(), 8);
  CAF_CHECK_EQUAL(shape_of("[[[fault=drop]]"), "drop");
}

// -- actions -------------------------------------------------------------------------------------

CAF_TEST(no fault is a plain answer) {
  auto a = resolve_action(parse_script("hello [[latency=3]]"), 1);
  CAF_CHECK(a.response == response_kind::answer);
  CAF_CHECK_EQUAL(a.latency.count(), 3);
  CAF_CHECK(a.applied.empty());
  CAF_CHECK(!a.retry_after);
}

CAF_TEST(error faults map to statuses) {
  struct expectation {
    const char* marker;
    error_kind kind;
    uint16_t status;
  };
  for (auto [marker, kind, status] :
       {expectation{"[[fault=http500]]", error_kind::internal, 500},
        expectation{"[[fault=notfound]]", error_kind::model_not_found, 404},
        expectation{"[[fault=http503]]", error_kind::busy, 503},
        expectation{"[[fault=http429]]", error_kind::rate_limited, 429},
        expectation{"[[fault=context_too_long]]", error_kind::context_too_long, 400}}) {
    auto a = resolve_action(parse_script(marker), 1);
    CAF_CHECK(a.response == response_kind::error);
    CAF_CHECK(a.error == kind);
    CAF_CHECK_EQUAL(a.status, status);
    CAF_CHECK_EQUAL(a.status, default_status(kind));
  }
}

CAF_TEST(a 429 says when to retry) {
  CAF_CHECK_EQUAL(resolve_action(parse_script("[[fault=http429]]"), 1).retry_after->count(), 1);
  CAF_CHECK_EQUAL(
      resolve_action(parse_script("[[fault=http429:retry_after=2]]"), 1).retry_after->count(), 2);
  // Ollama's 503 has no Retry-After unless the marker asks for one.
  CAF_CHECK(!resolve_action(parse_script("[[fault=http503]]"), 1).retry_after);
  CAF_CHECK_EQUAL(
      resolve_action(parse_script("[[fault=http503:retry_after=4]]"), 1).retry_after->count(), 4);
}

CAF_TEST(stream faults keep the answer) {
  CAF_CHECK(resolve_action(parse_script("[[fault=drop]]"), 1).response == response_kind::drop);
  CAF_CHECK(resolve_action(parse_script("[[fault=hang]]"), 1).response == response_kind::hang);
  CAF_CHECK(resolve_action(parse_script("[[fault=malformed]]"), 1).response ==
            response_kind::malformed);
  auto mid = resolve_action(parse_script("[[fault=midstream_error]]"), 1);
  CAF_CHECK(mid.response == response_kind::midstream_error);
  CAF_CHECK(mid.error == error_kind::internal);
  CAF_CHECK_EQUAL(mid.status, 200);
}

CAF_TEST(delays count only where there is a stream to slow) {
  auto slowed = resolve_action(
      parse_script("[[fault=slow_first_token=300]] [[fault=slow_tokens=20]] [[fault=drop]]"), 1);
  CAF_CHECK_EQUAL(slowed.first_token_delay.count(), 300);
  CAF_CHECK_EQUAL(slowed.token_delay.count(), 20);
  CAF_CHECK(slowed.applied ==
            (std::vector<fault>{fault::drop, fault::slow_first_token, fault::slow_tokens}));
  auto failed = resolve_action(parse_script("[[fault=slow_tokens=20]] [[fault=http500]]"), 1);
  CAF_CHECK(failed.applied == std::vector<fault>{fault::http500});
  // A zero delay delays nothing.
  CAF_CHECK(resolve_action(parse_script("[[fault=slow_tokens=0]]"), 1).applied.empty());
}

CAF_TEST(limited faults apply to the first attempts only) {
  auto s = parse_script("[[fault=http503:times=2]] echo");
  CAF_CHECK(resolve_action(s, 1).response == response_kind::error);
  CAF_CHECK(resolve_action(s, 2).response == response_kind::error);
  auto third = resolve_action(s, 3);
  CAF_CHECK(third.response == response_kind::answer);
  CAF_CHECK(third.applied.empty());
  auto slow = parse_script("[[fault=slow_first_token=50:times=1]]");
  CAF_CHECK_EQUAL(resolve_action(slow, 1).first_token_delay.count(), 50);
  CAF_CHECK_EQUAL(resolve_action(slow, 2).first_token_delay.count(), 0);
}

CAF_TEST(the last fault still in force decides) {
  // A 429, then a 503, then success: each marker runs out in turn.
  auto s = parse_script("[[fault=http503:times=2]] [[fault=http429:times=1]]");
  CAF_CHECK(resolve_action(s, 1).error == error_kind::rate_limited);
  CAF_CHECK(resolve_action(s, 2).error == error_kind::busy);
  CAF_CHECK(resolve_action(s, 3).response == response_kind::answer);
  // An unlimited fault before a limited one takes over once the limited one is spent.
  auto fallback = parse_script("[[fault=drop]] [[fault=http500:times=1]]");
  CAF_CHECK(resolve_action(fallback, 1).response == response_kind::error);
  CAF_CHECK(resolve_action(fallback, 2).response == response_kind::drop);
}

CAF_TEST(an action built by hand needs no markers) {
  script s;
  s.faults = {spec(fault::http500), spec(fault::midstream_error)};
  CAF_CHECK(resolve_action(s, 1).response == response_kind::midstream_error);
  CAF_CHECK(carries_answer(response_kind::midstream_error));
  CAF_CHECK(carries_answer(response_kind::answer));
  CAF_CHECK(!carries_answer(response_kind::error));
  CAF_CHECK(!carries_answer(response_kind::hang));
}

// -- attempts ------------------------------------------------------------------------------------

CAF_TEST(attempts are counted per identical prompt) {
  attempt_counter attempts;
  CAF_CHECK_EQUAL(attempts.record("a [[fault=http503:times=1]]"), 1u);
  CAF_CHECK_EQUAL(attempts.record("a [[fault=http503:times=1]]"), 2u);
  CAF_CHECK_EQUAL(attempts.record("a [[fault=http503:times=1]] "), 1u);
  CAF_CHECK_EQUAL(attempts.record("a [[fault=http503:times=1]]"), 3u);
  CAF_CHECK_EQUAL(attempts.prompts(), 2u);
  attempts.clear();
  CAF_CHECK_EQUAL(attempts.prompts(), 0u);
  CAF_CHECK_EQUAL(attempts.record("a [[fault=http503:times=1]]"), 1u);
}
