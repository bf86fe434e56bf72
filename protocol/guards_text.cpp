// Text helpers of the guards: UTF-8 decoding, the folding of look-alike and invisible characters
// before the injection scan, and log-safe excerpts. See protocol/guards_internal.hpp.

#include "protocol/guards_internal.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>

namespace offload::guards::detail {

std::unique_ptr<re2::RE2> compile(std::string_view pattern) {
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok())
    throw std::logic_error("guards: bad pattern '" + std::string{pattern} + "': " + re->error());
  return re;
}

code_point decode_utf8(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  if (lead < 0x80)
    return {lead, 1};
  size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0;
  if (length == 0 || lead > 0xF4 || i + length > text.size())
    return {-1, 1};
  int32_t value = lead & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80)
      return {-1, 1};
    value = (value << 6) | (byte(i + k) & 0x3F);
  }
  return {value, length};
}

namespace {

bool is_invisible(int32_t cp) {
  return cp == 0x00AD || cp == 0x034F || cp == 0x061C || cp == 0x180E || cp == 0x3164 ||
         cp == 0xFEFF || cp == 0xFFA0 || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x206F) ||
         (cp >= 0xFE00 && cp <= 0xFE0F);
}

bool is_unicode_space(int32_t cp) {
  return cp == 0x0085 || cp == 0x00A0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Cyrillic and Greek letters that look like Latin ones, the classic way to hide a keyword.
char look_alike(int32_t cp) {
  struct entry {
    int32_t cp;
    char ascii;
  };
  static constexpr std::array<entry, 34> table{{
      {0x0391, 'A'}, {0x0392, 'B'}, {0x0395, 'E'}, {0x0397, 'H'}, {0x0399, 'I'}, {0x039A, 'K'},
      {0x039C, 'M'}, {0x039D, 'N'}, {0x039F, 'O'}, {0x03A1, 'P'}, {0x03A4, 'T'}, {0x03A7, 'X'},
      {0x03B1, 'a'}, {0x03B5, 'e'}, {0x03B9, 'i'}, {0x03BD, 'v'}, {0x03BF, 'o'}, {0x0405, 'S'},
      {0x0406, 'I'}, {0x0410, 'A'}, {0x0415, 'E'}, {0x041E, 'O'}, {0x0420, 'P'}, {0x0421, 'C'},
      {0x0430, 'a'}, {0x0435, 'e'}, {0x043E, 'o'}, {0x0440, 'p'}, {0x0441, 'c'}, {0x0443, 'y'},
      {0x0445, 'x'}, {0x0455, 's'}, {0x0456, 'i'}, {0x0458, 'j'},
  }};
  auto it = std::lower_bound(table.begin(), table.end(), cp,
                             [](const entry& e, int32_t value) { return e.cp < value; });
  return it != table.end() && it->cp == cp ? it->ascii : '\0';
}

} // namespace

mapped_text normalise(std::string_view source) {
  mapped_text out;
  out.source_size = source.size();
  bool ascii = std::all_of(source.begin(), source.end(),
                           [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii || source.size() > std::numeric_limits<uint32_t>::max()) {
    out.text.assign(source);
    return out;
  }
  out.text.reserve(source.size());
  out.origin.reserve(source.size());
  for (size_t i = 0; i < source.size();) {
    auto [cp, length] = decode_utf8(source, i);
    char folded = '\0';
    if (cp >= 0 && is_invisible(cp)) {
      i += length;
      continue;
    }
    if (cp >= 0 && is_unicode_space(cp))
      folded = ' ';
    else if (cp == 0x2018 || cp == 0x2019 || cp == 0x201B || cp == 0x2032)
      folded = '\'';
    else if (cp == 0x201C || cp == 0x201D || cp == 0x201F || cp == 0x2033)
      folded = '"';
    else if (cp >= 0xFF01 && cp <= 0xFF5E)
      folded = static_cast<char>(cp - 0xFEE0);
    else if (cp >= 0)
      folded = look_alike(cp);
    if (folded != '\0') {
      out.text += folded;
      out.origin.push_back(static_cast<uint32_t>(i));
    } else {
      out.text.append(source.substr(i, length));
      for (size_t k = 0; k < length; ++k)
        out.origin.push_back(static_cast<uint32_t>(i + k));
    }
    i += length;
  }
  return out;
}

std::string make_excerpt(std::string_view source, size_t begin, size_t end) {
  std::string out;
  bool truncated = false;
  for (size_t i = begin; i < end;) {
    auto [cp, length] = decode_utf8(source, i);
    i += length;
    if (cp >= 0 && (cp <= 0x20 || cp == 0x7F || is_unicode_space(cp))) {
      if (!out.empty() && out.back() != ' ')
        out += ' ';
      continue;
    }
    bool hidden = cp < 0 || is_invisible(cp) || (cp >= 0xE0000 && cp <= 0xE007F);
    size_t width = hidden ? 1 : length;
    if (out.size() + width > max_excerpt_bytes - 3) {
      truncated = true;
      break;
    }
    if (hidden)
      out += '?';
    else
      out.append(source.substr(i - length, length));
  }
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  if (truncated)
    out += "...";
  return out;
}

} // namespace offload::guards::detail
