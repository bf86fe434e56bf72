#pragma once
// The audit log's records (JSON Lines, one per tools/call decision), in the spirit of
// Intercept's tool_call events: who called what, the verdict and the rule, and a SHA-256 of the
// arguments — never the arguments themselves, which may hold code or secrets.

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace offload {

struct audit_record {
  std::chrono::system_clock::time_point time;
  std::string session;
  std::string agent;
  std::string tool;
  bool allowed = true;
  std::string rule;      // the deciding rule when denied
  std::string message;   // the denial message
  std::string args_hash; // sha256_hex of the compact JSON of the arguments
};

// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

// One line of the log (no trailing newline): {"ts","type":"tool_call","session","agent","tool",
// "result":"allowed"|"denied","rule","message","args_hash"}.
std::string render_audit_line(const audit_record& record);

} // namespace offload
