#define CAF_SUITE guards_secrets
#include <caf/test/unit_test.hpp>

#include "protocol/guards.hpp"

#include <cctype>
#include <cstdint>

using namespace offload::guards;

namespace {

// Key-shaped characters from a seeded generator: the test holds no literal that a secret scanner
// would take for a real key. Every string has upper and lower case letters and digits.
std::string fake(size_t length, uint32_t seed,
                 std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
                                             "stuvwxyz0123456789") {
  std::string out = "aZ7";
  while (out.size() < length) {
    seed = seed * 1664525u + 1013904223u;
    out += alphabet[(seed >> 8) % alphabet.size()];
  }
  return out.substr(0, length);
}

std::string upper_digits(size_t length, uint32_t seed) {
  auto out = fake(length, seed, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
  for (auto& c : out)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string pem_body() {
  std::string body;
  for (uint32_t line = 0; line < 4; ++line)
    body += fake(64, line + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") +
            "\n";
  return body;
}

struct redacted {
  std::string text;
  redaction_report report;
};

redacted redact(std::string text) {
  auto report = redact_secrets(text);
  return {std::move(text), std::move(report)};
}

// Checks that `secret` inside `before ... after` becomes one marker of `kind`.
void check_whole(const std::string& secret, std::string_view kind) {
  auto result = redact("before " + secret + " after");
  CAF_CHECK_EQUAL(result.text, "before [REDACTED:" + std::string{kind} + "] after");
  CAF_CHECK_EQUAL(result.report.count, 1u);
  CAF_CHECK_EQUAL(result.report.kinds, std::vector<std::string>{std::string{kind}});
}

// Checks that only `value` inside `prefix value suffix` is replaced.
void check_value(const std::string& prefix, const std::string& value, const std::string& suffix,
                 std::string_view kind) {
  auto result = redact(prefix + value + suffix);
  CAF_CHECK_EQUAL(result.text, prefix + "[REDACTED:" + std::string{kind} + "]" + suffix);
  CAF_CHECK_EQUAL(result.report.count, 1u);
  CAF_CHECK_EQUAL(result.report.kinds, std::vector<std::string>{std::string{kind}});
}

} // namespace

CAF_TEST(provider keys and tokens are replaced whole) {
  check_whole("sk-ant-api03-" + fake(80, 1), "anthropic_api_key");
  check_whole("sk-" + fake(48, 2), "openai_api_key");
  check_whole("sk-proj-" +
                  fake(120, 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              "openai_api_key");
  check_whole("ghp_" + fake(36, 4), "github_token");
  check_whole("gho_" + fake(36, 5), "github_token");
  check_whole("github_pat_" + fake(82, 6), "github_token");
  check_whole("AKIA" + upper_digits(16, 7), "aws_access_key_id");
  check_whole("xoxb-" + fake(12, 8) + "-" + fake(24, 9), "slack_token");
  check_whole("AIza" + fake(35, 10), "google_api_key");
  check_whole("eyJ" + fake(33, 11) + ".eyJ" + fake(40, 12) + "." + fake(43, 13), "jwt");
}

CAF_TEST(private key blocks are replaced whole) {
  for (auto type : {"RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""})
    check_whole(std::string{"-----BEGIN "} + type + "PRIVATE KEY-----\n" + pem_body() +
                    "-----END " + type + "PRIVATE KEY-----",
                "private_key");
  // As a JSON string value, with escaped line breaks.
  std::string escaped = "-----BEGIN PRIVATE KEY-----\\n" + fake(64, 20) + "\\n" + fake(64, 21) +
                        "\\n-----END PRIVATE KEY-----\\n";
  check_value("{\"private_key\": \"", escaped.substr(0, escaped.size() - 2), "\\n\"}",
              "private_key");
  // Cut off before its END line, as in a truncated answer.
  auto result = redact("key:\n-----BEGIN RSA PRIVATE KEY-----\n" + pem_body() + "\nthe end");
  CAF_CHECK_EQUAL(result.text, "key:\n[REDACTED:private_key]\n\nthe end");
}

CAF_TEST(only the value of an assignment header or url is replaced) {
  check_value("aws_secret_access_key = ", fake(40, 30), "\n", "aws_secret_access_key");
  check_value("\"SecretAccessKey\": \"", fake(40, 31), "\"", "aws_secret_access_key");
  check_value("-H 'Authorization: Bearer ", fake(40, 32), "'", "bearer_token");
  check_value("Authorization: Basic ", "dXNlcjpzM2NyM3QtcGFzcw==", "\r\n", "basic_auth");
  check_value("postgres://app:", "S3cr3tPass", "@db.internal:5432/app", "connection_string");
  check_value("DATABASE_URL=mysql://root:", "Tr0ub4dor3", "@127.0.0.1/shop", "connection_string");
  check_value("mongodb+srv://svc:", "Zq8xLp2Vw", "@cluster0.mongodb.net/?retryWrites=true",
              "connection_string");
  check_value("redis://:", "n0tS0Secret", "@cache:6379/0", "connection_string");
  check_value("amqp://guest:", "rabbitPW42", "@mq:5672/", "connection_string");
  check_value("git clone https://deploy:", "t0k3nValue", "@git.example.org/repo.git",
              "url_password");
  check_value("password = \"", "hunter22!", "\"", "password");
  check_value("DB_PASSWORD=", "Tr0ub4dor-3x", "\n", "password");
  check_value("db:\n  password: ", "hunter22x", "\n", "password");
  check_value("api_key: \"", "a8f3k2l9x0q", "\"", "generic_secret");
  check_value("{'client_secret': '", "Zq8-xLp2-Vw9k", "'}", "generic_secret");
  check_value("GET /cb?token=", "abc123xyz789", "&page=2", "generic_secret");
  check_value("$config = ['secret' => '", "m0nkeyBus1ness", "'];", "generic_secret");
  check_value("Server=db;User Id=sa;Password=", "Pa55w0rd!x", ";", "password");
}

CAF_TEST(ordinary code and placeholders are left alone) {
  for (std::string text : {
           "password = input()",
           "api_key = os.environ[\"X\"]",
           "api_key = os.getenv('OPENAI_API_KEY')",
           "token: str",
           "password: string;",
           "def login(password: Optional[str] = None):",
           "api_key = \"<your-key>\"",
           "password = \"xxx\"",
           "password: \"changeme\"",
           "\"password\": \"********\"",
           "api_key = \"YOUR_API_KEY_HERE\"",
           "api_key: \"OPENAI_API_KEY\"",
           "password: ${DB_PASSWORD}",
           "password = None",
           "password = self.password",
           "PWD=/home/alice/project",
           "token_type = \"bearer\"",
           "max_tokens: 4096",
           "\"password\": \"Enter your password\"",
           "password_hint = \"first pet\"",
           "if password == \"secret123\":",
           "AKIAIOSFODNN7EXAMPLE",
           "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
           "<div class=\"sk-loading-spinner-container-large-variant\">",
           "postgres://user:password@localhost/db",
           "redis://localhost:6379/0",
           "Authorization: Bearer ${TOKEN}",
           "Authorization: Bearer <token>",
           "headers = {\"Authorization\": f\"Bearer {token}\"}",
           "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
           "const input = document.getElementById(\"password\");",
       }) {
    auto result = redact(text);
    CAF_CHECK_EQUAL(result.text, text);
    CAF_CHECK_EQUAL(result.report.count, 0u);
  }
}

CAF_TEST(several secrets in one text are all replaced and counted) {
  std::string text = "export GITHUB_TOKEN=ghp_" + fake(36, 40) + "\n" +
                     "url = \"postgres://app:" + fake(12, 41) + "@db/app\"\n" + "jwt: eyJ" +
                     fake(20, 42) + ".eyJ" + fake(20, 43) + "." + fake(20, 44) + "\n" +
                     "password = \"" + fake(14, 45) + "\"\n" + "other = ghp_" + fake(36, 46) + "\n";
  auto result = redact(text);
  CAF_CHECK_EQUAL(result.text, "export GITHUB_TOKEN=[REDACTED:github_token]\n"
                               "url = \"postgres://app:[REDACTED:connection_string]@db/app\"\n"
                               "jwt: [REDACTED:jwt]\n"
                               "password = \"[REDACTED:password]\"\n"
                               "other = [REDACTED:github_token]\n");
  CAF_CHECK_EQUAL(result.report.count, 5u);
  CAF_CHECK_EQUAL(result.report.kinds, (std::vector<std::string>{"github_token", "jwt",
                                                                 "connection_string", "password"}));
}

CAF_TEST(a value replaced by a specific rule is not counted again) {
  auto result =
      redact("OPENAI_API_KEY=sk-" + fake(48, 50) + "\napi_key: \"sk-" + fake(48, 51) + "\"");
  CAF_CHECK_EQUAL(
      result.text,
      "OPENAI_API_KEY=[REDACTED:openai_api_key]\napi_key: \"[REDACTED:openai_api_key]\"");
  CAF_CHECK_EQUAL(result.report.count, 2u);
  CAF_CHECK_EQUAL(result.report.kinds, std::vector<std::string>{"openai_api_key"});
}

CAF_TEST(redacting twice changes nothing more) {
  std::string text = "-----BEGIN EC PRIVATE KEY-----\n" + pem_body() +
                     "-----END EC PRIVATE KEY-----\npassword=" + fake(12, 60) +
                     "\nAuthorization: Bearer " + fake(30, 61) + "\nsecret: '" + fake(16, 62) +
                     "'\nredis://:" + fake(10, 63) + "@cache\nAKIA" + upper_digits(16, 64);
  auto once = redact(text);
  CAF_CHECK_EQUAL(once.report.count, 6u);
  auto twice = redact(once.text);
  CAF_CHECK_EQUAL(twice.text, once.text);
  CAF_CHECK_EQUAL(twice.report.count, 0u);
  CAF_CHECK(twice.report.kinds.empty());
}

CAF_TEST(a mebibyte of output is redacted completely) {
  std::string text;
  size_t planted = 0;
  while (text.size() < (1u << 20)) {
    text += "for (auto& item : items) { total += item.price * item.count; } // token: str\n";
    if (++planted % 100 == 0)
      text += "const key = \"ghp_" + fake(36, static_cast<uint32_t>(planted)) + "\";\n";
  }
  text += "unterminated \"-----BEGIN PRIVATE KEY-----" + std::string(4096, 'A');
  auto result = redact(text);
  CAF_CHECK_EQUAL(result.report.count, planted / 100);
  CAF_CHECK_EQUAL(result.text.find("ghp_"), std::string::npos);
  CAF_CHECK_EQUAL(result.report.kinds, std::vector<std::string>{"github_token"});
}
