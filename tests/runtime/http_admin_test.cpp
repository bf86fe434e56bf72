#define CAF_SUITE http_admin
#include <caf/test/unit_test.hpp>

#include "runtime/http_admin.hpp"
#include "runtime/http_fetch.hpp"
#include "tests/runtime/canned_server.hpp"

#include <nlohmann/json.hpp>

#include <optional>

using namespace offload;
using namespace offload::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

// The management requests of both server kinds against a canned server: which paths they use,
// what they send, and how answers, errors and streams become admin_results.

namespace {

const std::string ndjson_head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n";

struct fixture {
  asio::io_context io;
  canned_server server{io};

  std::shared_ptr<endpoint_admin> admin(backend_kind kind, std::string base_path = "",
                                        admin_options options = {}) {
    return make_endpoint_admin(io, kind, server.target(std::move(base_path)), std::move(options));
  }

  template <class Start>
  admin_result wait_for(Start start) {
    std::optional<admin_result> result;
    auto exchange = start([&](admin_result r) { result = std::move(r); });
    while (!result)
      if (io.run_one_for(10s) == 0)
        CAF_FAIL("the request never completed");
    return *result;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(http_admin_tests, fixture)

CAF_TEST(an ollama probe asks for the version) {
  server.replies = {{with_length(json_head, R"({"version":"0.6.2"})")}};
  auto a = admin(backend_kind::ollama, "/prefix");
  auto r = wait_for([&](auto done) { return a->probe(done); });
  CAF_CHECK(r.ok);
  CAF_CHECK(r.health == probe_status::up);
  CAF_CHECK_EQUAL(r.detail, "version 0.6.2");
  CAF_CHECK_EQUAL(server.targets.at(0), "/prefix/api/version");
}

CAF_TEST(an openai probe reads health at the root and 503 as loading) {
  server.replies = {
      {with_length(json_head, R"({"status":"ok"})")},
      {with_length(
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n",
          R"({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})")},
  };
  auto a = admin(backend_kind::openai, "/v1");
  auto up = wait_for([&](auto done) { return a->probe(done); });
  CAF_CHECK(up.ok && up.health == probe_status::up);
  CAF_CHECK_EQUAL(server.targets.at(0), "/health");
  auto loading = wait_for([&](auto done) { return a->probe(done); });
  CAF_CHECK(loading.ok);
  CAF_CHECK(loading.health == probe_status::loading);
}

CAF_TEST(servers without a health endpoint are probed through their model list) {
  server.replies = {
      {with_length("HTTP/1.1 404 Not Found\r\n", "not found")},
      {with_length(json_head, R"({"object":"list","data":[]})")},
      {with_length(json_head, R"({"object":"list","data":[]})")},
  };
  auto a = admin(backend_kind::openai);
  CAF_CHECK(wait_for([&](auto done) { return a->probe(done); }).ok);
  CAF_CHECK(wait_for([&](auto done) { return a->probe(done); }).ok);
  CAF_CHECK_EQUAL(server.targets,
                  (std::vector<std::string>{"/health", "/v1/models", "/v1/models"}));
}

CAF_TEST(an unreachable server is down) {
  std::string port;
  {
    tcp::acceptor gone{io, {asio::ip::make_address("127.0.0.1"), 0}};
    port = std::to_string(gone.local_endpoint().port());
  }
  auto a = make_endpoint_admin(io, backend_kind::ollama, {"127.0.0.1", port, ""});
  auto r = wait_for([&](auto done) { return a->probe(done); });
  CAF_CHECK(!r.ok);
  CAF_CHECK(r.error.code == errc::backend_unreachable);
}

CAF_TEST(model lists come from tags or v1 models) {
  server.replies = {
      {with_length(json_head, R"({"models":[{"name":"a:latest"},{"model":"b"}]})")},
      {with_length(json_head, R"({"object":"list","data":[{"id":"c","object":"model"}]})")},
      {with_length(json_head, R"({"nothing":true})")},
  };
  auto ollama = admin(backend_kind::ollama);
  auto tags = wait_for([&](auto done) { return ollama->list_models(done); });
  CAF_CHECK(tags.ok);
  CAF_CHECK_EQUAL(tags.models, (std::vector<std::string>{"a:latest", "b"}));
  auto openai = admin(backend_kind::openai);
  auto models = wait_for([&](auto done) { return openai->list_models(done); });
  CAF_CHECK_EQUAL(models.models, (std::vector<std::string>{"c"}));
  auto bad = wait_for([&](auto done) { return ollama->list_models(done); });
  CAF_CHECK(!bad.ok);
  CAF_CHECK(bad.error.code == errc::malformed_stream);
  CAF_CHECK_EQUAL(server.targets.at(1), "/v1/models");
}

CAF_TEST(loaded models come from ps or from what an openai server serves) {
  server.replies = {
      {with_length(json_head, R"({"models":[{"name":"a","size":10,"size_vram":8,)"
                              R"("expires_at":"2030-01-01T00:00:00Z","context_length":4096}]})")},
      {with_length(json_head, R"({"object":"list","data":[{"id":"c"}]})")},
  };
  auto ps = wait_for([&](auto done) { return admin(backend_kind::ollama)->loaded_models(done); });
  CAF_REQUIRE_EQUAL(ps.loaded.size(), 1u);
  CAF_CHECK_EQUAL(ps.loaded[0].size_vram, 8);
  CAF_CHECK_EQUAL(ps.loaded[0].context_length, 4096);
  CAF_CHECK_EQUAL(server.targets.at(0), "/api/ps");
  auto served =
      wait_for([&](auto done) { return admin(backend_kind::openai)->loaded_models(done); });
  CAF_REQUIRE_EQUAL(served.loaded.size(), 1u);
  CAF_CHECK_EQUAL(served.loaded[0].name, "c");
  CAF_CHECK(!served.detail.empty());
}

CAF_TEST(a preload sends the pinned or given keep alive and num ctx) {
  const std::string loaded = R"({"model":"a","done":true,"done_reason":"load"})";
  server.replies = {{with_length(json_head, loaded)},
                    {with_length(json_head, loaded)},
                    {with_length(json_head, loaded)},
                    {with_length("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n",
                                 R"({"error":"model \"z\" not found, try pulling it first"})")}};
  admin_options options;
  options.model_options["a"] = {"30m", 16384};
  auto a = admin(backend_kind::ollama, "", options);
  auto pinned = wait_for([&](auto done) { return a->preload("a:latest", "", done); });
  CAF_CHECK(pinned.ok);
  CAF_CHECK_EQUAL(pinned.detail, "30m");
  auto body = json::parse(server.bodies.at(0));
  CAF_CHECK_EQUAL(server.targets.at(0), "/api/chat");
  CAF_CHECK_EQUAL(body["keep_alive"].get<std::string>(), "30m");
  CAF_CHECK_EQUAL(body["options"]["num_ctx"].get<int>(), 16384);
  CAF_CHECK(body["messages"].empty());
  auto given = wait_for([&](auto done) { return a->preload("a", "1h", done); });
  CAF_CHECK_EQUAL(given.detail, "1h");
  // Nothing pinned: the original server's default, for ever (a number for Ollama).
  auto plain = wait_for([&](auto done) { return a->preload("other", "", done); });
  CAF_CHECK_EQUAL(plain.detail, "-1");
  CAF_CHECK_EQUAL(json::parse(server.bodies.at(2))["keep_alive"].get<int>(), -1);
  auto missing = wait_for([&](auto done) { return a->preload("z", "", done); });
  CAF_CHECK(!missing.ok);
  CAF_CHECK(missing.error.code == errc::model_not_found);
}

CAF_TEST(a pull streams its progress) {
  std::string lines = R"({"status":"pulling manifest"})"
                      "\n"
                      R"({"status":"pulling 1a","digest":"sha256:1a","total":100,"completed":40})"
                      "\n"
                      R"({"status":"pulling 1a","digest":"sha256:1a","total":100,"completed":100})"
                      "\n"
                      R"({"status":"verifying sha256 digest"})"
                      "\n"
                      R"({"status":"success"})"
                      "\n";
  server.replies = {{chunked(ndjson_head, lines)}};
  std::vector<pull_update> updates;
  auto a = admin(backend_kind::ollama);
  auto r = wait_for([&](auto done) {
    return a->pull(
        "m", [&](pull_update u) { updates.push_back(std::move(u)); }, done);
  });
  CAF_CHECK(r.ok);
  CAF_CHECK_EQUAL(r.detail, "success");
  CAF_CHECK_EQUAL(server.targets.at(0), "/api/pull");
  CAF_CHECK_EQUAL(json::parse(server.bodies.at(0))["model"].get<std::string>(), "m");
  // The canned body arrives in two pieces: one update per piece, with the bytes so far.
  CAF_REQUIRE(!updates.empty());
  CAF_CHECK_EQUAL(updates.back().completed, 100);
  CAF_CHECK_EQUAL(updates.back().total, 100);
}

CAF_TEST(a pull that fails says why) {
  server.replies = {
      {chunked(ndjson_head, "{\"status\":\"pulling manifest\"}\n"
                            "{\"error\":\"pull model manifest: file does not exist\"}\n")},
      {with_length("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n",
                   R"({"error":"invalid model name"})")},
  };
  auto a = admin(backend_kind::ollama);
  auto missing = wait_for([&](auto done) {
    return a->pull(
        "m", [](pull_update) {}, done);
  });
  CAF_CHECK(!missing.ok);
  CAF_CHECK_NOT_EQUAL(missing.error.message.find("file does not exist"), std::string::npos);
  auto invalid = wait_for([&](auto done) {
    return a->pull(
        "bad name", [](pull_update) {}, done);
  });
  CAF_CHECK(!invalid.ok);
  CAF_CHECK_NOT_EQUAL(invalid.error.message.find("invalid model name"), std::string::npos);
}

CAF_TEST(openai servers cannot preload or pull) {
  auto a = admin(backend_kind::openai);
  auto preload = wait_for([&](auto done) { return a->preload("m", "", done); });
  CAF_CHECK(!preload.ok);
  CAF_CHECK(preload.error.code == errc::invalid_argument);
  auto pull = wait_for([&](auto done) {
    return a->pull(
        "m", [](pull_update) {}, done);
  });
  CAF_CHECK(!pull.ok);
  CAF_CHECK(server.targets.empty());
}

CAF_TEST(a stream that goes silent times out) {
  server.replies = {{ndjson_head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", true}};
  std::optional<fetch_result> result;
  std::string seen;
  fetch_stream(
      io, server.target(), "POST", "/api/pull", "{}", 10s, 50ms,
      [&](std::string_view bytes) { seen += bytes; }, [&](fetch_result r) { result = r; });
  while (!result)
    if (io.run_one_for(10s) == 0)
      CAF_FAIL("the stream never ended");
  CAF_CHECK_EQUAL(seen, "hello");
  CAF_CHECK(!result->ok);
  CAF_CHECK(result->error.code == errc::timeout);
  CAF_CHECK_NOT_EQUAL(result->error.message.find("sent nothing for 50 ms"), std::string::npos);
}

CAF_TEST_FIXTURE_SCOPE_END()
