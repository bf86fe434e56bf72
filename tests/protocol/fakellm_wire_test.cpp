#define CAF_SUITE fakellm_wire
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_wire.hpp"

#include <nlohmann/json.hpp>

using namespace offload::fakellm;
using namespace std::chrono_literals;
using json = nlohmann::json;

CAF_TEST(json strings escape what json requires) {
  std::string text = "say \"hi\"\\n\n\t\r\b\f\x01 é ";
  std::string out;
  append_json_string(out, text);
  CAF_CHECK_EQUAL(json::parse(out).get<std::string>(), text);
  CAF_CHECK_EQUAL(out.find('\n'), std::string::npos);
  CAF_CHECK(out.find("\\u0001") != std::string::npos);
}

CAF_TEST(created_at is UTC with nanoseconds) {
  using namespace std::chrono;
  auto t = sys_days{year{2024} / 5 / 1} + 12h + 34min + 56s + 123456789ns;
  CAF_CHECK_EQUAL(format_created_at(time_point_cast<system_clock::duration>(t)),
                  "2024-05-01T12:34:56.123456789Z");
  CAF_CHECK_EQUAL(format_created_at(system_clock::time_point{}), "1970-01-01T00:00:00.000000000Z");
  CAF_CHECK_EQUAL(unix_seconds(time_point_cast<system_clock::duration>(t)), 1714566896);
}

CAF_TEST(usage counts tokens and adds up durations) {
  auto counts = make_usage(7, 3, 250ms);
  CAF_CHECK_EQUAL(counts.prompt_tokens, 7u);
  CAF_CHECK_EQUAL(counts.reply_tokens, 3u);
  CAF_CHECK_EQUAL(counts.load.count(), 250'000'000);
  CAF_CHECK(counts.prompt_eval.count() > 0);
  CAF_CHECK(counts.eval.count() > 0);
  CAF_CHECK_EQUAL(counts.total, counts.load + counts.prompt_eval + counts.eval);
}

CAF_TEST(model metadata comes from the name) {
  auto qwen = describe_model("qwen2.5-coder:7b");
  CAF_CHECK_EQUAL(qwen.family, "qwen");
  CAF_CHECK_EQUAL(qwen.parameter_size, "7B");
  auto llama = describe_model("llama3.2:3b");
  CAF_CHECK_EQUAL(llama.parameter_size, "3B");
  CAF_CHECK(llama.size < qwen.size);
  CAF_CHECK_EQUAL(describe_model("phi3").parameter_size, "7B");
  CAF_CHECK_EQUAL(describe_model("3x").family, "unknown");
  CAF_CHECK_EQUAL(describe_model("m:0.5b").parameter_size, "0.5B");
}

CAF_TEST(digests are stable and distinct) {
  auto digest = fake_digest("a");
  CAF_CHECK_EQUAL(digest.size(), 64u);
  CAF_CHECK_EQUAL(digest.find_first_not_of("0123456789abcdef"), std::string::npos);
  CAF_CHECK_EQUAL(digest, fake_digest("a"));
  CAF_CHECK_NOT_EQUAL(digest, fake_digest("b"));
  CAF_CHECK_EQUAL(describe_model("x:1b").digest, fake_digest("x:1b"));
}
