#include "runtime/logging.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace offload {

namespace {

// syslog priority of a level, as journald reads it from a "<N>" line prefix.
int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
  case spdlog::level::trace:
  case spdlog::level::debug:
    return 7;
  case spdlog::level::info:
    return 6;
  case spdlog::level::warn:
    return 4;
  case spdlog::level::err:
    return 3;
  default:
    return 2;
  }
}

// "%J" in a pattern: the "<N>" priority prefix journald understands.
class journal_priority_flag : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    auto text = "<" + std::to_string(syslog_priority(msg.level)) + ">";
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<journal_priority_flag>();
  }
};

// One JSON object per line: {"time","level","logger","msg"}; the message is escaped properly.
class json_line_formatter : public spdlog::formatter {
public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto ms = duration_cast<milliseconds>(msg.time.time_since_epoch()).count();
    nlohmann::json line = {
        {"time_ms", ms},
        {"level", std::string{spdlog::level::to_string_view(msg.level).data(),
                              spdlog::level::to_string_view(msg.level).size()}},
        {"logger", std::string{msg.logger_name.data(), msg.logger_name.size()}},
        {"msg", std::string{msg.payload.data(), msg.payload.size()}},
    };
    auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_line_formatter>();
  }
};

} // namespace

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr || *stream == '\0')
    return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0)
    return false;
  // "<device>:<inode>" of the journal's socket; only trust it if it is really our stderr.
  auto expected = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  return expected == stream;
}

namespace {

spdlog::level::level_enum parse_level(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  // from_str maps unknown names to "off"; only accept "off" when it was asked for.
  if (parsed == spdlog::level::off && level != "off")
    throw std::invalid_argument("unknown log level \"" + level +
                                "\" (use trace, debug, info, warn, error, critical or off)");
  return parsed;
}

} // namespace

void set_log_level(const std::string& level) {
  spdlog::default_logger()->set_level(parse_level(level));
}

void setup_logging(const std::string& level, const std::string& format) {
  auto parsed = parse_level(level);
  if (format != "text" && format != "json")
    throw std::invalid_argument("unknown log format \"" + format + "\" (use text or json)");
  auto logger = spdlog::get("offload");
  if (!logger)
    logger = spdlog::stderr_logger_mt("offload");
  if (format == "json") {
    logger->set_formatter(std::make_unique<json_line_formatter>());
  } else if (stderr_is_journal()) {
    // The journal stamps each line itself; a priority prefix replaces the level name.
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<journal_priority_flag>('J').set_pattern("%J%v");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

} // namespace offload
