#pragma once
// The guards of the batch engine: a prompt-injection check on each task's input and a secret
// redactor for every tool's output text. Both are pure functions over text, deterministic and
// linear in the input (RE2, compiled once per process). docs/guards.md explains the categories,
// the secret kinds and what is deliberately left alone.
//
// The injection categories follow the original claude-token-saver-mcp server (direct override,
// role injection, prompt leak, encoding evasion, role switch); the patterns are our own and
// narrower where the original flagged ordinary coding requests (e.g. "act as a linter").

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload::guards {

// What the daemon does with injection findings: nothing (off), log them and run the task
// (warn), or refuse the task with errc::prompt_injection (block).
enum class guard_mode : uint8_t { off, warn, block };

// "off" | "warn" | "block" (exactly, lower case); anything else is nullopt.
std::optional<guard_mode> parse_guard_mode(std::string_view text);
std::string_view to_string(guard_mode mode);

// The stable category names a finding carries (also shown to agents and in logs).
inline constexpr std::string_view direct_override = "direct_override";
inline constexpr std::string_view role_injection = "role_injection";
inline constexpr std::string_view prompt_leak = "prompt_leak";
inline constexpr std::string_view encoding_evasion = "encoding_evasion";
inline constexpr std::string_view role_switch = "role_switch";

// As in the original, escape sequences alone only warn (code is full of them); an encoded
// payload that decodes to an injection blocks like the injection itself.
enum class injection_severity : uint8_t { warn, block };

struct injection_finding {
  std::string category; // one of the names above
  std::string excerpt;  // at most 80 bytes of the matched text, one line, no control characters
  injection_severity severity = injection_severity::block;
};

// Scans one text (a task's instruction or its context). At most one finding per category, in
// the order of the names above. Case-insensitive; zero-width characters, Unicode spaces,
// full-width letters, common Cyrillic/Greek look-alikes and letter-spaced words ("i g n o r e")
// do not hide a phrase.
std::vector<injection_finding> scan_for_injection(std::string_view text);

// Whether a task with these findings must be refused: mode block and at least one finding of
// severity block.
bool should_block(guard_mode mode, const std::vector<injection_finding>& findings);

// "direct_override, role_switch": the categories of the findings, for messages and logs.
std::string describe(const std::vector<injection_finding>& findings);

struct redaction_report {
  size_t count = 0;               // secrets replaced
  std::vector<std::string> kinds; // their kinds, each once, in a fixed order
};

// Replaces each secret in `text` with "[REDACTED:<kind>]" and reports what it did. Tokens of a
// known shape (API keys, JWTs, PEM private keys) are replaced whole; in assignments,
// Authorization headers and URLs only the secret value is, so the text stays readable.
// Idempotent: redacting the result again changes nothing.
redaction_report redact_secrets(std::string& text);

} // namespace offload::guards
