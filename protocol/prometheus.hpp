#pragma once
// Pieces of the Prometheus text exposition format (0.0.4) shared by /metrics and the usage
// ledger's `get_metrics` / `offload stats --format prometheus`. Pure functions.

#include <string>
#include <string_view>

namespace offload::prometheus {

// A label value with backslash, double quote and newline escaped, as the format requires.
std::string escape_label_value(std::string_view text);

// Appends the "# HELP" and "# TYPE" lines that open a metric family.
void append_family_header(std::string& out, std::string_view name, std::string_view type,
                          std::string_view help);

} // namespace offload::prometheus
