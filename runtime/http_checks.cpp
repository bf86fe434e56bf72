#include "runtime/http_checks.hpp"

#include "protocol/jsonrpc.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace offload::http_checks {

namespace {

std::string lower(std::string_view text) {
  std::string out{text};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5)
    return false;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  return ec == std::errc{} && end == port.data() + port.size() && value <= 65535;
}

bool valid_host_name(std::string_view host) {
  return !host.empty() && std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_';
  });
}

bool valid_ipv6_literal(std::string_view inside) {
  return !inside.empty() && std::all_of(inside.begin(), inside.end(), [](unsigned char c) {
    return std::isxdigit(c) || c == ':' || c == '.';
  });
}

std::array<uint8_t, 32> sha256(std::string_view data) {
  std::array<uint8_t, 32> digest{};
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1 ||
      length != digest.size())
    throw std::runtime_error("SHA-256 failed");
  return digest;
}

// "http://host:port" without a trailing slash, lower-case; nullopt unless http(s) and no path.
std::optional<std::string> normalize_origin(std::string_view origin) {
  origin = trim(origin);
  if (!origin.empty() && origin.back() == '/')
    origin.remove_suffix(1);
  auto text = lower(origin);
  std::string_view rest{text};
  if (rest.rfind("http://", 0) == 0)
    rest.remove_prefix(7);
  else if (rest.rfind("https://", 0) == 0)
    rest.remove_prefix(8);
  else
    return std::nullopt;
  if (!parse_authority(rest))
    return std::nullopt; // a path, user info or anything else an Origin never has
  return text;
}

} // namespace

std::optional<authority> parse_authority(std::string_view text) {
  authority out;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || !valid_ipv6_literal(text.substr(1, close - 1)))
      return std::nullopt;
    out.host = lower(text.substr(0, close + 1));
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':')
        return std::nullopt;
      port = rest.substr(1);
      if (!valid_port(port))
        return std::nullopt;
    }
  } else {
    auto colon = text.find(':');
    auto host = text.substr(0, colon);
    if (!valid_host_name(host))
      return std::nullopt;
    out.host = lower(host);
    if (colon != std::string_view::npos) {
      port = text.substr(colon + 1);
      if (!valid_port(port))
        return std::nullopt;
    }
  }
  out.port = std::string{port};
  return out;
}

bool is_loopback_authority(std::string_view text) {
  auto parsed = parse_authority(text);
  return parsed &&
         (parsed->host == "localhost" || parsed->host == "127.0.0.1" || parsed->host == "[::1]");
}

bool host_allowed(std::string_view host, const std::vector<std::string>& allowed) {
  auto parsed = parse_authority(host);
  if (!parsed)
    return false;
  if (is_loopback_authority(host))
    return true;
  for (const auto& entry : allowed) {
    auto want = parse_authority(entry);
    if (want && want->host == parsed->host && (want->port.empty() || want->port == parsed->port))
      return true;
  }
  return false;
}

bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed) {
  auto normalized = normalize_origin(origin);
  if (!normalized)
    return false;
  auto authority_part = normalized->substr(normalized->find("//") + 2);
  if (is_loopback_authority(authority_part))
    return true;
  for (const auto& entry : allowed) {
    auto want = normalize_origin(entry);
    if (want && *want == *normalized)
      return true;
  }
  return false;
}

bool accepts(std::string_view accept, std::string_view media_type) {
  auto slash = media_type.find('/');
  auto major = media_type.substr(0, slash);
  while (!accept.empty()) {
    auto comma = accept.find(',');
    auto item = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
    auto semicolon = item.find(';');
    auto range = trim(item.substr(0, semicolon));
    bool excluded = false;
    while (semicolon != std::string_view::npos) {
      item = item.substr(semicolon + 1);
      semicolon = item.find(';');
      auto param = trim(item.substr(0, semicolon));
      if (param.size() > 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        double q = 1;
        auto value = param.substr(2);
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), q);
        excluded = ec == std::errc{} && q <= 0;
      }
    }
    if (excluded)
      continue;
    if (iequals(range, media_type) || range == "*/*")
      return true;
    auto range_slash = range.find('/');
    if (range_slash != std::string_view::npos && range.substr(range_slash) == "/*" &&
        iequals(range.substr(0, range_slash), major))
      return true;
  }
  return false;
}

bool is_json(std::string_view content_type) {
  return iequals(trim(content_type.substr(0, content_type.find(';'))), "application/json");
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  authorization = trim(authorization);
  constexpr std::string_view scheme = "bearer";
  if (authorization.size() <= scheme.size() ||
      !iequals(authorization.substr(0, scheme.size()), scheme) ||
      authorization[scheme.size()] != ' ')
    return std::nullopt;
  auto token = trim(authorization.substr(scheme.size()));
  if (token.empty() || token.find_first_of(" \t") != std::string_view::npos)
    return std::nullopt;
  return token;
}

bool plausible_session_id(std::string_view id) {
  return !id.empty() && id.size() <= 128 &&
         std::all_of(id.begin(), id.end(), [](unsigned char c) { return c >= 0x21 && c <= 0x7e; });
}

std::string session_id_from(const std::array<uint8_t, 16>& random) {
  std::string out;
  out.reserve(random.size() * 2);
  for (auto byte : random)
    fmt::format_to(std::back_inserter(out), "{:02x}", byte);
  return out;
}

std::string new_session_id() {
  std::array<uint8_t, 16> random{};
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1)
    throw std::runtime_error("the system's random number generator failed");
  return session_id_from(random);
}

std::string session_name(std::string_view id) {
  auto digest = sha256(id);
  std::string out = "http-";
  for (size_t i = 0; i < 8; ++i)
    fmt::format_to(std::back_inserter(out), "{:02x}", digest[i]);
  return out;
}

std::string error_body(int code, std::string_view message) {
  return jsonrpc::make_error(nullptr, code, message);
}

void token_table::add(std::string_view token, std::string agent) {
  if (token.empty())
    throw std::invalid_argument("a token is empty");
  if (agent.empty())
    throw std::invalid_argument("a token has no agent name");
  auto digest = sha256(token);
  if (agent_for(token))
    throw std::invalid_argument(fmt::format("the token of agent \"{}\" is also given for another "
                                            "entry; every token must be unique",
                                            agent));
  entries_.push_back({digest, std::move(agent)});
}

std::optional<std::string> token_table::agent_for(std::string_view token) const {
  auto digest = sha256(token);
  const entry* match = nullptr;
  // Every entry is compared, whatever matched: the time taken says nothing about which did.
  for (const auto& candidate : entries_) {
    bool equal = CRYPTO_memcmp(candidate.digest.data(), digest.data(), digest.size()) == 0;
    if (equal)
      match = &candidate;
  }
  if (!match)
    return std::nullopt;
  return match->agent;
}

} // namespace offload::http_checks
