#define CAF_SUITE fakellm_state
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_state.hpp"

#include <nlohmann/json.hpp>

using namespace offload::fakellm;
using namespace std::chrono_literals;
using json = nlohmann::json;

// -- slots ---------------------------------------------------------------------------------------

CAF_TEST(slots are granted up to the capacity) {
  slot_pool slots{2};
  CAF_CHECK(slots.try_acquire());
  CAF_CHECK(slots.try_acquire());
  CAF_CHECK(!slots.try_acquire());
  CAF_CHECK_EQUAL(slots.in_use(), 2u);
  slots.release();
  CAF_CHECK(slots.try_acquire());
  CAF_CHECK_EQUAL(slots.max_in_use(), 2u);
}

CAF_TEST(zero capacity means no limit) {
  slot_pool slots{0};
  for (int i = 0; i < 100; ++i)
    CAF_CHECK(slots.try_acquire());
  CAF_CHECK_EQUAL(slots.in_use(), 100u);
  CAF_CHECK_EQUAL(slots.max_in_use(), 100u);
}

CAF_TEST(waiters get slots first come first served) {
  slot_pool slots{1};
  std::vector<int> granted;
  CAF_REQUIRE(slots.try_acquire());
  slots.enqueue([&] { granted.push_back(1); });
  slots.enqueue([&] { granted.push_back(2); });
  CAF_CHECK_EQUAL(slots.waiting(), 2u);
  // A newcomer may not overtake the queue even if a slot happens to be free.
  slots.release();
  CAF_CHECK_EQUAL(granted, std::vector<int>{1});
  CAF_CHECK_EQUAL(slots.in_use(), 1u);
  CAF_CHECK(!slots.try_acquire());
  slots.release();
  CAF_CHECK_EQUAL(granted, (std::vector<int>{1, 2}));
  slots.release();
  CAF_CHECK_EQUAL(slots.in_use(), 0u);
  CAF_CHECK_EQUAL(slots.max_in_use(), 1u);
}

CAF_TEST(a cancelled waiter is skipped) {
  slot_pool slots{1};
  std::vector<int> granted;
  CAF_REQUIRE(slots.try_acquire());
  auto first = slots.enqueue([&] { granted.push_back(1); });
  slots.enqueue([&] { granted.push_back(2); });
  slots.cancel(first);
  CAF_CHECK_EQUAL(slots.waiting(), 1u);
  slots.release();
  CAF_CHECK_EQUAL(granted, std::vector<int>{2});
}

CAF_TEST(the queue bound turns newcomers away) {
  slot_pool unbounded{1};
  CAF_REQUIRE(unbounded.try_acquire());
  for (int i = 0; i < 50; ++i) {
    CAF_CHECK(unbounded.can_wait());
    unbounded.enqueue([] {});
  }
  slot_pool bounded{1, 2};
  CAF_REQUIRE(bounded.try_acquire());
  CAF_CHECK(bounded.can_wait());
  auto first = bounded.enqueue([] {});
  bounded.enqueue([] {});
  CAF_CHECK(!bounded.can_wait());
  bounded.cancel(first);
  CAF_CHECK(bounded.can_wait());
  // A queue of zero: whoever finds the slots busy is turned away.
  slot_pool none{1, 0};
  CAF_REQUIRE(none.try_acquire());
  CAF_CHECK(!none.can_wait());
}

CAF_TEST(reset keeps the current load as the maximum) {
  slot_pool slots{0};
  slots.try_acquire();
  slots.try_acquire();
  slots.try_acquire();
  slots.release();
  slots.release();
  CAF_CHECK_EQUAL(slots.max_in_use(), 3u);
  slots.reset_max();
  CAF_CHECK_EQUAL(slots.max_in_use(), 1u);
}

CAF_TEST(a closed pool drops its waiters and grants nothing) {
  slot_pool slots{1};
  bool granted = false;
  CAF_REQUIRE(slots.try_acquire());
  slots.enqueue([&] { granted = true; });
  slots.close();
  CAF_CHECK_EQUAL(slots.waiting(), 0u);
  slots.release();
  CAF_CHECK(!granted);
  CAF_CHECK(!slots.try_acquire());
}

// -- loaded models -------------------------------------------------------------------------------

CAF_TEST(models stay loaded for their keep alive) {
  using namespace std::chrono;
  auto t0 = system_clock::time_point{} + hours{24 * 365 * 50};
  model_residency models;
  CAF_CHECK(models.loaded(t0).empty());
  models.touch("b:1b", t0, std::nullopt);
  models.touch("a:1b", t0, 10s);
  auto now = models.loaded(t0 + 1s);
  CAF_REQUIRE_EQUAL(now.size(), 2u);
  CAF_CHECK_EQUAL(now[0].first, "a:1b"); // by name
  CAF_CHECK(now[0].second == t0 + 10s);
  CAF_CHECK(now[1].second == t0 + default_keep_alive);
  auto later = models.loaded(t0 + 11s);
  CAF_REQUIRE_EQUAL(later.size(), 1u);
  CAF_CHECK_EQUAL(later[0].first, "b:1b");
  // A later request extends the stay.
  models.touch("a:1b", t0 + 9s, 10s);
  CAF_CHECK_EQUAL(models.loaded(t0 + 11s).size(), 2u);
  CAF_CHECK_EQUAL(models.loaded(t0 + 4min).size(), 1u);
  CAF_CHECK(models.loaded(t0 + 6min).empty());
}

CAF_TEST(zero unloads and negative keeps forever) {
  using namespace std::chrono;
  auto t0 = system_clock::time_point{} + hours{24 * 365 * 50};
  model_residency models;
  models.touch("a", t0, -1ms);
  models.touch("b", t0, std::nullopt);
  models.touch("b", t0, 0ms);
  auto loaded = models.loaded(t0 + hours{24 * 365 * 100});
  CAF_REQUIRE_EQUAL(loaded.size(), 1u);
  CAF_CHECK_EQUAL(loaded[0].first, "a");
}

// -- stats ---------------------------------------------------------------------------------------

CAF_TEST(stats keep the original fields and add the new ones) {
  stats counters;
  counters.requests = 9;
  counters.in_flight = 2;
  counters.max_concurrent = 4;
  counters.waiting = 1;
  counters.faults[static_cast<size_t>(fault::drop)] = 3;
  counters.faults[static_cast<size_t>(fault::slow_tokens)] = 2;
  counters.endpoints[static_cast<size_t>(endpoint::completions)] = 5;
  counters.models["m:1b"] = 6;
  counters.rejected_busy = 7;
  counters.rejected_loading = 8;
  counters.api = api_mode::openai;
  auto body = json::parse(make_stats_body(counters));
  CAF_CHECK_EQUAL(body["requests"].get<uint64_t>(), 9u);
  CAF_CHECK_EQUAL(body["in_flight"].get<size_t>(), 2u);
  CAF_CHECK_EQUAL(body["max_concurrent"].get<size_t>(), 4u);
  CAF_CHECK_EQUAL(body["waiting"].get<size_t>(), 1u);
  CAF_CHECK_EQUAL(body["faults"]["drop"].get<uint64_t>(), 3u);
  CAF_CHECK_EQUAL(body["faults"]["http500"].get<uint64_t>(), 0u);
  CAF_CHECK_EQUAL(body["faults"]["slow_tokens"].get<uint64_t>(), 2u);
  CAF_CHECK_EQUAL(body["faults"].size(), injectable_faults.size());
  CAF_CHECK_EQUAL(body["endpoints"]["/v1/chat/completions"].get<uint64_t>(), 5u);
  CAF_CHECK_EQUAL(body["endpoints"]["/api/chat"].get<uint64_t>(), 0u);
  CAF_CHECK_EQUAL(body["endpoints"].size(), endpoint_count);
  CAF_CHECK_EQUAL(body["models"]["m:1b"].get<uint64_t>(), 6u);
  CAF_CHECK_EQUAL(body["rejected"]["busy"].get<uint64_t>(), 7u);
  CAF_CHECK_EQUAL(body["rejected"]["loading"].get<uint64_t>(), 8u);
  CAF_CHECK_EQUAL(body["api"].get<std::string>(), "openai");
}

CAF_TEST(a reset zeroes counters but not gauges) {
  stats counters;
  counters.requests = 9;
  counters.in_flight = 2;
  counters.waiting = 1;
  counters.faults[1] = 3;
  counters.endpoints[1] = 4;
  counters.models["m"] = 5;
  counters.rejected_busy = 6;
  counters.rejected_loading = 7;
  counters.reset_counters();
  CAF_CHECK_EQUAL(counters.requests, 0u);
  CAF_CHECK_EQUAL(counters.faults[1], 0u);
  CAF_CHECK_EQUAL(counters.endpoints[1], 0u);
  CAF_CHECK(counters.models.empty());
  CAF_CHECK_EQUAL(counters.rejected_busy, 0u);
  CAF_CHECK_EQUAL(counters.rejected_loading, 0u);
  CAF_CHECK_EQUAL(counters.in_flight, 2u);
  CAF_CHECK_EQUAL(counters.waiting, 1u);
}

CAF_TEST(stats show the plan the recent requests and the proxy counters) {
  stats counters;
  counters.count_model(endpoint::chat, "m:1b");
  counters.count_model(endpoint::chat, "m:1b");
  counters.count_model(endpoint::completions, "m:1b");
  request_record hit;
  hit.sequence = 1;
  hit.target = endpoint::chat;
  hit.model = "m:1b";
  hit.rule = "flaky";
  hit.attempt = 2;
  hit.applied.response = response_kind::error;
  hit.applied.status = 503;
  hit.applied.latency = std::chrono::milliseconds{12};
  counters.remember(hit);
  for (uint64_t i = 2; i <= recent_requests_kept + 5; ++i) {
    request_record plain;
    plain.sequence = i;
    counters.remember(plain);
  }
  counters.plan = plan_summary{"p.yaml", "d", 7, {{"flaky", 3, 10, 2}}};
  counters.proxy = proxy_summary{"replay", "dir", 4, 1, 0};
  auto body = json::parse(make_stats_body(counters));
  CAF_CHECK_EQUAL(body["endpoint_models"]["/api/chat"]["m:1b"].get<uint64_t>(), 2u);
  CAF_CHECK_EQUAL(body["endpoint_models"]["/v1/chat/completions"]["m:1b"].get<uint64_t>(), 1u);
  CAF_CHECK_EQUAL(body["models"]["m:1b"].get<uint64_t>(), 3u);
  CAF_REQUIRE_EQUAL(body["recent"].size(), recent_requests_kept);
  // The oldest went first.
  CAF_CHECK_EQUAL(body["recent"][0]["sequence"].get<uint64_t>(), 6u);
  CAF_CHECK(body["recent"][0]["rule"].is_null());
  CAF_CHECK_EQUAL(body["recent"][0]["response"], "answer");
  CAF_CHECK_EQUAL(body["plan"]["source"], "p.yaml");
  CAF_CHECK_EQUAL(body["plan"]["seed"].get<uint64_t>(), 7u);
  CAF_CHECK_EQUAL(body["plan"]["rules"][0]["name"], "flaky");
  CAF_CHECK_EQUAL(body["plan"]["rules"][0]["seen"].get<uint64_t>(), 10u);
  CAF_CHECK_EQUAL(body["plan"]["rules"][0]["matched"].get<uint64_t>(), 2u);
  CAF_CHECK_EQUAL(body["replay"]["exchanges"].get<uint64_t>(), 4u);
  CAF_CHECK_EQUAL(body["replay"]["missing"].get<uint64_t>(), 1u);

  stats fresh;
  fresh.remember(hit);
  auto one = json::parse(make_stats_body(fresh));
  CAF_CHECK(one["plan"].is_null());
  CAF_CHECK(!one.contains("replay"));
  auto record = one["recent"][0];
  CAF_CHECK_EQUAL(record["rule"], "flaky");
  CAF_CHECK_EQUAL(record["status"].get<int>(), 503);
  CAF_CHECK_EQUAL(record["attempt"].get<int>(), 2);
  CAF_CHECK_EQUAL(record["latency_ms"].get<int>(), 12);
  CAF_CHECK_EQUAL(record["endpoint"], "/api/chat");
  fresh.reset_counters();
  CAF_CHECK(fresh.recent.empty());
}
