// BoundedQueue: the per-stream chunk queue between the engine's worker and the consumer.
//
// Back-pressure works by scheduling, not by blocking the producer: the worker only starts a
// block for a stream whose queue has room (full() is false), so a slow consumer stalls its own
// stream and no other. [A producer-blocking push would stall every stream sharing the worker.]
// The consumer's pop() blocks with a timeout and is called with the GIL released. close() ends
// the stream: pop() drains what is queued, then reports `closed`. Header-only so tests can
// instantiate it with int (bindings/testing.cc).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>

#include "ofrt/chunk.h"

namespace ofrt {

template <typename T>
class BoundedQueue {
 public:
  //! `on_pop` runs (without the queue lock) after every successful pop: the engine uses it to
  //! wake its worker when room appears.
  explicit BoundedQueue(size_t capacity, std::function<void()> on_pop = {})
      : capacity_(capacity), on_pop_(std::move(on_pop)) {}

  size_t capacity() const { return capacity_; }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return items_.size();
  }
  bool full() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return items_.size() >= capacity_;
  }
  bool closed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }

  //! Appends `item` unless the queue is full or closed; returns whether it was appended.
  bool try_push(T item) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closed_ || items_.size() >= capacity_) return false;
      items_.push_back(std::move(item));
    }
    cv_.notify_all();
    return true;
  }

  //! The oldest item, waiting up to `timeout_s` (< 0: forever). nullopt when the queue is closed
  //! and drained (`*timed_out` false) or on timeout (`*timed_out` true).
  std::optional<T> pop(double timeout_s, bool* timed_out = nullptr) {
    std::optional<T> out;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      const auto ready = [this] { return !items_.empty() || closed_; };
      bool ok = true;
      if (timeout_s < 0) {
        cv_.wait(lock, ready);
      } else {
        ok = cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), ready);
      }
      if (timed_out != nullptr) *timed_out = !ok;
      if (!ok || items_.empty()) return out;
      out = std::move(items_.front());
      items_.pop_front();
    }
    if (on_pop_) on_pop_();
    return out;
  }

  //! No more pushes; with `drop`, queued items are discarded too. Wakes every waiter.
  void close(bool drop = false) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
      if (drop) items_.clear();
    }
    cv_.notify_all();
  }

 private:
  const size_t capacity_;
  std::function<void()> on_pop_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<T> items_;
  bool closed_ = false;
};

//! The queue type of a stream.
using ChunkQueue = BoundedQueue<StreamChunk>;

}  // namespace ofrt
