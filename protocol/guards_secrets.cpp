// The secret redactor. Each rule is an RE2 plus a check on what it matched; the rules run in a
// fixed order over the whole text, each over the previous one's output, so a value that an
// earlier, more specific rule replaced is not counted again by a generic one. The marker
// "[REDACTED:<kind>]" matches no rule, which keeps redaction idempotent.

#include "protocol/guards.hpp"
#include "protocol/guards_internal.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace offload::guards {

namespace {

using re2::RE2;

constexpr std::string_view marker_prefix = "[REDACTED:";

bool contains_any(std::string_view text, std::initializer_list<std::string_view> needles) {
  return std::any_of(needles.begin(), needles.end(), [&](std::string_view needle) {
    return std::search(text.begin(), text.end(), needle.begin(), needle.end(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == b;
           }) != text.end();
  });
}

bool count_at_least(std::string_view text, int (*predicate)(int), size_t wanted) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [&](char c) {
           return predicate(static_cast<unsigned char>(c)) != 0;
         })) >= wanted;
}

// Documentation and sample configurations are full of stand-ins for secrets; replacing them
// would only hide what the text is about. Needles are lower case.
bool is_placeholder(std::string_view value) {
  if (value.starts_with(marker_prefix))
    return true;
  if (contains_any(value,
                   {"xxxx",     "****",      "....",      "<",           ">",       "${",
                    "{{",       "}}",        "%s",        "%(",          "your",    "example",
                    "changeme", "change_me", "change-me", "placeholder", "replace", "dummy",
                    "redacted", "insert",    "todo",      "fixme"}))
    return true;
  static constexpr std::array<std::string_view, 16> stand_ins{
      "password", "passwd",  "secret", "token",   "none",  "null",   "undefined", "string",
      "test",     "testing", "sample", "default", "empty", "hidden", "required",  "api_key"};
  std::string lower;
  for (char c : value)
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (std::find(stand_ins.begin(), stand_ins.end(), lower) != stand_ins.end())
    return true;
  // "aaaaaaaa", "00000000": one character repeated.
  return std::all_of(value.begin(), value.end(), [&](char c) { return c == value.front(); });
}

// A token of a known shape that is obviously a stand-in ("sk-xxxx...", AWS's EXAMPLE key).
bool is_dummy_token(std::string_view token) {
  return contains_any(token, {"xxxx", "****", "...", "example", "your", "<", ">"});
}

// An unquoted value in code is usually an expression, not a literal: `input()`, `os.environ[..]`,
// `None`, `self.password`, a type (`token: str`) or a path (`PWD=/home/me`).
bool looks_like_code(std::string_view value) {
  if (value.find_first_of("()[]{}<>$%") != std::string_view::npos)
    return true;
  if (value.starts_with('/') || value.starts_with("./") || value.starts_with("../") ||
      value.starts_with("~/"))
    return true;
  bool identifier_like =
      (std::isalpha(static_cast<unsigned char>(value.front())) || value.front() == '_') &&
      std::all_of(value.begin(), value.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
      });
  return identifier_like && (!count_at_least(value, isdigit, 1) ||
                             value.find_first_of("_.") != std::string_view::npos);
}

// The name of an environment variable ("OPENAI_API_KEY") where a value would be.
bool is_variable_name(std::string_view value) {
  return value.find('_') != std::string_view::npos &&
         std::all_of(value.begin(), value.end(), [](char c) {
           return std::isupper(static_cast<unsigned char>(c)) ||
                  std::isdigit(static_cast<unsigned char>(c)) || c == '_';
         });
}

bool accept_token(std::string_view token, std::string_view) {
  return !is_dummy_token(token);
}

// Random keys mix cases and digits; a long kebab-case class name after "sk-" does not.
bool accept_openai_key(std::string_view token, std::string_view whole) {
  return accept_token(token, whole) && count_at_least(token, isdigit, 1) &&
         count_at_least(token, isupper, 1) && count_at_least(token, islower, 1);
}

bool accept_pem(std::string_view block, std::string_view) {
  auto body_begin = block.find("-----", 10); // end of the BEGIN line
  auto body_end = block.find("-----END", body_begin + 5);
  auto body =
      block.substr(body_begin + 5, body_end == std::string_view::npos ? std::string_view::npos
                                                                      : body_end - body_begin - 5);
  return !contains_any(body, {"..."}) &&
         static_cast<size_t>(std::count_if(body.begin(), body.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
         })) >= 64;
}

bool accept_value(std::string_view value, std::string_view) {
  return !is_placeholder(value);
}

bool accept_quoted(std::string_view value, std::string_view) {
  return value.size() >= 6 && !is_placeholder(value) && !is_variable_name(value) &&
         value.find_first_of(" \t") == std::string_view::npos;
}

bool accept_unquoted(std::string_view value, std::string_view) {
  return value.size() >= 8 && !is_placeholder(value) && !looks_like_code(value);
}

std::string_view fixed_kind(std::string_view) {
  return {};
}

std::string_view assignment_kind(std::string_view whole) {
  auto key_end = whole.find_first_of(":=");
  return contains_any(whole.substr(0, key_end), {"pass", "pwd"}) ? "password" : "generic_secret";
}

std::string_view authorization_kind(std::string_view whole) {
  return contains_any(whole, {"basic"}) ? "basic_auth" : "bearer_token";
}

std::string_view url_kind(std::string_view whole) {
  bool database = contains_any(whole.substr(0, whole.find("://")),
                               {"postgres", "mysql", "mariadb", "mongodb", "redis", "amqp", "mssql",
                                "sqlserver", "cockroach"});
  return database ? "connection_string" : "url_password";
}

struct secret_rule {
  std::string_view kind; // empty: decided by kind_of from the whole match
  std::unique_ptr<RE2> regex;
  int group; // the capture that is replaced; 0: the whole match
  bool (*accept)(std::string_view target, std::string_view whole);
  std::string_view (*kind_of)(std::string_view whole) = fixed_kind;
};

// Keys whose value is a secret; the key may carry a prefix ("DB_PASSWORD", "client_secret").
#define SECRET_KEY                                                                                 \
  "([A-Za-z0-9_.-]*(?:password|passwd|passphrase|pwd|secret|api_?key|apikey|api_?secret|"          \
  "access_?token|auth_?token|refresh_?token|secret_?key|token))"

std::vector<secret_rule> build_rules() {
  auto rule = [](std::string_view kind, std::string_view pattern, int group,
                 bool (*accept)(std::string_view, std::string_view),
                 std::string_view (*kind_of)(std::string_view) = fixed_kind) {
    return secret_rule{kind, detail::compile(pattern), group, accept, kind_of};
  };
  std::vector<secret_rule> rules;
  rules.push_back(rule(
      "private_key",
      R"re(-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.)*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)re",
      0, accept_pem));
  // A block cut off before its END line (a truncated answer) still leaks the key.
  rules.push_back(rule(
      "private_key",
      R"re(-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:(?:\r?\n|\\n)(?:[A-Za-z-]+: [^\r\n\\]*|[A-Za-z0-9+/=]{16,}))+)re",
      0, accept_pem));
  rules.push_back(rule("anthropic_api_key", R"re(\bsk-ant-[A-Za-z0-9_-]{20,})re", 0, accept_token));
  rules.push_back(rule("openai_api_key", R"re(\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})re",
                       0, accept_openai_key));
  rules.push_back(rule("github_token",
                       R"re(\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}))re", 0,
                       accept_token));
  rules.push_back(
      rule("aws_access_key_id", R"re(\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)re", 0, accept_token));
  rules.push_back(rule(
      "aws_secret_access_key",
      R"re((?i)\b(?:aws_?secret_?(?:access_?)?key|secret_?access_?key)["']?\s*(?::=|=>|[:=])\s*["']?([A-Za-z0-9/+=]{40,}))re",
      1, accept_value));
  rules.push_back(rule("slack_token", R"re(\bxox[abposr]-[A-Za-z0-9-]{10,})re", 0, accept_token));
  rules.push_back(rule("slack_webhook",
                       R"re(https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,})re", 0,
                       accept_token));
  rules.push_back(rule("google_api_key", R"re(\bAIza[0-9A-Za-z_-]{35})re", 0, accept_token));
  rules.push_back(rule("jwt",
                       R"re(\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*)re", 0,
                       accept_token));
  rules.push_back(rule(
      {},
      R"re((?i)\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:bearer|token|basic)\s+([A-Za-z0-9._~+/=-]{8,}))re",
      1, accept_value, authorization_kind));
  // Only the password of user:password@host goes, so the host stays readable.
  rules.push_back(rule({},
                       R"re((?i)\b[a-z][a-z0-9+.-]{1,20}://[^\s:/?#@"'<>]*:([^\s/?#@"'<>]+)@)re", 1,
                       accept_value, url_kind));
  rules.push_back(rule({},
                       R"re((?i)\b)re" SECRET_KEY R"re(["']?\s*(?::=|=>|[:=])\s*"([^"\r\n]+)")re",
                       2, accept_quoted, assignment_kind));
  rules.push_back(rule({},
                       R"re((?i)\b)re" SECRET_KEY R"re(["']?\s*(?::=|=>|[:=])\s*'([^'\r\n]+)')re",
                       2, accept_quoted, assignment_kind));
  // Unquoted values: .env and ini files, YAML, URLs' query strings, command lines.
  rules.push_back(rule({},
                       R"re((?i)\b)re" SECRET_KEY R"re([\t ]*(?::=|[:=])[\t ]*([^\s"'`,;&]+))re", 2,
                       accept_unquoted, assignment_kind));
  return rules;
}

#undef SECRET_KEY

const std::vector<secret_rule>& rules() {
  static const std::vector<secret_rule> table = build_rules();
  return table;
}

// Applies one rule over the whole text; returns how many values it replaced.
size_t apply(const secret_rule& rule, std::string& text, std::vector<std::string>& kinds) {
  const int groups = rule.group + 1;
  std::vector<re2::StringPiece> match(static_cast<size_t>(groups));
  re2::StringPiece input(text);
  std::string out;
  size_t copied = 0; // text[0, copied) is already in out
  size_t replaced = 0;
  for (size_t from = 0; from <= text.size();) {
    if (!rule.regex->Match(input, from, text.size(), RE2::UNANCHORED, match.data(), groups))
      break;
    auto whole = std::string_view{match[0].data(), match[0].size()};
    auto target = std::string_view{match[static_cast<size_t>(rule.group)].data(),
                                   match[static_cast<size_t>(rule.group)].size()};
    auto whole_end = static_cast<size_t>(whole.data() - text.data()) + whole.size();
    if (target.data() != nullptr && !target.empty() && rule.accept(target, whole)) {
      auto begin = static_cast<size_t>(target.data() - text.data());
      auto kind = rule.kind.empty() ? rule.kind_of(whole) : rule.kind;
      out.append(text, copied, begin - copied);
      out.append(marker_prefix).append(kind).append("]");
      copied = begin + target.size();
      ++replaced;
      if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
        kinds.emplace_back(kind);
    }
    from = std::max(whole_end, static_cast<size_t>(whole.data() - text.data()) + 1);
  }
  if (replaced > 0) {
    out.append(text, copied, std::string::npos);
    text = std::move(out);
  }
  return replaced;
}

} // namespace

redaction_report redact_secrets(std::string& text) {
  redaction_report report;
  for (const auto& rule : rules())
    report.count += apply(rule, text, report.kinds);
  return report;
}

} // namespace offload::guards
