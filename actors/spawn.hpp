#pragma once
// Settings and spawn functions of every actor. The runtime builds settings from configuration and
// passes them as immutable snapshots (shared_ptr<const ...>), replaced on reload.

#include "actors/actors.hpp"
#include "protocol/guards.hpp"
#include "runtime/defaults.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// SQLite's handles (counter_db), so that including this header does not pull in sqlite3.h.
struct sqlite3;
struct sqlite3_stmt;

namespace offload {

// How failed requests are retried: jittered exponential backoff, bounded.
struct retry_settings {
  uint32_t max_attempts = defaults::max_attempts; // 1 = no retries
  std::chrono::milliseconds base_backoff = defaults::retry_base_backoff;
  std::chrono::milliseconds max_backoff = defaults::retry_max_backoff;
  // Fraction of each backoff that is random (0: exact exponential delays, used by tests).
  double jitter = defaults::retry_jitter;
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
  // A fixture profile (only "conformance": the official MCP conformance suite's test tools,
  // resources and prompts); empty in production.
  std::string profile;
};
using engine_settings_ptr = std::shared_ptr<const engine_settings>;

// -- batch engine --------------------------------------------------------------------------------

// Told after every task outcome: `done` of `total` tasks have finished. Runs on the coordinator.
using progress_fn = std::function<void(size_t done, size_t total)>;

batch_coordinator_actor spawn_batch_coordinator(caf::actor_system& sys, batch_spec_ptr spec,
                                                router_actor router, engine_settings_ptr settings,
                                                std::string trace_id, progress_fn progress = {});

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
};

backend_actor spawn_backend(caf::actor_system& sys, backend_settings settings,
                            std::shared_ptr<llm_client> client);

// How the router (re)starts one backend: a name and a spawn function it calls again whenever
// the backend dies.
struct backend_spec {
  std::string name;
  std::function<backend_actor(caf::actor_system&)> spawn;
};

// A spec that spawns a real backend actor with these settings and client.
backend_spec make_backend_spec(backend_settings settings, std::shared_ptr<llm_client> client);

router_actor spawn_router(caf::actor_system& sys, std::vector<backend_spec> backends);

// -- policy --------------------------------------------------------------------------------------

// Wall-clock source of the policy counters' windows (UTC-aligned); injected in tests.
using wall_clock = std::function<std::chrono::system_clock::time_point()>;

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

  const std::string& path() const { return path_; }

private:
  void close() noexcept;
  [[noreturn]] void fail(const std::string& what) const;
  void exec(const char* sql);

  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* select_ = nullptr; // prepared once: load
  sqlite3_stmt* upsert_ = nullptr; // prepared once: save
};

// Tests run the store on the deterministic test scheduler; everything else runs it detached.
enum class counter_store_threading { detached, scheduled };

// Opens the counter database at `path` (created if missing; its directory must exist) and spawns
// the actor owning it. Throws std::runtime_error naming the path when it cannot be opened.
counter_store_actor
spawn_counter_store(caf::actor_system& sys, const std::string& path,
                    counter_store_threading threading = counter_store_threading::detached);

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
                                    engine_settings_ptr engine, policy_context policy = {});

} // namespace offload
