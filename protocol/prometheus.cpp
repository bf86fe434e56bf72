#include "protocol/prometheus.hpp"

#include <fmt/format.h>

#include <iterator>

namespace offload::prometheus {

std::string escape_label_value(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void append_family_header(std::string& out, std::string_view name, std::string_view type,
                          std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

} // namespace offload::prometheus
