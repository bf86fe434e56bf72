#pragma once
// Internals of `offload fakellm` that its listener (fakellm_server.cpp) and its connections
// (fakellm_session.cpp) share.

#include "protocol/fakellm_plan.hpp"
#include "protocol/fakellm_script.hpp"
#include "protocol/fakellm_state.hpp"
#include "runtime/fakellm.hpp"
#include "runtime/fakellm_recordings.hpp"
#include "runtime/url.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

namespace offload::fakellm_detail {

// Everything the connections share. Only the io_context thread touches it, so no locks.
struct server_state {
  // The loading phase starts now. Throws std::runtime_error when the record or replay directory
  // or the upstream URL cannot be used.
  server_state(const fakellm_options& opts, std::shared_ptr<spdlog::logger> logger);

  const fakellm_options& options;
  std::shared_ptr<spdlog::logger> log;
  fakellm::slot_pool slots;
  fakellm::stats counters; // the gauges are filled in by snapshot()
  fakellm::attempt_counter attempts;
  fakellm::model_residency residency;
  std::chrono::steady_clock::time_point ready_at; // end of the loading phase
  uint64_t completions = 0;                       // numbers OpenAI completion ids
  uint64_t arrivals = 0; // requests to the API endpoints, for request_record::sequence
  std::optional<fakellm::plan_state> plan;
  // Record mode: where exchanges go, and the server they come from.
  std::optional<recording_writer> recorder;
  std::optional<http_target> upstream;
  // Replay mode: the recorded exchanges.
  std::optional<recording_library> library;
  fakellm::proxy_summary proxy; // counters of record and replay mode

  bool loading() const { return std::chrono::steady_clock::now() < ready_at; }
  bool proxying() const { return recorder.has_value() || library.has_value(); }

  fakellm::stats snapshot() const;

  // POST /_fake/reset_stats: the counters, the attempt counts that `times=K` faults and plans
  // read, and the replay positions, so that a test can start over with the same requests.
  void reset();
};

// Serves one accepted connection until it closes.
void start_session(boost::asio::ip::tcp::socket socket, server_state& server);

} // namespace offload::fakellm_detail
