#define CAF_SUITE fakellm_ollama
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_ollama.hpp"

#include <nlohmann/json.hpp>

using namespace offload::fakellm;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

usage sample_usage() {
  return make_usage(7, 3, 250ms);
}

} // namespace

CAF_TEST(a content line is one JSON object on one line) {
  std::string out;
  auto piece = "say \"hi\"\\n\n\t\x01 é ";
  append_content_line(out, "m:1b", "2024-05-01T00:00:00.000000000Z", piece);
  CAF_REQUIRE(!out.empty());
  CAF_CHECK_EQUAL(out.back(), '\n');
  CAF_CHECK_EQUAL(out.find('\n'), out.size() - 1);
  auto line = json::parse(out);
  CAF_CHECK_EQUAL(line["model"].get<std::string>(), "m:1b");
  CAF_CHECK_EQUAL(line["created_at"].get<std::string>(), "2024-05-01T00:00:00.000000000Z");
  CAF_CHECK_EQUAL(line["message"]["role"].get<std::string>(), "assistant");
  CAF_CHECK_EQUAL(line["message"]["content"].get<std::string>(), piece);
  CAF_CHECK_EQUAL(line["done"].get<bool>(), false);
}

CAF_TEST(a generate line carries the text in response) {
  std::string out;
  append_content_line(out, "m", "t", "piece ", ollama_shape::generate);
  auto line = json::parse(out);
  CAF_CHECK_EQUAL(line["response"].get<std::string>(), "piece ");
  CAF_CHECK(!line.contains("message"));
  CAF_CHECK_EQUAL(line["done"].get<bool>(), false);
}

CAF_TEST(the final line carries the done fields) {
  std::string out = "previous line\n";
  append_final_line(out, "m", "t", sample_usage());
  auto last = out.substr(std::string{"previous line\n"}.size());
  CAF_CHECK_EQUAL(last.find('\n'), last.size() - 1);
  auto line = json::parse(last);
  auto counts = sample_usage();
  CAF_CHECK_EQUAL(line["message"]["content"].get<std::string>(), "");
  CAF_CHECK_EQUAL(line["done"].get<bool>(), true);
  CAF_CHECK_EQUAL(line["done_reason"].get<std::string>(), "stop");
  CAF_CHECK_EQUAL(line["prompt_eval_count"].get<uint64_t>(), 7u);
  CAF_CHECK_EQUAL(line["eval_count"].get<uint64_t>(), 3u);
  CAF_CHECK_EQUAL(line["total_duration"].get<int64_t>(), counts.total.count());
  CAF_CHECK_EQUAL(line["load_duration"].get<int64_t>(), counts.load.count());
  CAF_CHECK_EQUAL(line["prompt_eval_duration"].get<int64_t>(), counts.prompt_eval.count());
  CAF_CHECK_EQUAL(line["eval_duration"].get<int64_t>(), counts.eval.count());
  std::string generated;
  append_final_line(generated, "m", "t", sample_usage(), ollama_shape::generate);
  CAF_CHECK_EQUAL(json::parse(generated)["response"].get<std::string>(), "");
}

CAF_TEST(a complete body holds the whole reply) {
  auto body = json::parse(make_complete_body("m", "t", "line 1\nline \"2\"", sample_usage()));
  CAF_CHECK_EQUAL(body["message"]["content"].get<std::string>(), "line 1\nline \"2\"");
  CAF_CHECK_EQUAL(body["done"].get<bool>(), true);
  CAF_CHECK_EQUAL(body["eval_count"].get<uint64_t>(), 3u);
  auto generated =
      json::parse(make_complete_body("m", "t", "all", sample_usage(), ollama_shape::generate));
  CAF_CHECK_EQUAL(generated["response"].get<std::string>(), "all");
}

CAF_TEST(a load answer says load or unload) {
  auto load = json::parse(make_load_body("m", "t", false, ollama_shape::chat));
  CAF_CHECK_EQUAL(load["done_reason"].get<std::string>(), "load");
  CAF_CHECK_EQUAL(load["done"].get<bool>(), true);
  CAF_CHECK_EQUAL(load["message"]["content"].get<std::string>(), "");
  CAF_CHECK(!load.contains("eval_count"));
  auto unload = json::parse(make_load_body("m", "t", true, ollama_shape::generate));
  CAF_CHECK_EQUAL(unload["done_reason"].get<std::string>(), "unload");
  CAF_CHECK_EQUAL(unload["response"].get<std::string>(), "");
}

CAF_TEST(the malformed line is one line that is not JSON) {
  CAF_CHECK_EQUAL(malformed_line.find('\n'), malformed_line.size() - 1);
  CAF_CHECK(json::parse(malformed_line, nullptr, false).is_discarded());
}

CAF_TEST(error bodies follow Ollama) {
  CAF_CHECK_EQUAL(make_error_body(model_not_found_message("x:1b")),
                  R"({"error":"model \"x:1b\" not found, try pulling it first"})");
  CAF_CHECK_EQUAL(make_error_body(injected_fault_message("http500")),
                  R"({"error":"injected fault: http500"})");
  std::string line;
  append_error_line(line, server_busy_message);
  CAF_CHECK_EQUAL(line, "{\"error\":\"server busy, please try again.  maximum pending requests "
                        "exceeded\"}\n");
}

CAF_TEST(tags list every model with details) {
  auto body = json::parse(make_tags_body({"qwen2.5-coder:7b", "llama3.2:3b", "phi3"}));
  auto& models = body["models"];
  CAF_REQUIRE_EQUAL(models.size(), 3u);
  CAF_CHECK_EQUAL(models[0]["name"].get<std::string>(), "qwen2.5-coder:7b");
  CAF_CHECK_EQUAL(models[0]["model"].get<std::string>(), "qwen2.5-coder:7b");
  CAF_CHECK_EQUAL(models[0]["details"]["family"].get<std::string>(), "qwen");
  CAF_CHECK_EQUAL(models[0]["details"]["format"].get<std::string>(), "gguf");
  CAF_CHECK_EQUAL(models[1]["details"]["parameter_size"].get<std::string>(), "3B");
  CAF_CHECK_EQUAL(models[0]["digest"].get<std::string>().size(), 64u);
  CAF_CHECK(models[0]["digest"] != models[1]["digest"]);
  CAF_CHECK(models[2]["size"].get<uint64_t>() > 0);
  CAF_CHECK(json::parse(make_tags_body({}))["models"].empty());
}

CAF_TEST(ps lists running models with vram and expiry) {
  using namespace std::chrono;
  auto until = time_point_cast<system_clock::duration>(sys_days{year{2030} / 1 / 2} + 3h);
  auto body = json::parse(make_ps_body({{"llama3.2:3b", until}}));
  auto& models = body["models"];
  CAF_REQUIRE_EQUAL(models.size(), 1u);
  CAF_CHECK_EQUAL(models[0]["name"].get<std::string>(), "llama3.2:3b");
  CAF_CHECK_EQUAL(models[0]["expires_at"].get<std::string>(), "2030-01-02T03:00:00.000000000Z");
  CAF_CHECK_EQUAL(models[0]["size_vram"].get<uint64_t>(), models[0]["size"].get<uint64_t>());
  CAF_CHECK(models[0]["size"].get<uint64_t>() > 0);
  CAF_CHECK_EQUAL(models[0]["context_length"].get<uint64_t>(), fake_context_size);
  CAF_CHECK(json::parse(make_ps_body({}))["models"].empty());
}

CAF_TEST(version body) {
  CAF_CHECK_EQUAL(json::parse(make_version_body())["version"].get<std::string>(),
                  "0.0.0-offload-fakellm");
}

CAF_TEST(pull progress rises layer by layer to success) {
  auto lines = make_pull_lines("llama3.2:3b");
  CAF_REQUIRE(lines.size() > 5);
  std::vector<json> parsed;
  for (const auto& line : lines) {
    CAF_CHECK_EQUAL(line.find('\n'), line.size() - 1);
    parsed.push_back(json::parse(line));
  }
  CAF_CHECK_EQUAL(parsed.front()["status"].get<std::string>(), "pulling manifest");
  CAF_CHECK_EQUAL(parsed[parsed.size() - 3]["status"].get<std::string>(),
                  "verifying sha256 digest");
  CAF_CHECK_EQUAL(parsed[parsed.size() - 2]["status"].get<std::string>(), "writing manifest");
  CAF_CHECK_EQUAL(parsed.back()["status"].get<std::string>(), "success");
  std::string digest;
  uint64_t completed = 0;
  size_t layers = 0;
  for (size_t i = 1; i + 3 < parsed.size(); ++i) {
    auto& line = parsed[i];
    auto this_digest = line["digest"].get<std::string>();
    CAF_CHECK(this_digest.starts_with("sha256:"));
    CAF_CHECK_EQUAL(line["status"].get<std::string>(), "pulling " + this_digest.substr(7, 12));
    if (this_digest != digest) {
      ++layers;
      digest = this_digest;
      completed = 0;
    }
    // Within a layer, completed rises and ends at total.
    CAF_CHECK(line["completed"].get<uint64_t>() > completed);
    completed = line["completed"].get<uint64_t>();
    CAF_CHECK(completed <= line["total"].get<uint64_t>());
    if (i + 4 == parsed.size() || parsed[i + 1]["digest"] != line["digest"])
      CAF_CHECK_EQUAL(completed, line["total"].get<uint64_t>());
  }
  CAF_CHECK(layers > 1);
  CAF_CHECK_EQUAL(make_pull_lines("llama3.2:3b"), lines);
  CAF_CHECK_NOT_EQUAL(make_pull_lines("phi3"), lines);
}
