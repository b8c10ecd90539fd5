// Groups work items that wait for the database into batches, group-commit
// style: a drainer that becomes free takes everything queued (up to a cap)
// and handles it as one unit, so under load one query answers many items and
// at low load a batch is one item. There is no timer: nothing waits for a
// batch to fill.
//
// Invariants:
//  1. At most max_drainers drainers are active: started (the start function
//     was called for them) and not yet retired (their drain() returned).
//  2. Every pushed item is handed to exactly one run() call, in push order,
//     and a run() call gets between 1 and max_batch items.
//  3. No item is stranded: whenever an item is queued, some active drainer
//     will take it: push() and a drainer that leaves items behind start a
//     new drainer when none is ready (started and not running a batch) and
//     the cap allows; a drainer retires only when it finds the queue empty.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace origin {

struct BatchQueueOptions {
  std::size_t max_batch = 128;   // items per batch, at least 1
  std::size_t max_drainers = 1;  // drainers running at once, at least 1
};

// Thread-safe: every member function may be called from any thread.
template <typename Item>
class BatchQueue {
 public:
  // `start_drainer` must arrange for drain() to be called once, on some
  // thread (typically: post a job to a thread pool). It is called without
  // the queue's lock held, from push() or drain(), and must not throw.
  BatchQueue(BatchQueueOptions options, std::function<void()> start_drainer)
      : max_batch_(std::max<std::size_t>(options.max_batch, 1)),
        max_drainers_(std::max<std::size_t>(options.max_drainers, 1)),
        start_drainer_(std::move(start_drainer)) {}
  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  // Queues `item`, starting a drainer when none is ready to take it.
  void push(Item item) {
    bool start = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(item));
      start = claim_drainer_locked();
    }
    if (start) start_drainer_();
  }

  // The body of a drainer started by `start_drainer`: takes up to max_batch
  // queued items at a time and calls run(std::vector<Item>&) with them, until
  // the queue is empty. `run` should not throw; if it does, the drainer
  // retires (starting a replacement when items are left) and the exception
  // propagates.
  template <typename Run>
  void drain(Run&& run) {
    std::vector<Item> batch;
    for (;;) {
      batch.clear();
      bool start = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.empty()) {
          --active_;
          return;
        }
        const std::size_t n = std::min(queue_.size(), max_batch_);
        batch.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        ++busy_;
        ++batches_;
        // More than one batch was waiting: let another drainer take the rest
        // now rather than after this batch.
        if (!queue_.empty()) start = claim_drainer_locked();
      }
      if (start) start_drainer_();
      try {
        run(batch);
      } catch (...) {
        bool replace = false;
        {
          std::lock_guard<std::mutex> lock(mu_);
          --busy_;
          --active_;
          if (!queue_.empty()) replace = claim_drainer_locked();
        }
        if (replace) start_drainer_();
        throw;
      }
      std::lock_guard<std::mutex> lock(mu_);
      --busy_;
    }
  }

  struct Stats {
    std::size_t queued = 0;     // items waiting for a drainer
    std::size_t active = 0;     // drainers started and not retired
    std::size_t busy = 0;       // drainers running a batch now
    std::uint64_t batches = 0;  // run() calls so far
  };
  Stats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {queue_.size(), active_, busy_, batches_};
  }

 private:
  // True (and counts the new drainer) when no active drainer is ready to
  // take what is queued and the cap allows one more.
  bool claim_drainer_locked() {
    if (active_ > busy_ || active_ >= max_drainers_) return false;
    ++active_;
    return true;
  }

  const std::size_t max_batch_;
  const std::size_t max_drainers_;
  const std::function<void()> start_drainer_;

  mutable std::mutex mu_;  // guards everything below
  std::deque<Item> queue_;
  std::size_t active_ = 0;
  std::size_t busy_ = 0;
  std::uint64_t batches_ = 0;
};

}  // namespace origin
