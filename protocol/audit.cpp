#include "protocol/audit.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <openssl/evp.h>

#include <stdexcept>

namespace offload {

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i)
    out += fmt::format("{:02x}", digest[i]);
  return out;
}

std::string render_audit_line(const audit_record& record) {
  auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(record.time);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(record.time - seconds);
  nlohmann::json line = {
      {"ts", fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", seconds, millis.count())},
      {"type", "tool_call"},
      {"session", record.session},
      {"agent", record.agent},
      {"tool", record.tool},
      {"result", record.allowed ? "allowed" : "denied"},
      {"args_hash", record.args_hash},
  };
  if (!record.allowed) {
    line["rule"] = record.rule;
    line["message"] = record.message;
  }
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace offload
