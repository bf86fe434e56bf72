#include "protocol/chaos.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>

namespace offload::chaos {

namespace {

// FNV-1a: a stable hash of the key (std::hash may differ between standard libraries, and a seed
// should mean the same faults wherever the daemon was built).
uint64_t hash_key(std::string_view key) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// SplitMix64's finaliser: spreads every input bit over the whole word.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The random stream of one decision point. mt19937_64's output is fixed by the standard, and the
// draws below use its raw bits (the standard's distributions differ between libraries).
std::mt19937_64 stream(const settings& s, fault f, std::string_view key, uint32_t attempt) {
  auto point = hash_key(key) ^ mix((uint64_t{static_cast<uint8_t>(f)} << 32) | attempt);
  return std::mt19937_64{mix(s.seed ^ mix(point))};
}

// A uniform draw from [0, 1) with 53 random bits.
double unit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

bool draw(std::mt19937_64& rng, double probability) {
  // Always one draw, so that what is drawn next does not depend on the probability's value.
  auto u = unit(rng);
  return probability >= 1 || u < probability;
}

} // namespace

std::string_view to_string(fault f) {
  switch (f) {
  case fault::kill_task:
    return "kill_task";
  case fault::delay_message:
    return "delay_message";
  case fault::crash_backend:
    return "crash_backend";
  }
  return "unknown";
}

double settings::probability(fault f) const {
  switch (f) {
  case fault::kill_task:
    return kill_task;
  case fault::delay_message:
    return delay_message;
  case fault::crash_backend:
    return crash_backend;
  }
  return 0;
}

bool strikes(const settings& s, fault f, std::string_view key, uint32_t attempt) {
  auto p = s.probability(f);
  if (!s.enabled || !(p > 0))
    return false;
  auto rng = stream(s, f, key, attempt);
  return draw(rng, p);
}

std::optional<std::chrono::milliseconds> delay_for(const settings& s, std::string_view key,
                                                   uint32_t attempt) {
  auto p = s.delay_message;
  if (!s.enabled || !(p > 0))
    return std::nullopt;
  auto rng = stream(s, fault::delay_message, key, attempt);
  if (!draw(rng, p))
    return std::nullopt;
  auto low = s.delay_min.count();
  auto span = static_cast<uint64_t>(std::max<int64_t>(s.delay_max.count() - low, 0));
  return std::chrono::milliseconds{low + static_cast<int64_t>(rng() % (span + 1))};
}

std::string describe(const settings& s) {
  return fmt::format("kill_task {}, delay_message {} ({}..{} ms), crash_backend {}, seed {}",
                     s.kill_task, s.delay_message, s.delay_min.count(), s.delay_max.count(),
                     s.crash_backend, s.seed);
}

} // namespace offload::chaos
