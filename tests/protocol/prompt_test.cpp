#define CAF_SUITE prompt
#include <caf/test/unit_test.hpp>

#include "protocol/prompt.hpp"

using namespace offload;

namespace {

task_spec with_context(std::string context) {
  task_spec task;
  task.task = "summarise";
  task.context = std::move(context);
  return task;
}

} // namespace

CAF_TEST(content that fits is not copied or cut) {
  CAF_CHECK(!fit_to_context(with_context(std::string(100, 'a')), 100).has_value());
}

CAF_TEST(long content loses its middle and the warning says how much) {
  auto text = std::string(200, 'h') + std::string(600, 'm') + std::string(200, 't');
  auto fitted = fit_to_context(with_context(text), 300);
  CAF_REQUIRE(fitted.has_value());
  const auto& cut = fitted->task.context;
  CAF_CHECK_EQUAL(cut.substr(0, 200), std::string(200, 'h'));
  CAF_CHECK_EQUAL(cut.substr(cut.size() - 100), std::string(100, 't'));
  CAF_CHECK(cut.find("[... 700 characters omitted ...]") != std::string::npos);
  CAF_CHECK(fitted->warning.find("the middle 700 characters") != std::string::npos);
  CAF_CHECK_EQUAL(fitted->task.task, "summarise");
}

CAF_TEST(the cut never splits a UTF - 8 character) {
  // "é" is two bytes; a budget that lands inside one must move back to its first byte.
  std::string text;
  for (int i = 0; i < 100; ++i)
    text += "\xC3\xA9";
  auto fitted = fit_to_context(with_context(text), 31);
  CAF_REQUIRE(fitted.has_value());
  const auto& cut = fitted->task.context;
  auto marker = cut.find("\n\n[...");
  CAF_REQUIRE(marker != std::string::npos);
  CAF_CHECK_EQUAL(marker % 2, 0u);
  CAF_CHECK_NOT_EQUAL(static_cast<unsigned char>(cut[marker - 1]), 0xC3);
}

CAF_TEST(the budget leaves room for the instructions and the summary) {
  auto task = with_context("x");
  CAF_CHECK_EQUAL(context_budget(10000, task, 1000), 10000u - 9 - 1000 - 512);
  // A window too small for the reservation still gets half of it for content.
  CAF_CHECK_EQUAL(context_budget(1000, task, 1000), 500u);
}
