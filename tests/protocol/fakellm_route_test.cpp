#define CAF_SUITE fakellm_route
#include "caf/test/unit_test.hpp"

#include "protocol/fakellm_route.hpp"

#include <string>
#include <utility>

using namespace offload::fakellm;

CAF_TEST(known paths route to their endpoints) {
  auto chat = route_request("POST", "/api/chat", api_mode::both);
  CAF_CHECK(chat.target == endpoint::chat);
  CAF_CHECK(chat.method_allowed);
  CAF_CHECK(chat.family == api_family::ollama);
  CAF_CHECK(route_request("GET", "/api/tags?verbose=1", api_mode::both).target == endpoint::tags);
  CAF_CHECK(route_request("GET", "/api/version", api_mode::both).target == endpoint::version);
  CAF_CHECK(route_request("GET", "/api/ps", api_mode::both).target == endpoint::ps);
  CAF_CHECK(route_request("POST", "/api/pull", api_mode::both).target == endpoint::pull);
  CAF_CHECK(route_request("POST", "/api/generate", api_mode::both).target == endpoint::generate);
  CAF_CHECK(route_request("GET", "/_fake/stats", api_mode::both).target == endpoint::stats);
  CAF_CHECK(route_request("POST", "/_fake/reset_stats", api_mode::both).target ==
            endpoint::reset_stats);
  CAF_CHECK(route_request("GET", "/", api_mode::both).target == endpoint::root);
  auto completions = route_request("POST", "/v1/chat/completions", api_mode::both);
  CAF_CHECK(completions.target == endpoint::completions);
  CAF_CHECK(completions.family == api_family::openai);
  CAF_CHECK(route_request("GET", "/v1/models", api_mode::both).target == endpoint::models);
  CAF_CHECK(route_request("GET", "/health", api_mode::both).target == endpoint::health);
}

CAF_TEST(wrong methods and unknown paths are told apart) {
  auto wrong = route_request("GET", "/api/chat", api_mode::both);
  CAF_CHECK(wrong.target == endpoint::chat);
  CAF_CHECK(!wrong.method_allowed);
  CAF_CHECK_EQUAL(std::string{wrong.allowed_method}, "POST");
  CAF_CHECK(!route_request("POST", "/_fake/stats", api_mode::both).method_allowed);
  CAF_CHECK(route_request("GET", "/api/chat/", api_mode::both).target == endpoint::not_found);
  CAF_CHECK(route_request("POST", "/api/embed", api_mode::both).target == endpoint::not_found);
  CAF_CHECK(route_request("GET", "", api_mode::both).target == endpoint::not_found);
}

CAF_TEST(a disabled api is not found) {
  for (auto [method, path] :
       {std::pair{"POST", "/v1/chat/completions"}, {"GET", "/v1/models"}, {"GET", "/health"}})
    CAF_CHECK(route_request(method, path, api_mode::ollama).target == endpoint::not_found);
  for (auto [method, path] : {std::pair{"POST", "/api/chat"},
                              {"GET", "/api/tags"},
                              {"GET", "/"},
                              {"POST", "/api/pull"},
                              {"GET", "/api/ps"}})
    CAF_CHECK(route_request(method, path, api_mode::openai).target == endpoint::not_found);
  // The fake's own endpoints answer whatever the API.
  for (auto mode : {api_mode::ollama, api_mode::openai})
    CAF_CHECK(route_request("GET", "/_fake/stats", mode).target == endpoint::stats);
}

CAF_TEST(errors of unknown paths take the shape of the api served) {
  CAF_CHECK(route_request("POST", "/v1/chat/completions", api_mode::ollama).family ==
            api_family::ollama);
  CAF_CHECK(route_request("POST", "/api/chat", api_mode::openai).family == api_family::openai);
  CAF_CHECK(route_request("GET", "/v1/nothing", api_mode::both).family == api_family::openai);
  CAF_CHECK(route_request("GET", "/nothing", api_mode::both).family == api_family::ollama);
}

CAF_TEST(api modes and endpoints have names) {
  for (auto mode : {api_mode::ollama, api_mode::openai, api_mode::both})
    CAF_CHECK(api_mode_from_string(to_string(mode)) == mode);
  CAF_CHECK(!api_mode_from_string("OpenAI"));
  CAF_CHECK(!api_mode_from_string(""));
  CAF_CHECK_EQUAL(std::string{to_string(endpoint::completions)}, "/v1/chat/completions");
  CAF_CHECK_EQUAL(std::string{to_string(endpoint::not_found)}, "not_found");
  CAF_CHECK(is_control(endpoint::stats));
  CAF_CHECK(!is_control(endpoint::health));
}
