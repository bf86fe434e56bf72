#define CAF_SUITE http_checks
#include <caf/test/unit_test.hpp>

#include "tests/check_case.hpp"

#include "runtime/http_checks.hpp"

#include <nlohmann/json.hpp>

#include <set>

using namespace offload;
using namespace offload::http_checks;

CAF_TEST(authorities split into host and port) {
  auto plain = parse_authority("LocalHost:8787");
  CAF_REQUIRE(plain.has_value());
  CAF_CHECK_EQUAL(plain->host, "localhost");
  CAF_CHECK_EQUAL(plain->port, "8787");
  auto v6 = parse_authority("[::1]:80");
  CAF_REQUIRE(v6.has_value());
  CAF_CHECK_EQUAL(v6->host, "[::1]");
  CAF_CHECK_EQUAL(v6->port, "80");
  auto bare = parse_authority("example.com");
  CAF_REQUIRE(bare.has_value());
  CAF_CHECK_EQUAL(bare->port, "");
  for (auto bad : {"", ":80", "host:", "host:port", "host:99999", "::1", "[::1", "[zz]:1", "a b:1",
                   "host:80/x", "user@host", "[::1]x"})
    CHECK_CASE(!parse_authority(bad), "accepted " << bad);
}

CAF_TEST(the Host header must name this machine or an allowed host) {
  std::vector<std::string> none;
  for (auto good : {"localhost", "localhost:8787", "127.0.0.1:1", "[::1]:8787", "LOCALHOST:9"})
    CHECK_CASE(host_allowed(good, none), "refused " << good);
  for (auto bad : {"", "evil.example.com", "evil.example.com:8787", "127.0.0.2:80",
                   "localhost.evil.com", "127.0.0.1.nip.io:80", "[::2]:80", "localhost:x"})
    CHECK_CASE(!host_allowed(bad, none), "allowed " << bad);
  std::vector<std::string> allowed{"gpu-box", "mcp.example.com:443"};
  CAF_CHECK(host_allowed("gpu-box:8787", allowed));
  CAF_CHECK(host_allowed("GPU-BOX", allowed));
  CAF_CHECK(host_allowed("mcp.example.com:443", allowed));
  CAF_CHECK(!host_allowed("mcp.example.com:8443", allowed));
  CAF_CHECK(!host_allowed("mcp.example.com", allowed));
}

CAF_TEST(an Origin must be a loopback origin or an allowed one) {
  std::vector<std::string> none;
  for (auto good : {"http://localhost", "http://localhost:3000", "https://127.0.0.1:8443",
                    "http://[::1]:5173", "HTTP://LOCALHOST:3000/"})
    CHECK_CASE(origin_allowed(good, none), "refused " << good);
  for (auto bad :
       {"null", "", "http://evil.example.com", "https://localhost.evil.com", "file://localhost",
        "localhost:3000", "http://localhost:3000/path", "http://user@localhost", "ws://localhost"})
    CHECK_CASE(!origin_allowed(bad, none), "allowed " << bad);
  std::vector<std::string> allowed{"https://app.example.com", "http://10.0.0.5:3000/"};
  CAF_CHECK(origin_allowed("https://app.example.com", allowed));
  CAF_CHECK(origin_allowed("https://APP.example.com/", allowed));
  CAF_CHECK(origin_allowed("http://10.0.0.5:3000", allowed));
  CAF_CHECK(!origin_allowed("http://app.example.com", allowed)); // scheme differs
  CAF_CHECK(!origin_allowed("https://app.example.com:8443", allowed));
  CAF_CHECK(!origin_allowed("http://10.0.0.5:3001", allowed));
}

CAF_TEST(accept lists media types with wildcards and quality values) {
  auto both = "application/json, text/event-stream";
  CAF_CHECK(accepts(both, "application/json"));
  CAF_CHECK(accepts(both, "text/event-stream"));
  CAF_CHECK(accepts("text/event-stream,application/json;q=0.9", "application/json"));
  CAF_CHECK(accepts("Application/JSON", "application/json"));
  CAF_CHECK(accepts("*/*", "text/event-stream"));
  CAF_CHECK(accepts("text/*", "text/event-stream"));
  CAF_CHECK(!accepts("text/*", "application/json"));
  CAF_CHECK(!accepts("application/json", "text/event-stream"));
  CAF_CHECK(!accepts("", "application/json"));
  CAF_CHECK(!accepts("application/json;q=0, text/event-stream", "application/json"));
  CAF_CHECK(!accepts("application/json-seq", "application/json"));
  CAF_CHECK(!accepts("text/html", "text/event-stream"));
}

CAF_TEST(content type must be application json) {
  CAF_CHECK(is_json("application/json"));
  CAF_CHECK(is_json("application/json; charset=utf-8"));
  CAF_CHECK(is_json(" Application/Json "));
  CAF_CHECK(!is_json(""));
  CAF_CHECK(!is_json("text/plain"));
  CAF_CHECK(!is_json("application/json-rpc"));
  CAF_CHECK(!is_json("application/x-www-form-urlencoded"));
}

CAF_TEST(bearer tokens are read from the Authorization header) {
  CAF_CHECK(bearer_token("Bearer abc123") == std::optional<std::string_view>{"abc123"});
  CAF_CHECK(bearer_token("bearer   abc123 ") == std::optional<std::string_view>{"abc123"});
  for (auto bad : {"", "Bearer", "Bearer ", "Basic abc", "Bearerabc", "Bearer a b", "Token abc"})
    CHECK_CASE(!bearer_token(bad), "accepted " << bad);
}

CAF_TEST(session ids are 128 random bits as visible ASCII) {
  std::array<uint8_t, 16> bytes{};
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<uint8_t>(i * 17);
  CAF_CHECK_EQUAL(session_id_from(bytes), "00112233445566778899aabbccddeeff");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto id = new_session_id();
    CAF_CHECK_EQUAL(id.size(), 32u);
    CAF_CHECK(plausible_session_id(id));
    CAF_CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    seen.insert(id);
  }
  CAF_CHECK_EQUAL(seen.size(), 100u);
}

CAF_TEST(session names are stable and unique and give nothing of the id away) {
  auto id = std::string{"00112233445566778899aabbccddeeff"};
  auto name = session_name(id);
  CAF_CHECK_EQUAL(name.size(), 21u);
  CAF_CHECK_EQUAL(name.substr(0, 5), "http-");
  CAF_CHECK_EQUAL(name, session_name(id));
  CAF_CHECK_NOT_EQUAL(name, session_name("00112233445566778899aabbccddeefe"));
  CAF_CHECK(name.find("00112233") == std::string::npos);
}

CAF_TEST(only visible ASCII ids are looked up) {
  CAF_CHECK(plausible_session_id("abc-DEF_123"));
  CAF_CHECK(!plausible_session_id(""));
  CAF_CHECK(!plausible_session_id("has space"));
  CAF_CHECK(!plausible_session_id("tab\t"));
  CAF_CHECK(!plausible_session_id("caf\xc3\xa9"));
  CAF_CHECK(!plausible_session_id(std::string(129, 'a')));
}

CAF_TEST(error bodies are JSON - RPC errors without an id) {
  auto body = nlohmann::json::parse(error_body(session_not_found, "Not Found: gone"));
  CAF_CHECK_EQUAL(body["jsonrpc"], "2.0");
  CAF_CHECK(body["id"].is_null());
  CAF_CHECK_EQUAL(body["error"]["code"], -32001);
  CAF_CHECK_EQUAL(body["error"]["message"], "Not Found: gone");
}

CAF_TEST(the token table maps tokens to agents) {
  token_table tokens;
  CAF_CHECK(tokens.empty());
  tokens.add("secret-one-0123456789", "alice");
  tokens.add("secret-two-0123456789", "bob");
  CAF_CHECK_EQUAL(tokens.size(), 2u);
  CAF_CHECK(tokens.agent_for("secret-one-0123456789") == std::optional<std::string>{"alice"});
  CAF_CHECK(tokens.agent_for("secret-two-0123456789") == std::optional<std::string>{"bob"});
  CAF_CHECK(!tokens.agent_for("secret-one-012345678"));
  CAF_CHECK(!tokens.agent_for(""));
  CAF_CHECK(!tokens.agent_for("SECRET-ONE-0123456789"));
  bool duplicate_refused = false;
  try {
    tokens.add("secret-one-0123456789", "carol");
  } catch (const std::invalid_argument& e) {
    duplicate_refused = true;
    // The message names the agent, never the token.
    CAF_CHECK(std::string{e.what()}.find("secret") == std::string::npos);
  }
  CAF_CHECK(duplicate_refused);
}
