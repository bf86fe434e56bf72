#pragma once
// Internals of `offload fakellm` that its listener (fakellm_server.cpp) and its connections
// (fakellm_session.cpp) share.

#include "protocol/fakellm_script.hpp"
#include "protocol/fakellm_state.hpp"
#include "runtime/fakellm.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

namespace offload::fakellm_detail {

// Everything the connections share. Only the io_context thread touches it, so no locks.
struct server_state {
  // The loading phase starts now.
  server_state(const fakellm_options& opts, std::shared_ptr<spdlog::logger> logger)
      : options(opts)
      , log(std::move(logger))
      , slots(opts.slots, opts.queue)
      , ready_at(std::chrono::steady_clock::now() + opts.loading) {}

  const fakellm_options& options;
  std::shared_ptr<spdlog::logger> log;
  fakellm::slot_pool slots;
  fakellm::stats counters; // the gauges are filled in by snapshot()
  fakellm::attempt_counter attempts;
  fakellm::model_residency residency;
  std::chrono::steady_clock::time_point ready_at; // end of the loading phase
  uint64_t completions = 0;                       // numbers OpenAI completion ids

  bool loading() const { return std::chrono::steady_clock::now() < ready_at; }

  fakellm::stats snapshot() const {
    auto current = counters;
    current.in_flight = slots.in_use();
    current.max_concurrent = slots.max_in_use();
    current.waiting = slots.waiting();
    current.api = options.api;
    return current;
  }

  // POST /_fake/reset_stats: the counters, and the attempt counts that `times=K` faults read,
  // so that a test can start over with the same prompts.
  void reset() {
    counters.reset_counters();
    slots.reset_max();
    attempts.clear();
  }
};

// Serves one accepted connection until it closes.
void start_session(boost::asio::ip::tcp::socket socket, server_state& server);

} // namespace offload::fakellm_detail
