#pragma once
// The waiting line of a backend: one FIFO per session, served round-robin so that a session
// with a big batch cannot starve another's single request. Interactive requests, and batch
// requests that have waited longer than the aging threshold, go first (oldest of them first).
// Plain data structure, no actor: the backend owns one and the tests drive it directly.

#include "actors/messages.hpp"

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace offload {

template <class T>
class fair_queue {
public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  void push(const std::string& key, request_priority priority, time_point now, T item) {
    auto& line = lines_[key];
    if (line.empty())
      rotation_.push_back(key);
    line.push_back(entry{std::move(item), priority, now, next_seq_++});
    ++size_;
  }

  // Takes the next item to serve at `now`, or nothing when empty.
  std::optional<T> pop(time_point now, duration aging) {
    if (size_ == 0)
      return std::nullopt;
    // Urgent heads first: interactive, or aged past the threshold; the oldest of them wins.
    size_t chosen = rotation_.size();
    uint64_t best_seq = 0;
    for (size_t i = 0; i < rotation_.size(); ++i) {
      const auto& head = lines_[rotation_[i]].front();
      bool urgent = head.priority == request_priority::interactive || now - head.enqueued >= aging;
      if (urgent && (chosen == rotation_.size() || head.seq < best_seq)) {
        chosen = i;
        best_seq = head.seq;
      }
    }
    if (chosen == rotation_.size())
      chosen = 0; // nobody urgent: plain round-robin
    auto key = std::move(rotation_[chosen]);
    rotation_.erase(rotation_.begin() + static_cast<std::ptrdiff_t>(chosen));
    auto& line = lines_[key];
    T item = std::move(line.front().item);
    line.pop_front();
    --size_;
    if (line.empty())
      lines_.erase(key);
    else
      rotation_.push_back(std::move(key)); // served: to the back of the round
    return item;
  }

  // Removes every item for which `pred(item)` holds, calling `removed(item)` on each.
  template <class Pred, class Removed>
  void remove_if(Pred pred, Removed removed) {
    for (auto it = rotation_.begin(); it != rotation_.end();) {
      auto& line = lines_[*it];
      for (auto e = line.begin(); e != line.end();) {
        if (pred(e->item)) {
          removed(e->item);
          e = line.erase(e);
          --size_;
        } else {
          ++e;
        }
      }
      if (line.empty()) {
        lines_.erase(*it);
        it = rotation_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Removes the items enqueued at or before `cutoff`, calling `expired(item)` on each.
  template <class Expired>
  void expire(time_point cutoff, Expired expired) {
    for (auto it = rotation_.begin(); it != rotation_.end();) {
      auto& line = lines_[*it];
      // Each line is in arrival order, so the expired ones are a prefix.
      while (!line.empty() && line.front().enqueued <= cutoff) {
        expired(line.front().item);
        line.pop_front();
        --size_;
      }
      if (line.empty()) {
        lines_.erase(*it);
        it = rotation_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // When the longest-waiting item arrived, if any.
  std::optional<time_point> oldest() const {
    std::optional<time_point> result;
    for (const auto& [key, line] : lines_)
      if (!result || line.front().enqueued < *result)
        result = line.front().enqueued;
    return result;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

private:
  struct entry {
    T item;
    request_priority priority;
    time_point enqueued;
    uint64_t seq; // arrival order across all lines
  };
  std::unordered_map<std::string, std::deque<entry>> lines_;
  std::deque<std::string> rotation_; // keys with waiting items, next to serve first
  size_t size_ = 0;
  uint64_t next_seq_ = 0;
};

} // namespace offload
