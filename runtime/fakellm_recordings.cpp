#include "runtime/fakellm_recordings.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace offload::fakellm_detail {

namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw std::runtime_error(fmt::format("{}: cannot read the file", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<fakellm::recorded_exchange> read_directory(const std::string& directory) {
  std::vector<fakellm::recorded_exchange> result;
  std::error_code ec;
  if (!fs::is_directory(directory, ec))
    throw std::runtime_error(fmt::format("{}: not a directory", directory));
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(directory))
    if (entry.is_regular_file() && entry.path().extension() == ".json")
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    auto parsed = fakellm::parse_exchange(read_file(path));
    if (!parsed.ok())
      throw std::runtime_error(
          fmt::format("{}: not a recorded exchange: {}", path.string(), parsed.error));
    result.push_back(std::move(*parsed.exchange));
  }
  return result;
}

} // namespace

recording_writer::recording_writer(std::string directory)
    : directory_(std::move(directory)) {
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec)
    throw std::runtime_error(
        fmt::format("{}: cannot create the directory: {}", directory_, ec.message()));
  for (const auto& exchange : read_directory(directory_)) {
    auto& last = last_[exchange.key];
    last = std::max(last, exchange.occurrence);
  }
}

uint64_t recording_writer::take_occurrence(const std::string& key) {
  return ++last_[key];
}

std::string recording_writer::save(const fakellm::recorded_exchange& exchange) const {
  auto path = fs::path{directory_} / fakellm::exchange_file_name(exchange.key, exchange.occurrence);
  auto temporary = path;
  temporary += ".tmp";
  {
    std::ofstream out{temporary, std::ios::binary | std::ios::trunc};
    out << fakellm::serialize_exchange(exchange);
    if (!out)
      return fmt::format("{}: cannot write the file", temporary.string());
  }
  std::error_code ec;
  fs::rename(temporary, path, ec);
  if (ec)
    return fmt::format("{}: cannot rename to {}: {}", temporary.string(), path.string(),
                       ec.message());
  return {};
}

recording_library::recording_library(std::string directory)
    : directory_(std::move(directory)) {
  for (auto& exchange : read_directory(directory_))
    exchanges_[exchange.key].push_back(std::move(exchange));
  for (auto& [key, list] : exchanges_) {
    std::sort(list.begin(), list.end(),
              [](const auto& a, const auto& b) { return a.occurrence < b.occurrence; });
    for (size_t i = 0; i < list.size(); ++i)
      if (list[i].occurrence != i + 1)
        throw std::runtime_error(fmt::format("{}: the exchanges of key {} skip from {} to {}; "
                                             "a file is missing",
                                             directory_, key, i, list[i].occurrence));
  }
}

const fakellm::recorded_exchange* recording_library::next(const std::string& key) {
  auto found = exchanges_.find(key);
  if (found == exchanges_.end())
    return nullptr;
  auto& served = served_[key];
  auto index = std::min<uint64_t>(served, found->second.size() - 1);
  ++served;
  return &found->second[index];
}

size_t recording_library::size() const {
  size_t total = 0;
  for (const auto& [key, list] : exchanges_)
    total += list.size();
  return total;
}

} // namespace offload::fakellm_detail
