#define CAF_SUITE audit
#include <caf/test/unit_test.hpp>

#include "protocol/audit.hpp"

using namespace offload;
using json = nlohmann::json;

CAF_TEST(sha256 matches the standard test vectors) {
  CAF_CHECK_EQUAL(sha256_hex(""),
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CAF_CHECK_EQUAL(sha256_hex("abc"),
                  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

CAF_TEST(an allowed record has no rule and a utc timestamp with milliseconds) {
  audit_record r;
  r.time = std::chrono::system_clock::from_time_t(1'800'000'020) + std::chrono::milliseconds{7};
  r.session = "s1";
  r.agent = "a1";
  r.tool = "batch_offload";
  r.args_hash = sha256_hex("{}");
  auto line = render_audit_line(r);
  CAF_CHECK_EQUAL(line.find('\n'), std::string::npos);
  auto j = json::parse(line);
  CAF_CHECK_EQUAL(j["ts"].get<std::string>(), "2027-01-15T08:00:20.007Z");
  CAF_CHECK_EQUAL(j["type"].get<std::string>(), "tool_call");
  CAF_CHECK_EQUAL(j["result"].get<std::string>(), "allowed");
  CAF_CHECK_EQUAL(j["session"].get<std::string>(), "s1");
  CAF_CHECK_EQUAL(j["agent"].get<std::string>(), "a1");
  CAF_CHECK(!j.contains("rule"));
}

CAF_TEST(a denied record names the rule and message) {
  audit_record r;
  r.allowed = false;
  r.rule = "no chains";
  r.message = "closed";
  auto j = json::parse(render_audit_line(r));
  CAF_CHECK_EQUAL(j["result"].get<std::string>(), "denied");
  CAF_CHECK_EQUAL(j["rule"].get<std::string>(), "no chains");
  CAF_CHECK_EQUAL(j["message"].get<std::string>(), "closed");
}
