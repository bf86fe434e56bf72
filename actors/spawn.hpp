#pragma once
// Settings and spawn functions of every actor. The runtime builds settings from configuration and
// passes them as immutable snapshots (shared_ptr<const ...>), replaced on reload.

#include "actors/actors.hpp"
#include "actors/sqlite_db.hpp"
#include "protocol/chaos.hpp"
#include "protocol/guards.hpp"
#include "protocol/model_tools.hpp"
#include "runtime/defaults.hpp"
#include "runtime/metrics.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace offload {

// How failed requests are retried: jittered exponential backoff, bounded.
struct retry_settings {
  uint32_t max_attempts = defaults::max_attempts; // 1 = no retries
  std::chrono::milliseconds base_backoff = defaults::retry_base_backoff;
  std::chrono::milliseconds max_backoff = defaults::retry_max_backoff;
  // Fraction of each backoff that is random (0: exact exponential delays, used by tests).
  double jitter = defaults::retry_jitter;

  friend bool operator==(const retry_settings&, const retry_settings&) = default;
};

// What the batch engine needs to know; one snapshot is shared by all sessions.
struct engine_settings {
  std::string default_model = defaults::default_model;
  std::chrono::milliseconds task_timeout = defaults::task_timeout;
  std::chrono::milliseconds batch_timeout = defaults::batch_timeout;
  batch_limits limits{defaults::max_tasks_per_batch, defaults::max_task_chars,
                      defaults::max_context_chars, 256};
  retry_settings retry;
  // How much text fits a model's context window, in characters (compress_context cuts its input
  // to this); per model, with a default for models not listed.
  size_t default_context_chars = defaults::context_chars;
  std::map<std::string, size_t> context_chars;
  // Seed of the retry jitter; runs with the same seed back off identically.
  uint64_t seed = 0;
  // How often a call that asked for progress hears that its tasks are still generating.
  std::chrono::milliseconds progress_heartbeat = defaults::progress_heartbeat;
  // tools/list returns at most this many tools per page (with a cursor for the rest).
  size_t tools_page_size = defaults::tools_page_size;
  // On shutdown, running calls may finish for this long before they are cancelled.
  std::chrono::milliseconds shutdown_grace = defaults::shutdown_grace;
  // Guards: the prompt-injection check of each task's input, and secret redaction of answers.
  guards::guard_mode injection_guard = guards::guard_mode::block;
  bool redact_secrets = true;
  // Where task outcomes and in-flight calls are counted for /metrics; null: not counted.
  std::shared_ptr<metrics::registry> metrics;
  // A fixture profile (only "conformance": the official MCP conformance suite's test tools,
  // resources and prompts); empty in production.
  std::string profile;
  // Faults injected on purpose (off by default): tasks kill themselves while their first request
  // runs (kill_task) and hold their requests back (delay_message); counted in `metrics`.
  chaos::settings chaos;
};

// Wall-clock source of the policy counters' windows (UTC-aligned) and of the usage ledger's
// records; injected in tests.
using wall_clock = std::function<std::chrono::system_clock::time_point()>;

// -- usage ledger --------------------------------------------------------------------------------

// What a session needs to record the tasks its calls finish. Without a ledger nothing is recorded.
struct usage_context {
  usage_ledger_actor ledger;
  std::string run_id;     // this daemon process: call numbers start again in every run
  price_table_ptr prices; // what a task saved; null: nothing
  wall_clock now;         // the records' time; empty: the system clock
};

// Whose call a batch is, for its tasks' records.
struct call_usage {
  usage_context usage;
  std::string session;
  std::string agent;
  uint64_t call_no = 0;
};

// -- batch engine --------------------------------------------------------------------------------

// Told after every task outcome: `done` of `total` tasks have finished. Runs on the coordinator.
using progress_fn = std::function<void(size_t done, size_t total)>;

// With a ledger in `usage`, each task's record is sent as the task finishes, and the answer waits
// until they are committed (so a delivered result is always in the ledger).
batch_coordinator_actor spawn_batch_coordinator(caf::actor_system& sys, batch_spec_ptr spec,
                                                router_actor router, engine_settings_ptr settings,
                                                std::string trace_id, progress_fn progress = {},
                                                call_usage usage = {});

// How long a task may take, counted from its start (queueing included).
struct task_deadline {
  std::chrono::milliseconds timeout;
  bool set_by_batch = false; // cut short by the batch deadline rather than the task timeout
};

// One task of a batch. Reports (task_done, result) to `coordinator` exactly once, then quits.
// `previous` is the previous task's successful answer in a sequential batch, or null.
caf::actor spawn_task(caf::actor_system& sys, batch_coordinator_actor coordinator,
                      batch_spec_ptr spec, size_t index,
                      std::shared_ptr<const std::string> previous, router_actor router,
                      engine_settings_ptr settings, task_deadline deadline, std::string trace_id);

// -- backends ------------------------------------------------------------------------------------

// A running HTTP exchange that can be aborted.
class llm_exchange {
public:
  virtual ~llm_exchange() = default;
  // Aborts the exchange; its completion callback still runs once (with errc::cancelled).
  virtual void cancel() = 0;
};

// Speaks one LLM server's wire format over HTTP. Implemented in runtime/ (Beast); tests inject
// fakes. `start` must not block; `done` runs exactly once, on an I/O thread.
class llm_client {
public:
  virtual ~llm_client() = default;
  virtual std::shared_ptr<llm_exchange> start(llm_request_ptr request,
                                              std::function<void(llm_outcome)> done) = 0;
};

struct backend_settings {
  std::string name; // shown in results and logs, e.g. "ollama@127.0.0.1:11434"
  size_t max_concurrency = defaults::backend_max_concurrency;
  // Requests allowed to wait for a slot; one more fails at once with queue_full.
  size_t max_queue = defaults::backend_max_queue;
  // How long a request may wait for a slot before it fails with queue_full.
  std::chrono::milliseconds queue_wait = defaults::backend_queue_wait;
  // A batch request that has waited this long is served like an interactive one.
  std::chrono::milliseconds aging = defaults::backend_aging;
  // This backend's latency histogram and queue gauge in /metrics; null: not measured.
  metrics::backend_metrics* metrics = nullptr;
  // Chaos (off by default): with probability chaos.crash_backend the actor crashes as it accepts
  // a request, counted in `chaos_crashes` (may be null).
  chaos::settings chaos{};
  metrics::counter* chaos_crashes = nullptr;
};

// The management side of one endpoint: health, the models it has, loading and downloading
// models. Implemented over HTTP in runtime/; tests inject fakes. No call may block; each calls
// `done` exactly once, on any thread, and returns a handle that aborts it (then `done` gets
// errc::cancelled). Operations a server kind cannot do answer with an error saying so.
class endpoint_admin {
public:
  using done_fn = std::function<void(admin_result)>;
  virtual ~endpoint_admin() = default;
  // `health` is up, loading (llama.cpp's 503 while it loads) or down (with the error).
  virtual std::shared_ptr<llm_exchange> probe(done_fn done) = 0;
  // The model names the server has, in `models`.
  virtual std::shared_ptr<llm_exchange> list_models(done_fn done) = 0;
  // The models in memory, in `loaded`.
  virtual std::shared_ptr<llm_exchange> loaded_models(done_fn done) = 0;
  // Loads `model`; `detail` says which keep_alive was used.
  virtual std::shared_ptr<llm_exchange> preload(std::string model, std::string keep_alive,
                                                done_fn done) = 0;
  // Downloads `model`, calling `progress` (on the same thread as `done`) as it proceeds.
  virtual std::shared_ptr<llm_exchange>
  pull(std::string model, std::function<void(pull_update)> progress, done_fn done) = 0;
};

// `admin` may be null: the backend then reports itself up and knows no models.
backend_actor spawn_backend(caf::actor_system& sys, backend_settings settings,
                            std::shared_ptr<llm_client> client,
                            std::shared_ptr<endpoint_admin> admin = nullptr);

// How the router (re)starts one backend and what it knows of it beforehand: a name, a spawn
// function it calls again whenever the backend dies, and the models it serves.
struct backend_spec {
  std::string name;
  std::function<backend_actor(caf::actor_system&)> spawn;
  std::string kind = "ollama"; // "ollama" or "openai": which model tools it supports
  // Models it serves according to the configuration, in addition to those it reports.
  std::vector<std::string> models;
  // Whether to ask the server which models it has (router_settings::discovery_interval).
  bool discover = true;
  // Requests it runs at once; least-loaded routing compares load relative to it.
  size_t max_concurrency = 1;
  // Where the router shows its health, breaker and restarts in /metrics; null: not shown.
  metrics::backend_metrics* metrics = nullptr;
};

// A spec that spawns a real backend actor with these settings, client and admin.
backend_spec make_backend_spec(backend_settings settings, std::shared_ptr<llm_client> client,
                               std::shared_ptr<endpoint_admin> admin = nullptr);

// -- routing -------------------------------------------------------------------------------------

// When a backend's breaker opens: after `consecutive_failures` failed attempts in a row, or when
// at least `min_requests` attempts in the last `window` failed at `failure_rate` or more. It
// stays open for `cooldown`, then lets a trial through (half-open): a health probe is sent at
// once, and the first outcome (probe or attempt) closes it again or reopens it.
struct breaker_settings {
  uint32_t consecutive_failures = defaults::breaker_consecutive_failures;
  double failure_rate = defaults::breaker_failure_rate;
  uint32_t min_requests = defaults::breaker_min_requests;
  std::chrono::milliseconds window = defaults::breaker_window;
  std::chrono::milliseconds cooldown = defaults::breaker_cooldown;

  friend bool operator==(const breaker_settings&, const breaker_settings&) = default;
};

// How the router picks among the healthy backends that serve a model.
enum class routing_strategy : uint8_t {
  least_loaded, // fewest attempts in flight (ties rotate)
  round_robin,  // in turn
  ordered,      // the first in configuration order; the others are fallbacks
};

std::optional<routing_strategy> parse_routing_strategy(std::string_view name);
std::string_view to_string(routing_strategy strategy);

struct router_settings {
  routing_strategy strategy = routing_strategy::least_loaded;
  // The model of a task that names none (tasks normally arrive with the engine's default).
  std::string default_model = defaults::default_model;
  // Other names for models, e.g. "fast" -> "llama3.2:3b" (one level: a target is a real name).
  std::map<std::string, std::string> aliases;
  // Period of the health probes and of the model discovery; zero turns either off (then a
  // backend without configured models is tried for any model).
  std::chrono::milliseconds health_interval = defaults::health_interval;
  std::chrono::milliseconds discovery_interval = defaults::discovery_interval;
  // How long the router waits for one probe or model list.
  std::chrono::milliseconds probe_timeout = defaults::probe_timeout;
  // A task for an unknown model refreshes the model lists at most this often.
  std::chrono::milliseconds rediscover_min_interval = defaults::rediscover_min_interval;
  breaker_settings breaker;
};

router_actor spawn_router(caf::actor_system& sys, std::vector<backend_spec> backends,
                          router_settings settings = {});

// Whether an attempt that ended with `code` says something is wrong with the backend (and so
// counts towards opening its breaker). Client errors (unknown model, prompt too long), our own
// deadline and cancellations say nothing about it.
bool counts_against_backend(errc code);

// -- policy --------------------------------------------------------------------------------------

// `window` decides how the bucket counts: fixed UTC-aligned windows or a rolling window.
rate_limit_bucket_actor spawn_rate_limit_bucket(caf::actor_system& sys, std::string key,
                                                counter_window window, wall_clock now);

bucket_registry_actor spawn_bucket_registry(caf::actor_system& sys, wall_clock now);

// The same, with counters that persist: the registry loads a key's saved state from `store`
// before spawning its bucket (holding back that key's reservations meanwhile), and every bucket
// saves its state there after each change. A null `store` keeps the counters in memory only.
bucket_registry_actor spawn_bucket_registry(caf::actor_system& sys, wall_clock now,
                                            counter_store_actor store);

// A bucket that starts from `saved` (ignored when it was counted in another window, or its fixed
// window has passed) and sends its state to `store` (if set) after every change.
rate_limit_bucket_actor spawn_rate_limit_bucket(caf::actor_system& sys, std::string key,
                                                counter_window window, wall_clock now,
                                                std::optional<saved_counter> saved,
                                                counter_store_actor store);

// What a saved counter reads at `now` in the window it was saved with: 0 once its fixed window
// has passed; a rolling window counts only the grants still inside it.
int64_t saved_counter_value(const saved_counter& saved, std::chrono::system_clock::time_point now);

// -- counter persistence -------------------------------------------------------------------------

// The SQLite layer of the counter_store actor, usable (and tested) without an actor. One
// connection, in WAL mode, with a busy timeout; table
// counters(key TEXT PRIMARY KEY, window TEXT, window_id INTEGER, value INTEGER, entries TEXT),
// where `entries` holds a rolling window's grants as JSON. Not thread-safe: one owner at a time.
class counter_db {
public:
  // Opens or creates the database; throws std::runtime_error naming `path` when it cannot.
  counter_db(std::string path, std::chrono::milliseconds busy_timeout);
  ~counter_db();
  counter_db(const counter_db&) = delete;
  counter_db& operator=(const counter_db&) = delete;

  // The state saved for `key`; nullopt when there is none, or when the row cannot be understood
  // (logged: the counter then starts from 0). Throws std::runtime_error on SQLite errors.
  std::optional<saved_counter> load(const std::string& key);

  // Inserts or replaces every state in one transaction (all or none). Throws on SQLite errors.
  void save(const std::map<std::string, saved_counter>& states);

  const std::string& path() const { return db_.path(); }

private:
  sqlite_connection db_;
  sqlite_statement select_; // load
  sqlite_statement upsert_; // save
};

// Tests run the stores on the deterministic test scheduler; everything else runs them detached.
enum class store_threading { detached, scheduled };
using counter_store_threading = store_threading;

// Opens the counter database at `path` (created if missing; its directory must exist) and spawns
// the actor owning it. Throws std::runtime_error naming the path when it cannot be opened.
counter_store_actor
spawn_counter_store(caf::actor_system& sys, const std::string& path,
                    counter_store_threading threading = counter_store_threading::detached);

// -- lifecycle -----------------------------------------------------------------------------------

// Calls `beat` now and then every `interval` until the actor is stopped.
pulse_actor spawn_pulse(caf::actor_system& sys, std::chrono::milliseconds interval,
                        std::function<void()> beat);
// Opens the usage ledger at `path` (created if missing; its directory must exist) and spawns the
// actor owning it. Throws std::runtime_error naming the path when it cannot be opened.
usage_ledger_actor spawn_usage_ledger(caf::actor_system& sys, const std::string& path,
                                      store_threading threading = store_threading::detached);

// -- sessions ------------------------------------------------------------------------------------

// Where a session's outgoing JSON-RPC texts go (one complete message per call). Thread-safe.
// `related` is the compact JSON text of the client request's id that the message answers or
// belongs to (its response, its progress and log notifications), or empty for a message of the
// session as a whole; the HTTP transport uses it to pick the stream, stdio ignores it.
using output_sink = std::function<void(std::string text, const std::string& related)>;

struct session_settings {
  std::string name;           // for logs: "stdio" or a session id
  std::string server_version; // reported in initialize
  std::string agent;          // authenticated identity for policy scopes; empty: anonymous
};

// What a session needs to enforce a policy. Without a policy every call is allowed.
struct policy_context {
  policy_ptr policy;              // immutable snapshot; null: no policy configured
  bucket_registry_actor registry; // the counters
  wall_clock now;                 // for "retry after" figures
  audit_log_actor audit;          // optional: where every decision is recorded
};

// Opens (appends to) the audit log at `path`; throws std::runtime_error naming the path when it
// cannot be opened.
audit_log_actor spawn_audit_log(caf::actor_system& sys, const std::string& path);

mcp_session_actor spawn_mcp_session(caf::actor_system& sys, session_settings settings,
                                    output_sink out, router_actor router,
                                    engine_settings_ptr engine, policy_context policy = {},
                                    usage_context usage = {});

// -- model tools ---------------------------------------------------------------------------------

// Runs one list_loaded_models, preload_model or pull_model call (`args` already validated).
// Progress of a pull goes to `session` as (tool_progress, call_no, ...) when `session` is set.
// Quits after answering, or when `session` goes away.
model_tool_actor spawn_model_tool(caf::actor_system& sys, router_actor router, model_tool_args args,
                                  mcp_session_actor session, uint64_t call_no);

} // namespace offload
