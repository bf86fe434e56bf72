#pragma once
// Logging goes to stderr only: on stdio, stdout carries nothing but protocol.

#include <string>

namespace offload {

// How log lines look. `text` is for people (and switches to journald's form by itself when
// stderr is connected to the journal, as systemd says through $JOURNAL_STREAM); `json` is one
// JSON object per line for log shippers.
enum class log_format { text, json };

// Installs the stderr logger as spdlog's default. Throws std::invalid_argument for an unknown
// level name (trace, debug, info, warn, error, critical, off) or format name (text, json).
void setup_logging(const std::string& level, const std::string& format = "text");

// Changes the level of the logger set up above (a configuration reload). Throws
// std::invalid_argument for an unknown level name.
void set_log_level(const std::string& level);

// Whether stderr is the journal's stream ($JOURNAL_STREAM names stderr's device and inode).
bool stderr_is_journal();

} // namespace offload
