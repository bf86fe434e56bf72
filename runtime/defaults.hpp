#pragma once
// Every default limit and timeout, grouped by subsystem, each with the reason for its value.
// Configuration (YAML or flags) overrides them; nothing else hard-codes a number.

#include <chrono>
#include <cstddef>

namespace offload::defaults {

using namespace std::chrono_literals;

// -- batches -------------------------------------------------------------------------------------

// The original server's limit; keeps one call from monopolising the local LLMs.
inline constexpr size_t max_tasks_per_batch = 10;
// A task description is an instruction, not a document; 32 KiB is generous.
inline constexpr size_t max_task_chars = 32 * 1024;
// Context may hold a whole source file; 256 KiB stays well inside local models' windows' reach.
inline constexpr size_t max_context_chars = 256 * 1024;
// A cold model load on a laptop can take a minute; generation of a long answer another few.
inline constexpr auto task_timeout = 300s;
// A batch of 10 sequential tasks must still end in bounded time.
inline constexpr auto batch_timeout = 900s;

// Retries: a busy or restarting local server usually recovers within a second or two; three
// attempts with 0.5 s, 1 s (jittered) between them ride that out without hiding a dead server.
inline constexpr unsigned max_attempts = 3;
inline constexpr auto retry_base_backoff = 500ms;
inline constexpr auto retry_max_backoff = 10s;
inline constexpr double retry_jitter = 0.5;
// An 8k-token context at ~3.5 characters per token, the common default of local coding models.
inline constexpr size_t context_chars = 28 * 1024;
// How often a call that asked for progress hears that its tasks are still generating; well
// under the 60 s after which MCP clients commonly give up on a silent request.
inline constexpr auto progress_heartbeat = 10s;

// -- backends ------------------------------------------------------------------------------------

// Ollama handles one request per model at a time by default (OLLAMA_NUM_PARALLEL=1) but queues
// the rest; 4 in flight keeps a GPU busy without piling requests up in Ollama's own queue.
inline constexpr size_t backend_max_concurrency = 4;
// Waiting requests per backend: 16 full batches' worth; beyond that an agent is better told at
// once that the local LLMs are saturated than left waiting.
inline constexpr size_t backend_max_queue = 160;
// A request that has waited this long for a slot is better done elsewhere (or by the agent).
inline constexpr auto backend_queue_wait = 120s;
// After this long in the queue a batch task goes ahead of newer interactive requests.
inline constexpr auto backend_aging = 10s;
// Loopback or LAN: a connect that takes longer than this will not succeed.
inline constexpr auto connect_timeout = 5s;
// Covers loading a model into memory before the first token.
inline constexpr auto first_token_timeout = 120s;
// A stream that goes silent this long mid-answer is stuck.
inline constexpr auto idle_timeout = 60s;
// Largest response body we accept from an LLM server (a runaway generation).
inline constexpr size_t max_response_bytes = 16 * 1024 * 1024;
// Longest Retry-After we honour: a task's default deadline. A server asking for more is
// misconfigured or down for maintenance, and a longer pause would outlive every waiting task.
inline constexpr auto max_retry_after = 300s;

// -- lifecycle -----------------------------------------------------------------------------------

// On SIGTERM, running batches may finish for this long; systemd's default stop timeout is 90 s,
// so this leaves time to cancel the rest and flush state before SIGKILL.
inline constexpr auto shutdown_grace = 30s;

// How often STATUS= is refreshed for `systemctl status` when no watchdog sets the pace.
inline constexpr auto status_interval = 10s;
// READY=1 waits for the backends' first probes, which the router bounds by probe_timeout; this
// much more covers the router's own scheduling before start-up reports ready regardless.
inline constexpr auto ready_wait_slack = 1s;

// -- routing and health --------------------------------------------------------------------------

// A probe is one small GET; every 10 s notices a server going away or coming back within
// seconds at a negligible cost.
inline constexpr auto health_interval = 10s;
// Models change when someone pulls or deletes one; once a minute keeps the router current
// without chatter (a task for a model no backend is known to have also triggers a refresh).
inline constexpr auto discovery_interval = 60s;
// A health probe or model list from a local server takes milliseconds; 5 s covers a busy one.
inline constexpr auto probe_timeout = 5s;
// A task for an unknown model refreshes the model lists at most this often, so that a model
// pulled outside offload is found quickly, while a mistyped name does not hammer the servers.
inline constexpr auto rediscover_min_interval = 5s;
// Circuit breaker, in the spirit of LiteLLM's cool-downs: five failures in a row, or half of the
// attempts in the last minute once there were ten, mean the server is in trouble rather than
// unlucky; 30 s is long enough for a restarting Ollama and short enough not to waste a GPU box.
inline constexpr unsigned breaker_consecutive_failures = 5;
inline constexpr double breaker_failure_rate = 0.5;
inline constexpr unsigned breaker_min_requests = 10;
inline constexpr auto breaker_window = 60s;
inline constexpr auto breaker_cooldown = 30s;

// -- model management ----------------------------------------------------------------------------

// The original server's default: a preloaded model stays loaded until the server restarts (or
// the next request that sets its own keep_alive).
inline constexpr const char* preload_keep_alive = "-1";
// Loading a large model from a slow disk takes minutes.
inline constexpr auto preload_timeout = 300s;
// Downloading tens of gigabytes over a slow link.
inline constexpr auto pull_timeout = 6h;
// Ollama sends progress several times a second while downloading, but verifies a large layer's
// digest silently.
inline constexpr auto pull_idle_timeout = 300s;
// How often a pull's progress is relayed at most (Ollama reports many times a second).
inline constexpr auto pull_progress_interval = 250ms;

// -- transports ----------------------------------------------------------------------------------

// tools/list page size: every tool fits one page today; the cursor is there for clients that
// page and for catalogues that grow.
inline constexpr size_t tools_page_size = 50;

// Largest JSON-RPC message accepted on stdio; larger lines are rejected, not buffered forever.
inline constexpr size_t max_message_bytes = 4 * 1024 * 1024;

// Streamable HTTP. An agent silent for half an hour has most likely gone without DELETE; one idle
// session costs little, but kept forever they add up.
inline constexpr auto http_session_idle_timeout = 30min;
// Plenty for a team's agents, and a bound on what a runaway client can make the daemon hold.
inline constexpr size_t http_max_sessions = 1024;
// The same bound as one stdio message.
inline constexpr size_t http_max_body_bytes = max_message_bytes;
// An agent rarely runs more than a few batches at once; 32 leaves room without letting one
// session fill the backends' queues.
inline constexpr size_t http_max_inflight_per_session = 32;
// How long a client waits before resuming a broken SSE stream (the SDKs' own default is 1 s).
inline constexpr auto http_sse_retry = 1000ms;
// Events kept per session for Last-Event-ID replay. Streams only break on a network hiccup, and
// a resume comes a retry interval later; 256 events (and at most 4 MiB, a few large batch
// results) cover that with a wide margin.
inline constexpr size_t http_event_buffer = 256;
inline constexpr size_t http_event_buffer_bytes = 4 * 1024 * 1024;
// Reading one request, and how long a kept-alive connection may sit idle; clients reconnect
// cheaply on loopback.
inline constexpr auto http_read_timeout = 60s;
// A client that reads nothing of a response or stream for this long is gone.
inline constexpr auto http_write_timeout = 30s;

// -- policy --------------------------------------------------------------------------------------

// How often the policy file is checked for changes; cheap (one stat), and an edit is in force
// within this delay.
inline constexpr auto policy_poll_interval = 2s;
// A session waits this long for the bucket registry (reservations, counter reads); past it the
// call is refused rather than left hanging (fail closed).
inline constexpr auto policy_reply_timeout = 5s;
// A bucket answers from memory in microseconds; one silent this long is wedged.
inline constexpr auto bucket_reply_timeout = 5s;
// A counter load is one indexed SQLite read, but it may queue behind a write waiting out the
// busy timeout; past this, the calls waiting for the key are refused and the next one retries.
inline constexpr auto store_reply_timeout = 5s;
// Only another process on the same database (a second daemon sharing the state directory) holds
// locks for long; waiting longer would stall every counter's first use behind it.
inline constexpr auto sqlite_busy_timeout = 2000ms;

// -- usage ledger --------------------------------------------------------------------------------

// What a task done locally is compared with by default: the original server's comparison model.
inline constexpr const char* comparison_model = "claude-sonnet-4-5";
// Cloud list prices in USD per million tokens (input, output) as published when this was
// written; `pricing.cloud_prices` replaces or extends them.
struct cloud_list_price {
  const char* model;
  double input_per_1m;
  double output_per_1m;
};
inline constexpr cloud_list_price cloud_list_prices[] = {
    {"claude-sonnet-4-5", 3.0, 15.0},
    {"claude-opus-4", 15.0, 75.0},
    {"claude-haiku-3-5", 0.8, 4.0},
};
// A batch's answer waits until its tasks' records are committed. A commit takes well under a
// millisecond in WAL mode, but may wait out another process's lock (sqlite_busy_timeout); past
// this the batch answers anyway (the ledger is bookkeeping, never a reason to fail work).
inline constexpr auto ledger_sync_timeout = 5s;
// cost_dashboard and get_metrics: a summary is a few scans of the ledger, fast for years of use;
// a ledger silent this long is wedged, and the agent is better told so.
inline constexpr auto ledger_query_timeout = 10s;
// Records held in memory while the disk refuses writes (full, read-only), retried with the next
// write; beyond this the oldest are dropped (and logged) rather than growing without bound.
inline constexpr size_t ledger_max_pending = 10'000;

// -- chaos (fault injection into the daemon itself; off unless configured) -----------------------

// A held-back request: long enough to reorder requests between tasks and let retries and deadlines
// overlap, short enough that a chaos run still finishes its batches in seconds.
inline constexpr auto chaos_delay_min = 10ms;
inline constexpr auto chaos_delay_max = 500ms;

// -- models --------------------------------------------------------------------------------------

// The original server's default coding model.
inline constexpr const char* default_model = "qwen2.5-coder:7b";
inline constexpr const char* default_backend_url = "http://127.0.0.1:11434";

} // namespace offload::defaults
