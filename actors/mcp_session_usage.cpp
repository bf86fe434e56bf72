// cost_dashboard and get_metrics: read tools that answer from the usage ledger. They run no task,
// take no backend slot and add nothing to the ledger.

#include "actors/mcp_session_state.hpp"
#include "protocol/mcp.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace offload {

namespace {

json usage_result(const std::string& tool, std::optional<metrics_format> format,
                  const usage_summary& summary) {
  auto structured = render_usage_json(summary);
  if (tool == "cost_dashboard")
    return mcp::tool_result(render_usage_table(summary), false, std::move(structured));
  if (format == metrics_format::prometheus)
    return mcp::tool_result(render_usage_prometheus(summary), false, std::move(structured));
  return mcp::tool_result(structured.dump(2), false, structured);
}

} // namespace

bool is_usage_tool(const std::string& tool) {
  return tool == "cost_dashboard" || tool == "get_metrics";
}

void call_usage_tool(session_pointer self, const json& id, const std::string& tool,
                     const json& args) {
  auto& st = self->state;
  std::string error;
  uint32_t days = 0; // get_metrics counts everything
  std::optional<metrics_format> format;
  if (tool == "cost_dashboard") {
    // The parsers explain every rejection in `error`.
    days = parse_cost_dashboard_args(args, error).value_or(0);
  } else {
    format = parse_get_metrics_args(args, error);
  }
  if (!error.empty()) {
    send_result(self, id,
                mcp::tool_result(fmt::format("Invalid arguments for {}: {}", tool, error), true));
    return;
  }
  if (!st.usage.ledger) {
    send_result(self, id,
                mcp::tool_result(fmt::format("{}: the usage ledger is off (ledger.enabled is "
                                             "false in the configuration), so nothing is recorded",
                                             tool),
                                 true));
    return;
  }
  auto now = st.usage.now ? st.usage.now() : std::chrono::system_clock::now();
  // Counted like a policy check, so that a closing session waits for the answer.
  ++st.pending_checks;
  self->request(st.usage.ledger, defaults::ledger_query_timeout, ledger_query_atom_v,
                usage_window_start_ms(days, now))
      .then(
          [self, id, tool, format](usage_summary& summary) {
            --self->state.pending_checks;
            send_result(self, id, usage_result(tool, format, summary));
            quit_if_done(self);
          },
          [self, id, tool](caf::error& err) {
            --self->state.pending_checks;
            auto failure = from_caf_error(err);
            spdlog::error("session {}: {}: the usage ledger did not answer: {}",
                          self->state.settings.name, tool, failure.message);
            send_result(self, id,
                        mcp::tool_result(fmt::format("{}: the usage ledger could not be read: {}",
                                                     tool, failure.message),
                                         true));
            quit_if_done(self);
          });
}

} // namespace offload
