#define CAF_SUITE metrics
#include <caf/test/unit_test.hpp>

#include "tests/check_case.hpp"

#include "runtime/metrics.hpp"

#include <fmt/format.h>

#include <sstream>
#include <thread>

using namespace offload;
using namespace offload::metrics;
using namespace std::chrono_literals;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in{text};
  std::string current;
  while (std::getline(in, current))
    if (current == line)
      return true;
  return false;
}

} // namespace

CAF_TEST(every family is rendered with help and type even before any update) {
  registry r{{"ollama@127.0.0.1:11434"}};
  auto text = r.render();
  for (auto family : {"offload_sessions", "offload_inflight_calls", "offload_tasks_total",
                      "offload_backend_request_seconds", "offload_backend_queue_depth",
                      "offload_http_requests_total", "offload_backend_health",
                      "offload_backend_breaker_state", "offload_backend_breaker_opened_total",
                      "offload_backend_restarts_total", "offload_chaos_events_total"})
    CHECK_CASE(text.find(std::string{"# TYPE "} + family + " ") != std::string::npos,
               "no TYPE line for " << family);
  CAF_CHECK(has_line(text, "# TYPE offload_backend_request_seconds histogram"));
  CAF_CHECK(has_line(text, "offload_sessions{transport=\"stdio\"} 0"));
  CAF_CHECK(has_line(text, "offload_sessions{transport=\"http\"} 0"));
  CAF_CHECK(has_line(text, "offload_tasks_total{outcome=\"ok\"} 0"));
  CAF_CHECK(has_line(text, "offload_tasks_total{outcome=\"timeout\"} 0"));
  CAF_CHECK(!has_line(text, "offload_tasks_total{outcome=\"no_error\"} 0"));
  CAF_CHECK(text.find("outcome=\"unknown\"") == std::string::npos);
  CAF_CHECK(has_line(text, "offload_http_requests_total{code=\"other\"} 0"));
  CAF_CHECK(has_line(text, "offload_backend_queue_depth{backend=\"ollama@127.0.0.1:11434\"} 0"));
  // Before the first probe answered, the health is unknown and the breaker closed.
  CAF_CHECK(has_line(text, "offload_backend_health{backend=\"ollama@127.0.0.1:11434\","
                           "state=\"unknown\"} 1"));
  CAF_CHECK(has_line(text, "offload_backend_health{backend=\"ollama@127.0.0.1:11434\","
                           "state=\"up\"} 0"));
  CAF_CHECK(has_line(text, "offload_backend_breaker_state{backend=\"ollama@127.0.0.1:11434\"} 0"));
  for (auto kind : {"kill_task", "delay_message", "crash_backend"})
    CHECK_CASE(has_line(text, fmt::format("offload_chaos_events_total{{kind=\"{}\"}} 0", kind)),
               kind);
  CAF_CHECK(text.back() == '\n');
}

CAF_TEST(updates show in the rendered text) {
  registry r{{"a", "b"}};
  r.sessions(transport_kind::http).add(3);
  r.sessions(transport_kind::http).sub();
  r.inflight_calls().set(7);
  r.tasks(errc::no_error).inc(5);
  r.tasks(errc::timeout).inc();
  r.http_requests(200).inc(2);
  r.http_requests(404).inc();
  r.http_requests(418).inc(); // outside the fixed set
  r.backend("b")->queue_depth.set(4);
  r.backend("b")->set_health(backend_health::loading);
  r.backend("b")->set_breaker(breaker_position::half_open);
  r.backend("b")->breaker_opened.inc();
  r.backend("a")->restarts.inc(2);
  r.chaos_events(chaos::fault::crash_backend).inc(2);
  CAF_CHECK(r.backend("c") == nullptr);
  auto text = r.render();
  CAF_CHECK(has_line(text, "offload_sessions{transport=\"http\"} 2"));
  CAF_CHECK(has_line(text, "offload_inflight_calls 7"));
  CAF_CHECK(has_line(text, "offload_tasks_total{outcome=\"ok\"} 5"));
  CAF_CHECK(has_line(text, "offload_tasks_total{outcome=\"timeout\"} 1"));
  CAF_CHECK(has_line(text, "offload_http_requests_total{code=\"200\"} 2"));
  CAF_CHECK(has_line(text, "offload_http_requests_total{code=\"404\"} 1"));
  CAF_CHECK(has_line(text, "offload_http_requests_total{code=\"other\"} 1"));
  CAF_CHECK(has_line(text, "offload_backend_queue_depth{backend=\"a\"} 0"));
  CAF_CHECK(has_line(text, "offload_backend_queue_depth{backend=\"b\"} 4"));
  CAF_CHECK(has_line(text, "offload_backend_health{backend=\"b\",state=\"loading\"} 1"));
  CAF_CHECK(has_line(text, "offload_backend_health{backend=\"b\",state=\"unknown\"} 0"));
  CAF_CHECK(has_line(text, "offload_backend_breaker_state{backend=\"b\"} 1"));
  CAF_CHECK(has_line(text, "offload_backend_breaker_opened_total{backend=\"b\"} 1"));
  CAF_CHECK(has_line(text, "offload_backend_restarts_total{backend=\"a\"} 2"));
  CAF_CHECK(has_line(text, "offload_chaos_events_total{kind=\"crash_backend\"} 2"));
  CAF_CHECK(has_line(text, "offload_chaos_events_total{kind=\"kill_task\"} 0"));
}

CAF_TEST(histograms count into cumulative buckets) {
  registry r{{"x"}};
  auto& h = r.backend("x")->request_seconds;
  h.observe(3ms);  // <= 0.005
  h.observe(70ms); // <= 0.1
  h.observe(2s);   // <= 2.5
  h.observe(900s); // +Inf only
  auto reading = h.read();
  CAF_CHECK_EQUAL(reading.cumulative.front(), 1u);
  CAF_CHECK_EQUAL(reading.cumulative.back(), 4u);
  CAF_CHECK(reading.sum_seconds > 902.07 && reading.sum_seconds < 902.08);
  auto text = r.render();
  CAF_CHECK(has_line(text, "offload_backend_request_seconds_bucket{backend=\"x\",le=\"0.005\"} 1"));
  CAF_CHECK(has_line(text, "offload_backend_request_seconds_bucket{backend=\"x\",le=\"0.05\"} 1"));
  CAF_CHECK(has_line(text, "offload_backend_request_seconds_bucket{backend=\"x\",le=\"0.1\"} 2"));
  CAF_CHECK(has_line(text, "offload_backend_request_seconds_bucket{backend=\"x\",le=\"2.5\"} 3"));
  CAF_CHECK(has_line(text, "offload_backend_request_seconds_bucket{backend=\"x\",le=\"300\"} 3"));
  CAF_CHECK(has_line(text, "offload_backend_request_seconds_bucket{backend=\"x\",le=\"+Inf\"} 4"));
  CAF_CHECK(has_line(text, "offload_backend_request_seconds_count{backend=\"x\"} 4"));
  // An exact bound counts into that bound's bucket (le = less or equal).
  registry exact{{"y"}};
  exact.backend("y")->request_seconds.observe_seconds(0.1);
  CAF_CHECK(has_line(exact.render(),
                     "offload_backend_request_seconds_bucket{backend=\"y\",le=\"0.05\"} 0"));
  CAF_CHECK(has_line(exact.render(),
                     "offload_backend_request_seconds_bucket{backend=\"y\",le=\"0.1\"} 1"));
}

CAF_TEST(label values are escaped) {
  registry r{{"we\"ird\\name"}};
  CAF_CHECK(has_line(r.render(), "offload_backend_queue_depth{backend=\"we\\\"ird\\\\name\"} 0"));
}

CAF_TEST(concurrent updates are all counted) {
  registry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&r] {
      for (int i = 0; i < 10000; ++i) {
        r.http_requests(202).inc();
        r.inflight_calls().add();
        r.inflight_calls().sub();
      }
    });
  for (auto& thread : threads)
    thread.join();
  CAF_CHECK_EQUAL(r.http_requests(202).value(), 40000u);
  CAF_CHECK_EQUAL(r.inflight_calls().value(), 0);
}
