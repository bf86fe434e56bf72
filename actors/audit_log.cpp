// The audit log actor owns the audit file: it appends one JSON line per tools/call decision and
// flushes each, so a crash loses at most the line being written. It runs detached because
// writing blocks on the disk.

#include "actors/spawn.hpp"

#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

#include <fstream>
#include <stdexcept>

namespace offload {

namespace {

struct audit_log_state {
  std::string path;
  std::ofstream out;
  bool failed = false; // a write failed; reported once, not per record

  static constexpr const char* name = "audit_log";
};

audit_log_actor::behavior_type audit_log(audit_log_actor::stateful_pointer<audit_log_state> self,
                                         std::string path, std::shared_ptr<std::ofstream> file) {
  self->state.path = std::move(path);
  self->state.out = std::move(*file);
  return {
      [self](audit_atom, const audit_record& record) {
        auto& st = self->state;
        st.out << render_audit_line(record) << '\n';
        st.out.flush();
        if (!st.out && !st.failed) {
          st.failed = true;
          spdlog::error("audit log {}: write failed; records are being lost", st.path);
        }
      },
  };
}

} // namespace

audit_log_actor spawn_audit_log(caf::actor_system& sys, const std::string& path) {
  // Opened here, before the actor exists, so that a bad path fails the daemon's start-up.
  auto file = std::make_shared<std::ofstream>(path, std::ios::app);
  if (!*file)
    throw std::runtime_error("cannot open the audit log " + path + " for appending");
  return sys.spawn<caf::detached>(audit_log, path, std::move(file));
}

} // namespace offload
