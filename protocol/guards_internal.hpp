#pragma once
// Helpers shared by the guards' sources (protocol/guards.cpp: injection, guards_secrets.cpp:
// redaction, guards_text.cpp: these helpers); not part of the guards' interface.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
} // namespace re2

namespace offload::guards::detail {

// Compiles one of our own patterns. A pattern that does not compile is a bug in this file set,
// so it throws std::logic_error (the first scan in any test then fails loudly).
std::unique_ptr<re2::RE2> compile(std::string_view pattern);

struct code_point {
  int32_t value; // -1: a byte that starts no valid UTF-8 sequence
  size_t length; // bytes it takes, at least 1
};

// The code point whose UTF-8 sequence starts at text[i] (i < text.size()).
code_point decode_utf8(std::string_view text, size_t i);

// Text with a map back to where each of its bytes came from.
struct mapped_text {
  std::string text;
  std::vector<uint32_t> origin; // origin[i]: source offset of text[i]; empty means identity
  size_t source_size = 0;

  size_t source_offset(size_t i) const {
    if (origin.empty())
      return i;
    return i < origin.size() ? origin[i] : source_size;
  }
};

// The text the injection scan reads: invisible characters dropped; Unicode spaces, curly
// quotes, full-width ASCII and Cyrillic/Greek look-alikes of Latin letters folded to ASCII.
// Unicode tag characters are kept (the encoded-payload scan reads them).
mapped_text normalise(std::string_view source);

constexpr size_t max_excerpt_bytes = 80;

// source[begin, end) as one line of at most max_excerpt_bytes that is safe to log: control
// characters and runs of whitespace become one space, invisible characters '?'; "..." marks a cut.
std::string make_excerpt(std::string_view source, size_t begin, size_t end);

} // namespace offload::guards::detail
