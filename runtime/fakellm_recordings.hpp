#pragma once
// The directories of `offload fakellm --record DIR` and `--replay DIR`: one file per exchange,
// named after the request's key and its occurrence (protocol/fakellm_recording.hpp has the
// format).

#include "protocol/fakellm_recording.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace offload::fakellm_detail {

// Where recorded exchanges go. Recordings accumulate: a key seen in an earlier run continues its
// numbering, so a second recording session adds to the first instead of overwriting it.
class recording_writer {
public:
  // Creates the directory if needed and reads the numbering of what is there; throws
  // std::runtime_error when it cannot.
  explicit recording_writer(std::string directory);

  // The occurrence number of the next exchange of `key`, taken at the request's arrival, so that
  // identical requests are numbered in the order they came.
  uint64_t take_occurrence(const std::string& key);

  // Writes the exchange's file (via a temporary file and a rename, so a reader never sees half
  // of one); returns an error message, empty on success.
  std::string save(const fakellm::recorded_exchange& exchange) const;

  const std::string& directory() const { return directory_; }

private:
  std::string directory_;
  std::map<std::string, uint64_t> last_; // the highest occurrence taken, by key
};

// The exchanges of a recording directory, loaded at start. The Nth request with a key gets the
// Nth exchange of that key; requests past the last exchange get the last one again, so a client
// that retries more often than while recording still gets an answer.
class recording_library {
public:
  // Reads every *.json file of `directory`; throws std::runtime_error naming the first file that
  // is not a recorded exchange, or a key whose occurrences have a gap.
  explicit recording_library(std::string directory);

  // The exchange for the next request with `key`; nullptr when the key was never recorded.
  const fakellm::recorded_exchange* next(const std::string& key);

  // Starts every key over at its first exchange (POST /_fake/reset_stats).
  void rewind() { served_.clear(); }

  size_t size() const;
  const std::string& directory() const { return directory_; }

private:
  std::string directory_;
  std::map<std::string, std::vector<fakellm::recorded_exchange>> exchanges_; // by occurrence
  std::map<std::string, uint64_t> served_;
};

} // namespace offload::fakellm_detail
