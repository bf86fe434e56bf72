// The injection guard: five categories after the original claude-token-saver-mcp server, with
// our own patterns. Every pattern is an RE2 (linear time, no backtracking), compiled once.
//
// The scan works on a normalised copy of the text (invisible characters dropped, Unicode
// spaces, quotes, full-width letters and common look-alike letters folded to ASCII) and maps
// every match back to the original for the excerpt. Letter-spaced words are found by a second
// pass over the letters alone; encoded payloads by decoding them and scanning the result.

#include "protocol/guards.hpp"
#include "protocol/guards_internal.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>

namespace offload::guards {

std::optional<guard_mode> parse_guard_mode(std::string_view text) {
  if (text == "off")
    return guard_mode::off;
  if (text == "warn")
    return guard_mode::warn;
  if (text == "block")
    return guard_mode::block;
  return std::nullopt;
}

std::string_view to_string(guard_mode mode) {
  switch (mode) {
  case guard_mode::off:
    return "off";
  case guard_mode::warn:
    return "warn";
  case guard_mode::block:
    return "block";
  }
  return "off";
}

bool should_block(guard_mode mode, const std::vector<injection_finding>& findings) {
  return mode == guard_mode::block &&
         std::any_of(findings.begin(), findings.end(), [](const injection_finding& f) {
           return f.severity == injection_severity::block;
         });
}

std::string describe(const std::vector<injection_finding>& findings) {
  std::string out;
  for (const auto& finding : findings)
    out += (out.empty() ? "" : ", ") + finding.category;
  return out;
}

namespace {

using detail::decode_utf8;
using detail::make_excerpt;
using detail::mapped_text;
using detail::normalise;
using re2::RE2;

// Decoded payloads shorter than this cannot hold a phrase worth rescanning.
constexpr size_t min_payload_chars = 8;

// ---- patterns ---------------------------------------------------------------------------------

// In a phrase pattern a literal space stands for one or more separators: whitespace and the
// markup people wrap words in (*bold*, `code`, ~strike~, quotes), so "ignore **all**\n previous"
// reads as "ignore all previous". Character classes spell a space as \x20.
std::unique_ptr<RE2> phrase(std::string_view pattern) {
  std::string expanded = "(?i)";
  for (char c : pattern)
    expanded += c == ' ' ? std::string_view{R"re([\s*~`"']+)re"} : std::string_view{&c, 1};
  return detail::compile(expanded);
}

#define PERSONA                                                                                    \
  "(?:ai|a\\.i\\.|assistant|chatbot|bot|llm|gpt|dan|model|persona|character|jailbroken|"           \
  "jailbreak|unrestricted|unfiltered|uncensored|evil|rogue)"
#define OVERRIDE_VERB                                                                              \
  "(?:ignor(?:e|ing)|disregard(?:ing)?|forget(?:ting)?|discard(?:ing)?|abandon(?:ing)?)"
#define LIMITS "(?:restrictions|limits|limitations|filters|rules|guidelines|ethics|morals)"

struct category_patterns {
  std::string_view name;
  std::vector<std::unique_ptr<RE2>> regexes;
};

struct pattern_table {
  // direct_override, role_injection, prompt_leak, role_switch: scanned as plain text.
  std::array<category_patterns, 4> plain;
  // direct_override over the letters alone (letter-spaced words).
  std::unique_ptr<RE2> squashed_override;
  // encoding_evasion: runs that decode to printable ASCII, and instructions to decode.
  std::unique_ptr<RE2> hex_escapes, unicode_escapes, html_entities, tag_characters, base64_run;
  std::unique_ptr<RE2> decode_and_follow;
};

std::vector<std::unique_ptr<RE2>> phrases(std::initializer_list<std::string_view> patterns) {
  std::vector<std::unique_ptr<RE2>> out;
  for (auto pattern : patterns)
    out.push_back(phrase(pattern));
  return out;
}

pattern_table build_patterns() {
  pattern_table t;
  t.plain[0] = {
      direct_override,
      phrases({
          R"re(\b)re" OVERRIDE_VERB
          R"re( (?:(?:all|any|every|each|the|of|my|these|those) ){0,3}(?:previous|prior|above|earlier|preceding|foregoing|former|original|initial|system)(?: (?:set|list) of)? (?:instructions?|prompts?|rules|directives?|directions?|orders|guidelines|guardrails|constraints|context)\b)re",
          // "ignore the above and ...": the noun left out.
          R"re(\b)re" OVERRIDE_VERB
          R"re( (?:(?:all|everything|anything) )?(?:(?:of )?the )?(?:above|preceding|foregoing)(?: (?:text|message|content))?(?: (?:and|then|instead)\b|\s*[.,;:!]|\s*$))re",
          R"re(\b)re" OVERRIDE_VERB
          R"re( (?:(?:all|any|of) ){0,2}your (?:(?:previous|prior|earlier|original|initial|current|existing|system|safety) ){0,2}(?:instructions?|prompts?|rules|directives?|guidelines|guardrails|programming|training|restrictions)\b)re",
          R"re(\bforget (?:about )?(?:everything|all|anything) (?:(?:you|i|we) (?:(?:have|were|was|'ve) )?(?:been )?(?:told|said|learned)|above|before|previously|so far)\b)re",
          R"re(\b(?:override|bypass|circumvent) (?:(?:the|your|all|any|of) ){0,2}(?:system|safety|previous|prior|original|initial) (?:prompts?|instructions?|guardrails?|guidelines|filters?|restrictions)\b)re",
          R"re(\b(?:do not|don't|dont|never|stop) follow(?:ing)? (?:(?:the|your|any|these|those|all) ){0,2}(?:previous|prior|above|earlier|original|initial|system) (?:instructions?|rules|prompts?|guidelines)\b)re",
          R"re(\b(?:new|updated|revised|real|actual) (?:system )?instructions?\s*:)re",
          R"re(\byour (?:new|real|true|actual) (?:instructions|task|purpose|goal|objective) (?:is|are)\b)re",
      })};
  t.plain[1] = {
      role_injection,
      phrases({
          R"re(<\|\s*(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|end_of_text|start_header_id|end_header_id|eot_id)\s*\|>)re",
          R"re((?-i:\[/?(?:SYSTEM|System|INST|SYS)\]))re",
          R"re(<<\s*/?\s*SYS\s*>>)re",
          R"re((?m)^[\t\x20>*]*###\s*(?:instruction|system|system prompt)\s*:)re",
          R"re(\b(?:begin|end|start) (?:of )?(?:the )?system (?:prompt|message|instructions)\b)re",
          R"re(</?\s*(?:system[_-]?(?:prompt|message|instructions?)|sys_prompt)\s*>)re",
          R"re((?m)^[\t\x20>*#\[(]*system(?: (?:prompt|message|note|override))?[\t\x20]*[\]):]+[\t\x20]*(?:you (?:are|must|will|should|shall)\b|ignore\b|disregard\b|forget\b|from now on\b|new instructions\b|override\b|act as\b|pretend\b))re",
          R"re(\bsystem override\s*[:!])re",
      })};
  t.plain[2] = {
      prompt_leak,
      phrases({
          R"re(\b(?:show|print|display|reveal|output|repeat|echo|dump|leak|tell|give|recite|share|disclose|expose|list|write out|spell out|type out|paste|send) (?:(?:me|us) )?(?:(?:all|back|verbatim|exactly|of|everything|in|the|contents|text|word|for) ){0,4}your (?:(?:full|entire|exact|complete|original|initial|system|hidden|secret|internal|developer|first) ){0,2}(?:prompts?|instructions|rules|guidelines|directives|system message|pre-?prompt)\b)re",
          R"re(\b(?:reveal|leak|disclose|expose|dump) (?:(?:me|us) )?(?:(?:all|of|the) ){0,2}your (?:(?:full|entire|internal|hidden|secret|system) ){0,2}(?:config|configuration|settings)\b)re",
          R"re(\b(?:print|reveal|repeat|echo|dump|leak|recite|disclose|expose|spell out|type out|write out) (?:(?:me|us) )?(?:(?:all|back|verbatim|the|of|full|entire|exact|complete|contents|text) ){0,3}(?:(?:system|initial|hidden|secret|original|developer) (?:prompts?|instructions|message)|pre-?prompt)\b)re",
          R"re(\bwhat (?:are|is|were|was) your (?:(?:exact|full|original|initial|system|hidden|secret|current) ){0,2}(?:prompts?|instructions|rules|guidelines|directives)\b)re",
          R"re(\b(?:repeat|recite) (?:back )?(?:all|everything|every word|the (?:text|words?|content|messages?|conversation|lines)) (?:above|before|so far|verbatim)\b)re",
      })};
  t.plain[3] = {
      role_switch,
      phrases({
          R"re(\b(?:you(?: are|'re) now|now you(?: are|'re)) (?:(?:a|an|the|my|in|called|named) )?(?:[\w-]+ ){0,2}?)re" PERSONA
          R"re(\b)re",
          R"re(\bfrom now on,? (?:you (?:are|will act|shall act|act|must act|play|will play)|your (?:name|role|persona|identity) is)\b)re",
          R"re(\bpretend (?:that )?you(?: are|'re)\b)re",
          R"re(\b(?:pretend to be|role-?play(?: as)?) (?:(?:a|an|the) )?(?:[\w-]+ ){0,2}?)re" PERSONA
          R"re(\b)re",
          R"re(\b(?:act|behave|respond) as (?:if you (?:are|were) )?(?:(?:a|an|the) )?(?:[\w-]+ ){0,2}?(?:dan|jailbroken|unrestricted|unfiltered|uncensored|evil|rogue)\b)re",
          R"re(\b(?:act|behave) as (?:(?:a|an|the) )?(?:[\w-]+ ){0,2}?(?:ai|assistant|model|chatbot|llm|bot) (?:with (?:no|zero) )re" LIMITS
          R"re(|without (?:any )?)re" LIMITS
          R"re(|(?:that|who) (?:ignores|has no|can do anything))\b)re",
          R"re(\bnew (?:persona|identity|role|character)\s*:)re",
          R"re(\byour (?:new|real|true) (?:role|persona|identity|name) is\b)re",
          R"re(\bdo anything now\b)re",
          R"re(\b(?:enter|enable|activate|switch to|switch into|turn on|you are in) (?:dan|jailbreak|jailbroken) mode\b)re",
      })};
  t.squashed_override = detail::compile(
      "(?:ignore|disregard|forget)(?:all|any|the|your|of)*(?:previous|prior|above|earlier|"
      "preceding)(?:instructions?|prompts?|rules)");
  // Only escapes of printable ASCII (0x20-0x7e): binary data and terminal colours stay quiet.
  t.hex_escapes = detail::compile(R"re((?i)(?:\\x(?:[2-6][0-9a-f]|7[0-9a-e])){4,})re");
  t.unicode_escapes = detail::compile(R"re((?i)(?:\\u00(?:[2-6][0-9a-f]|7[0-9a-e])){4,})re");
  t.html_entities = detail::compile(
      R"re((?i)(?:&#(?:x0*(?:[2-6][0-9a-f]|7[0-9a-e])|0*(?:3[2-9]|[4-9][0-9]|1[01][0-9]|12[0-6]));){4,})re");
  // Unicode tag characters spell invisible ASCII; flag emoji use up to six of them.
  t.tag_characters = detail::compile(R"re([\x{E0000}-\x{E007F}]{7,})re");
  t.base64_run = detail::compile(R"re([A-Za-z0-9+/_-]{24,}={0,2})re");
  t.decode_and_follow = phrase(
      R"re(\b(?:decode|decrypt|unscramble|deobfuscate|rot13|reverse) [^\n]{0,80}?\b(?:and|then) (?:follow|obey|execute|carry out) (?:it|them|this|these|the (?:instructions?|commands?|text|result|message))\b)re");
  return t;
}

#undef PERSONA
#undef LIMITS
#undef OVERRIDE_VERB

const pattern_table& patterns() {
  static const pattern_table table = build_patterns();
  return table;
}

struct span {
  size_t begin = 0;
  size_t end = 0;
};

std::optional<span> find(const RE2& re, std::string_view text, size_t from = 0) {
  re2::StringPiece input(text.data(), text.size());
  re2::StringPiece match;
  if (from > text.size() || !re.Match(input, from, text.size(), RE2::UNANCHORED, &match, 1))
    return std::nullopt;
  auto begin = static_cast<size_t>(match.data() - text.data());
  return span{begin, begin + match.size()};
}

bool is_ascii_letter(char c) {
  auto folded = static_cast<unsigned char>(c) | 0x20;
  return folded >= 'a' && folded <= 'z';
}

// Letters spaced out ("i g n o r e  p r e v i o u s", "i.g.n.o.r.e") read as a phrase once the
// separators are gone. A match counts only if it holds several letters standing alone, which
// ordinary sentences ("git ignore? Previous rules") and identifiers do not.
std::optional<span> find_letter_spaced_override(std::string_view text) {
  constexpr size_t min_lone_letters = 4;
  if (text.size() > std::numeric_limits<uint32_t>::max())
    return std::nullopt; // offsets are 32 bits; no task is anywhere near that size
  std::string letters;
  std::vector<uint32_t> where;
  for (size_t i = 0; i < text.size(); ++i) {
    if (is_ascii_letter(text[i])) {
      letters += static_cast<char>(text[i] | 0x20);
      where.push_back(static_cast<uint32_t>(i));
    }
  }
  auto alone = [&](size_t i) {
    return (i == 0 || !is_ascii_letter(text[i - 1])) &&
           (i + 1 == text.size() || !is_ascii_letter(text[i + 1]));
  };
  size_t from = 0;
  while (auto hit = find(*patterns().squashed_override, letters, from)) {
    size_t lone = 0;
    for (size_t k = hit->begin; k < hit->end; ++k)
      lone += alone(where[k]) ? 1 : 0;
    if (lone >= min_lone_letters)
      return span{where[hit->begin], where[hit->end - 1] + size_t{1}};
    from = hit->begin + 1;
  }
  return std::nullopt;
}

struct plain_hit {
  std::string_view category;
  span where;
};

// At most one hit per plain category, in table order.
std::vector<plain_hit> scan_plain(std::string_view text) {
  std::vector<plain_hit> hits;
  for (const auto& category : patterns().plain) {
    std::optional<span> where;
    for (const auto& re : category.regexes)
      if ((where = find(*re, text)))
        break;
    if (!where && category.name == direct_override)
      where = find_letter_spaced_override(text);
    if (where)
      hits.push_back({category.name, *where});
  }
  return hits;
}

// ---- encoded payloads -------------------------------------------------------------------------

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = static_cast<char>(c | 0x20);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// Decodes a run matched by one of the escape patterns (\xHH, \u00HH, &#xHH; or &#DDD;).
std::string decode_escapes(std::string_view run) {
  std::string out;
  for (size_t i = 0; i < run.size();) {
    int value = 0;
    if (run[i] == '\\') {
      size_t digits = run[i + 1] == 'u' || run[i + 1] == 'U' ? 4 : 2;
      for (size_t k = 0; k < digits; ++k)
        value = value * 16 + hex_value(run[i + 2 + k]);
      i += 2 + digits;
    } else { // &#...;
      size_t semicolon = run.find(';', i);
      bool hex = run[i + 2] == 'x' || run[i + 2] == 'X';
      for (size_t k = i + (hex ? 3 : 2); k < semicolon; ++k)
        value = value * (hex ? 16 : 10) + hex_value(run[k]);
      i = semicolon + 1;
    }
    out += static_cast<char>(value);
  }
  return out;
}

std::string decode_tag_characters(std::string_view run) {
  std::string out;
  for (size_t i = 0; i < run.size();) {
    auto [cp, length] = decode_utf8(run, i);
    i += length;
    if (cp >= 0xE0020 && cp <= 0xE007E)
      out += static_cast<char>(cp - 0xE0000);
  }
  return out;
}

// Standard or URL-safe alphabet; stops at padding. Empty unless the result is printable text.
std::string decode_base64_text(std::string_view run) {
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : run) {
    int value = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '+' || c == '-' ? 62
                : c == '/' || c == '_' ? 63
                                       : -1;
    if (value < 0)
      break;
    bits = (bits << 6) | static_cast<uint32_t>(value);
    if ((count += 6) >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  bool text = std::all_of(out.begin(), out.end(), [](char c) {
    return (c >= 0x20 && c < 0x7F) || c == '\n' || c == '\r' || c == '\t';
  });
  return text ? out : std::string{};
}

// encoding_evasion: blocks when a decoded payload holds an injection of another category,
// otherwise warns about the first suspicious run, if any.
std::optional<injection_finding> scan_encoded(const mapped_text& normal, std::string_view source) {
  const auto& t = patterns();
  std::string payloads; // every decoded payload, one per line, scanned at once
  std::vector<std::pair<size_t, span>> pieces; // (offset in payloads, where in normal.text)
  std::optional<span> suspicious;
  auto collect = [&](const RE2& re, auto decode, bool suspicious_by_itself) {
    // A plain loop: GCC 12 ends a for-condition variable's life before the increment runs.
    size_t from = 0;
    while (auto hit = find(re, normal.text, from)) {
      from = hit->end;
      if (suspicious_by_itself && !suspicious)
        suspicious = hit;
      auto decoded =
          decode(std::string_view{normal.text}.substr(hit->begin, hit->end - hit->begin));
      if (decoded.size() < min_payload_chars)
        continue;
      pieces.emplace_back(payloads.size(), *hit);
      payloads += decoded;
      payloads += '\n';
    }
  };
  collect(*t.hex_escapes, decode_escapes, true);
  collect(*t.unicode_escapes, decode_escapes, true);
  collect(*t.html_entities, decode_escapes, true);
  collect(*t.tag_characters, decode_tag_characters, true);
  collect(*t.base64_run, decode_base64_text, false);
  auto excerpt = [&](span where) {
    return make_excerpt(source, normal.source_offset(where.begin), normal.source_offset(where.end));
  };
  if (auto hits = scan_plain(payloads); !hits.empty()) {
    auto piece = std::upper_bound(pieces.begin(), pieces.end(), hits.front().where.begin,
                                  [](size_t offset, const auto& p) { return offset < p.first; });
    return injection_finding{std::string{encoding_evasion}, excerpt(std::prev(piece)->second),
                             injection_severity::block};
  }
  if (!suspicious)
    suspicious = find(*t.decode_and_follow, normal.text);
  if (suspicious)
    return injection_finding{std::string{encoding_evasion}, excerpt(*suspicious),
                             injection_severity::warn};
  return std::nullopt;
}

} // namespace

std::vector<injection_finding> scan_for_injection(std::string_view text) {
  auto normal = normalise(text);
  auto hits = scan_plain(normal.text);
  auto encoded = scan_encoded(normal, text);
  std::vector<injection_finding> findings;
  for (auto name : {direct_override, role_injection, prompt_leak, encoding_evasion, role_switch}) {
    if (name == encoding_evasion) {
      if (encoded)
        findings.push_back(std::move(*encoded));
      continue;
    }
    for (const auto& hit : hits)
      if (hit.category == name)
        findings.push_back({std::string{name},
                            make_excerpt(text, normal.source_offset(hit.where.begin),
                                         normal.source_offset(hit.where.end)),
                            injection_severity::block});
  }
  return findings;
}

} // namespace offload::guards
