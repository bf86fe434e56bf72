#pragma once
// Logging goes to stderr only: on stdio, stdout carries nothing but protocol.

#include <string>

namespace offload {

// Installs the stderr logger as spdlog's default. Throws std::invalid_argument for an unknown
// level name (trace, debug, info, warn, error, critical, off).
void setup_logging(const std::string& level);

} // namespace offload
