#pragma once
// The typed interface of every actor in offload: the whole message protocol in one place.
//
//   transport --(mcp_in, line)--> mcp_session --(run_batch)--> batch_coordinator
//   batch_coordinator --spawn+monitor--> task --(route)--> router (supervises the backends)
//   task --monitor, (generate)--> backend --(HTTP via llm_client on the I/O thread)--> (http_done)
//   batch_coordinator --(progress)--> mcp_session
//   batch_coordinator --(ldg_record per finished task, ldg_sync before answering)--> usage_ledger
//   task --(route_done)--> router: how each routed attempt ended (circuit breaker, load)
//   router --(hc_probe, ls_models)--> backend: health probes and model discovery
//   mcp_session --spawn, (run_tool)--> model_tool --(ls_loaded, preload, pull_model)--> backend

#include "actors/atoms.hpp"
#include "actors/messages.hpp"

#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace offload {

// An MCP session: JSON-RPC + MCP lifecycle for one connected agent.
using mcp_session_actor = caf::typed_actor<
    // One complete JSON-RPC text received from the agent.
    caf::reacts_to<mcp_in_atom, std::string>,
    // The transport closed: finish in-flight calls, then quit.
    caf::reacts_to<mcp_eof_atom>,
    // A reloaded policy (null: none) for calls from now on; running calls keep theirs.
    caf::reacts_to<new_policy_atom, policy_ptr>,
    // Reloaded engine settings for calls from now on; running calls keep theirs.
    caf::reacts_to<new_engine_atom, engine_settings_ptr>,
    // Call `call_no` has `done` of `total` tasks finished (sent by its coordinator).
    caf::reacts_to<progress_atom, uint64_t, size_t, size_t>,
    // Call `call_no` (a model tool) made progress: value, total (0: unknown) and a message.
    caf::reacts_to<tool_progress_atom, uint64_t, double, double, std::string>,
    // Internal: periodic progress heartbeat for calls that asked for progress.
    caf::reacts_to<heartbeat_atom, uint64_t>,
    // The daemon is stopping: cancel running calls (each still gets its result), then quit.
    caf::reacts_to<shutdown_atom>>;

// Runs one batch_offload / offload_work call and answers exactly once.
using batch_coordinator_actor = caf::typed_actor<
    // Start the batch; the reply comes when every task has an outcome.
    caf::replies_to<run_batch_atom>::with<batch_result>,
    // A task actor reports its outcome (sent by the task itself just before it quits).
    caf::reacts_to<task_done_atom, task_result>,
    // Stop now: unfinished tasks are reported `cancelled` in the (one) answer to run_batch.
    caf::reacts_to<cancel_atom>>;

// Owns one LLM endpoint: its HTTP client, concurrency slots and a queue that is fair between
// sessions (round-robin), puts interactive requests first, ages waiting ones, and is bounded.
using backend_actor = caf::typed_actor<
    // Generate a completion, waiting for a free slot when all are busy.
    caf::replies_to<generate_atom, llm_request_ptr>::with<llm_reply>,
    // Internal: the I/O thread finished exchange `id`.
    caf::reacts_to<http_done_atom, uint64_t, llm_outcome>,
    // Internal: fail requests that waited longer than the wait budget.
    caf::reacts_to<sweep_atom>,
    // Probe the endpoint's health (Ollama: /api/version; OpenAI-compatible: /health).
    caf::replies_to<health_probe_atom>::with<admin_result>,
    // The models the endpoint has (Ollama: /api/tags; OpenAI-compatible: /v1/models).
    caf::replies_to<list_models_atom>::with<admin_result>,
    // The models loaded in memory (Ollama's /api/ps).
    caf::replies_to<loaded_models_atom>::with<admin_result>,
    // Load `model` and keep it loaded for `keep_alive` (empty: the configured or default value).
    caf::replies_to<preload_atom, std::string, std::string>::with<admin_result>,
    // Download `model`; the requester hears (pull_progress, update) while it runs.
    caf::replies_to<pull_model_atom, std::string>::with<admin_result>,
    // Internal: the I/O thread finished management request `id`, or a pull made progress.
    caf::reacts_to<admin_done_atom, uint64_t, admin_result>,
    caf::reacts_to<admin_step_atom, uint64_t, pull_update>>;

// The backend a task should use, as chosen by the router.
struct route {
  backend_actor backend;
  std::string name;
  // The model to ask for: the task's, with an alias or an empty name resolved.
  std::string model;
  // The router's number of the backend, for the attempt's (route_done) report.
  uint32_t backend_id = 0;
};

// A backend's circuit breaker: closed (in use), open (avoided after failures, until a cool-down
// passes) or half-open (on trial: the next outcome or health probe decides).
enum class breaker_state : uint8_t { closed, open, half_open };

// What the router knows about one backend, for status pages, metrics and the model tools.
struct backend_status {
  std::string name;
  std::string kind; // "ollama" or "openai"
  backend_actor handle;
  breaker_state breaker = breaker_state::closed;
  probe_status health = probe_status::up;
  // Whether `models` is known (configured or discovered); when not, the backend is tried for
  // any model no other backend has.
  bool models_known = false;
  std::vector<std::string> models;
  size_t outstanding = 0; // attempts routed to it that have not reported yet
  uint64_t restarts = 0;
  uint64_t breaker_opened = 0; // times its breaker opened
  uint64_t successes = 0;
  uint64_t failures = 0; // outcomes that counted against it
};

struct router_status {
  std::vector<backend_status> backends;
  std::string default_model;
  std::map<std::string, std::string> aliases;
};

// Supervises the backends (restarting any that dies), knows which models each serves, probes
// their health, keeps a circuit breaker per backend, and picks one for each task.
using router_actor = caf::typed_actor<
    // Which backend should serve `model` for this attempt.
    caf::replies_to<route_atom, std::string, route_hint>::with<route>,
    // How an attempt routed earlier ended (exactly one report per route answered).
    caf::reacts_to<route_done_atom, attempt_report>,
    // Every backend's state.
    caf::replies_to<router_status_atom>::with<router_status>,
    // Every backend's state, once the first round of health probes and model discoveries has
    // answered or timed out (at once when both are off): the daemon's readiness waits for it.
    caf::replies_to<router_ready_atom>::with<router_status>,
    // Ask backend `name` (empty: every backend) for its models now, e.g. after a pull.
    caf::reacts_to<rediscover_atom, std::string>,
    // Internal: periodic health probes and model discovery (tick `generation`).
    caf::reacts_to<probe_tick_atom, uint64_t>, caf::reacts_to<discover_tick_atom, uint64_t>,
    // Internal: the cool-down of backend `id`'s breaker, opened as `epoch`, is over.
    caf::reacts_to<cooldown_atom, uint32_t, uint64_t>>;

// Runs one model-management tool call (list_loaded_models, preload_model, pull_model) against
// the backends and answers once with the MCP tool result.
using model_tool_actor = caf::typed_actor<
    // Run the call; the answer is the tools/call result (content, isError, structuredContent).
    caf::replies_to<run_tool_atom>::with<tool_answer>,
    // Internal: a pull the call started made progress.
    caf::reacts_to<pull_progress_atom, pull_update>,
    // Stop now (the daemon is stopping): answer with what is known.
    caf::reacts_to<cancel_atom>>;

// One policy counter (one key: tool or _global, counter name, scope suffix). Serialises every
// reservation on it, so concurrent calls can never overshoot its limit.
using rate_limit_bucket_actor = caf::typed_actor<
    // Take `amount` if value + amount <= limit in the current window.
    caf::replies_to<reserve_atom, int64_t, int64_t>::with<bucket_verdict>,
    // Give back quota taken earlier (ignored when its window has passed).
    caf::reacts_to<release_atom, held_quota>,
    // The counter's value in the current window.
    caf::replies_to<peek_atom>::with<int64_t>>;

// Owns the buckets (spawned on first use, one per key) and runs a call's reservations in order,
// rolling back earlier ones when a later one is refused.
using bucket_registry_actor = caf::typed_actor<
    // Reserve every counter of one call, all or nothing.
    caf::replies_to<reserve_atom, std::vector<counter_reservation>>::with<reservation_outcome>,
    // Give back a call's quota (its upstream answered a JSON-RPC error).
    caf::reacts_to<release_atom, std::vector<held_quota>>,
    // Current values of the given counters (for state.* conditions), in order; windows come from
    // the policy (a counter never used reads its saved value, or 0).
    caf::replies_to<peek_atom, std::vector<std::string>>::with<std::vector<int64_t>>>;

// Appends audit records to a JSON Lines file; detached, since it blocks on the disk.
using audit_log_actor = caf::typed_actor<
    // One tools/call decision.
    caf::reacts_to<audit_atom, audit_record>>;

// Owns the SQLite database (WAL) of the policy counters, so that they survive restarts. Detached,
// since SQLite blocks on the disk.
using counter_store_actor = caf::typed_actor<
    // The state saved for a counter key, if any (read by the registry before spawning its bucket).
    caf::replies_to<counter_load_atom, std::string>::with<std::optional<saved_counter>>,
    // Replace a key's saved state (sent by its bucket after every change; failures are logged).
    caf::reacts_to<counter_save_atom, std::string, saved_counter>,
    // Internal: write the saves queued so far in one transaction.
    caf::reacts_to<counter_flush_atom>>;

// Runs a function at a fixed interval on the actor system's own scheduler; the systemd watchdog
// ping rides on it, so a wedged scheduler stops the pings and systemd restarts the daemon.
using pulse_actor = caf::typed_actor<
    // Internal: the next beat.
    caf::reacts_to<heartbeat_atom, uint64_t>>;
// Owns the usage ledger, the SQLite database (WAL) in which every finished task is recorded.
// Detached, since SQLite blocks on the disk.
using usage_ledger_actor = caf::typed_actor<
    // One finished task (sent by its coordinator); written with the next flush.
    caf::reacts_to<ledger_record_atom, usage_record>,
    // Answers once every record received before is committed: true, or false when writing
    // failed (the records are kept and retried).
    caf::replies_to<ledger_sync_atom>::with<bool>,
    // The summary of the records from `since_ms` on (epoch ms; 0: all), pending ones included.
    caf::replies_to<ledger_query_atom, int64_t>::with<usage_summary>,
    // Internal: write the records received so far in one transaction.
    caf::reacts_to<ledger_flush_atom>>;

} // namespace offload

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::route)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(offload::router_status)
