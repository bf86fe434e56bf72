#pragma once
// Every atom of the project. CAF 0.17 atoms are at most 10 characters and the same text is the
// same type everywhere, so each name here is distinct from CAF's own (get, put, ok, ...).

#include <caf/atom.hpp>

namespace offload {

using mcp_in_atom = caf::atom_constant<caf::atom("mcp_in")>; // transport -> session
inline constexpr mcp_in_atom mcp_in_atom_v{};
using mcp_eof_atom = caf::atom_constant<caf::atom("mcp_eof")>; // transport closed
inline constexpr mcp_eof_atom mcp_eof_atom_v{};
using run_batch_atom = caf::atom_constant<caf::atom("run_batch")>; // session -> coordinator
inline constexpr run_batch_atom run_batch_atom_v{};
using task_done_atom = caf::atom_constant<caf::atom("task_done")>; // task -> coordinator
inline constexpr task_done_atom task_done_atom_v{};
using generate_atom = caf::atom_constant<caf::atom("generate")>; // task -> router -> backend
inline constexpr generate_atom generate_atom_v{};
using http_done_atom = caf::atom_constant<caf::atom("http_done")>; // I/O thread -> backend
inline constexpr http_done_atom http_done_atom_v{};
using route_atom = caf::atom_constant<caf::atom("route")>; // task -> router: pick a backend
inline constexpr route_atom route_atom_v{};
using retry_atom = caf::atom_constant<caf::atom("retry")>; // task -> itself after a backoff
inline constexpr retry_atom retry_atom_v{};
// task -> itself: send the request that chaos held back (delay_message)
using chaos_send_atom = caf::atom_constant<caf::atom("chaos_send")>;
inline constexpr chaos_send_atom chaos_send_atom_v{};
using cancel_atom = caf::atom_constant<caf::atom("cancel")>; // stop a batch, answering for it
inline constexpr cancel_atom cancel_atom_v{};
using sweep_atom = caf::atom_constant<caf::atom("sweep")>; // backend: expire waiting requests
inline constexpr sweep_atom sweep_atom_v{};
using progress_atom = caf::atom_constant<caf::atom("progress")>; // coordinator -> session
inline constexpr progress_atom progress_atom_v{};
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>; // session: periodic tick
inline constexpr heartbeat_atom heartbeat_atom_v{};
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>; // daemon stopping: drain
inline constexpr shutdown_atom shutdown_atom_v{};

using reserve_atom = caf::atom_constant<caf::atom("reserve")>; // take quota from counters
inline constexpr reserve_atom reserve_atom_v{};
using release_atom = caf::atom_constant<caf::atom("release")>; // give quota back (rollback)
inline constexpr release_atom release_atom_v{};
using peek_atom = caf::atom_constant<caf::atom("peek")>; // read counters for state conditions
inline constexpr peek_atom peek_atom_v{};

using new_policy_atom = caf::atom_constant<caf::atom("new_policy")>; // reload: fresh snapshot
inline constexpr new_policy_atom new_policy_atom_v{};
using new_engine_atom = caf::atom_constant<caf::atom("new_engine")>; // reload: fresh settings
inline constexpr new_engine_atom new_engine_atom_v{};

using audit_atom = caf::atom_constant<caf::atom("audit")>; // one audit log record
inline constexpr audit_atom audit_atom_v{};

using counter_load_atom = caf::atom_constant<caf::atom("ctr_load")>; // read a saved counter
inline constexpr counter_load_atom counter_load_atom_v{};
using counter_save_atom = caf::atom_constant<caf::atom("ctr_save")>; // save a counter's state
inline constexpr counter_save_atom counter_save_atom_v{};
using counter_flush_atom = caf::atom_constant<caf::atom("ctr_flush")>; // write queued saves
inline constexpr counter_flush_atom counter_flush_atom_v{};

using ledger_record_atom = caf::atom_constant<caf::atom("ldg_record")>; // one finished task
inline constexpr ledger_record_atom ledger_record_atom_v{};
using ledger_sync_atom = caf::atom_constant<caf::atom("ldg_sync")>; // commit, then answer
inline constexpr ledger_sync_atom ledger_sync_atom_v{};
using ledger_query_atom = caf::atom_constant<caf::atom("ldg_query")>; // usage summary
inline constexpr ledger_query_atom ledger_query_atom_v{};
using ledger_flush_atom = caf::atom_constant<caf::atom("ldg_flush")>; // write queued records
inline constexpr ledger_flush_atom ledger_flush_atom_v{};
// -- routing, health and model management
// ----------------------------------------------------------

using route_done_atom = caf::atom_constant<caf::atom("route_done")>; // task -> router: outcome
inline constexpr route_done_atom route_done_atom_v{};
using router_status_atom = caf::atom_constant<caf::atom("rt_status")>; // backends' state
inline constexpr router_status_atom router_status_atom_v{};
using router_ready_atom = caf::atom_constant<caf::atom("rt_ready")>; // first probes answered
inline constexpr router_ready_atom router_ready_atom_v{};
using rediscover_atom = caf::atom_constant<caf::atom("rediscover")>; // refresh model lists
inline constexpr rediscover_atom rediscover_atom_v{};
using probe_tick_atom = caf::atom_constant<caf::atom("probe_tick")>; // router: health probes
inline constexpr probe_tick_atom probe_tick_atom_v{};
using discover_tick_atom = caf::atom_constant<caf::atom("disc_tick")>; // router: discovery
inline constexpr discover_tick_atom discover_tick_atom_v{};
using cooldown_atom = caf::atom_constant<caf::atom("cooldown")>; // router: breaker cool-down over
inline constexpr cooldown_atom cooldown_atom_v{};
using health_probe_atom = caf::atom_constant<caf::atom("hc_probe")>; // router -> backend
inline constexpr health_probe_atom health_probe_atom_v{};
using list_models_atom = caf::atom_constant<caf::atom("ls_models")>; // router -> backend
inline constexpr list_models_atom list_models_atom_v{};
using loaded_models_atom = caf::atom_constant<caf::atom("ls_loaded")>; // model tool -> backend
inline constexpr loaded_models_atom loaded_models_atom_v{};
using preload_atom = caf::atom_constant<caf::atom("preload")>; // model tool -> backend
inline constexpr preload_atom preload_atom_v{};
using pull_model_atom = caf::atom_constant<caf::atom("pull_model")>; // model tool -> backend
inline constexpr pull_model_atom pull_model_atom_v{};
using pull_progress_atom = caf::atom_constant<caf::atom("pull_prog")>; // backend -> model tool
inline constexpr pull_progress_atom pull_progress_atom_v{};
using admin_done_atom = caf::atom_constant<caf::atom("admin_done")>; // I/O thread -> backend
inline constexpr admin_done_atom admin_done_atom_v{};
using admin_step_atom = caf::atom_constant<caf::atom("admin_step")>; // I/O thread -> backend
inline constexpr admin_step_atom admin_step_atom_v{};
using run_tool_atom = caf::atom_constant<caf::atom("run_tool")>; // session -> model tool
inline constexpr run_tool_atom run_tool_atom_v{};
using tool_progress_atom = caf::atom_constant<caf::atom("tool_prog")>; // model tool -> session
inline constexpr tool_progress_atom tool_progress_atom_v{};

} // namespace offload
