#include "origin/batch_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace origin {
namespace {

using Batches = std::vector<std::vector<int>>;

// A queue whose drainers the test runs by hand: start_drainer only counts.
struct ManualQueue {
  explicit ManualQueue(BatchQueueOptions options) : queue(options, [this] { ++starts; }) {}
  // Runs one started drainer to its end, recording its batches in `batches`.
  template <typename During>
  void run_drainer(During during) {
    queue.drain([&](std::vector<int>& batch) {
      batches.push_back(batch);
      during(batches.size());
    });
  }
  void run_drainer() {
    run_drainer([](std::size_t) {});
  }
  int starts = 0;
  Batches batches;
  BatchQueue<int> queue;
};

TEST(BatchQueue, AnItemPushedWhileNothingRunsStartsADrainerAndIsABatchOfOne) {
  ManualQueue q({128, 4});
  q.queue.push(7);
  EXPECT_EQ(q.starts, 1);
  q.run_drainer();
  EXPECT_EQ(q.batches, (Batches{{7}}));
  const auto stats = q.queue.stats();
  EXPECT_EQ(stats.active, 0u) << "the drainer retired on an empty queue";
  EXPECT_EQ(stats.queued, 0u);
  EXPECT_EQ(stats.batches, 1u);
}

TEST(BatchQueue, ItemsPushedBeforeTheStartedDrainerRunsJoinItsBatch) {
  ManualQueue q({128, 4});
  q.queue.push(1);
  q.queue.push(2);
  q.queue.push(3);
  EXPECT_EQ(q.starts, 1) << "a drainer already started will take them";
  q.run_drainer();
  EXPECT_EQ(q.batches, (Batches{{1, 2, 3}}));
}

TEST(BatchQueue, ItemsArrivingWhileTheOnlyDrainerIsBusyFormTheNextBatch) {
  ManualQueue q({128, 1});
  q.queue.push(1);
  q.run_drainer([&](std::size_t batch) {
    if (batch == 1) {
      for (int i = 2; i <= 5; ++i) q.queue.push(i);
    }
  });
  EXPECT_EQ(q.starts, 1) << "the cap of one drainer allows no second";
  EXPECT_EQ(q.batches, (Batches{{1}, {2, 3, 4, 5}}));
}

TEST(BatchQueue, ABusyDrainerGetsAHelperUpToTheCap) {
  ManualQueue q({128, 2});
  q.queue.push(1);
  ASSERT_EQ(q.starts, 1);
  q.run_drainer([&](std::size_t batch) {
    if (batch != 1) return;
    q.queue.push(2);
    EXPECT_EQ(q.starts, 2) << "no drainer was ready: a second one starts";
    q.queue.push(3);
    EXPECT_EQ(q.starts, 2) << "the second one is ready (started, not yet running)";
  });
  // The first drainer, free again, took what the second was started for.
  EXPECT_EQ(q.batches, (Batches{{1}, {2, 3}}));
  EXPECT_EQ(q.queue.stats().active, 1u) << "the second drainer is still to run";
  q.run_drainer();
  EXPECT_EQ(q.batches.size(), 2u) << "it found nothing and retired";
  EXPECT_EQ(q.queue.stats().active, 0u);
}

TEST(BatchQueue, BatchesAreCappedAndTheRestIsOfferedToAnotherDrainer) {
  ManualQueue q({128, 3});
  for (int i = 0; i < 300; ++i) q.queue.push(i);
  ASSERT_EQ(q.starts, 1);
  q.run_drainer([&](std::size_t batch) {
    if (batch == 1) {
      EXPECT_EQ(q.starts, 2) << "172 items left behind, no drainer ready";
    }
  });
  ASSERT_EQ(q.batches.size(), 3u);
  EXPECT_EQ(q.batches[0].size(), 128u);
  EXPECT_EQ(q.batches[1].size(), 128u);
  EXPECT_EQ(q.batches[2].size(), 44u);
  std::vector<int> all;
  for (const auto& b : q.batches) all.insert(all.end(), b.begin(), b.end());
  for (int i = 0; i < 300; ++i) ASSERT_EQ(all[static_cast<std::size_t>(i)], i) << "in push order";
  q.run_drainer();  // the helper, started while items were left
  EXPECT_EQ(q.batches.size(), 3u);
  EXPECT_EQ(q.queue.stats().active, 0u);
}

TEST(BatchQueue, ADrainerWhoseRunThrowsRetiresAndAReplacementTakesTheRest) {
  ManualQueue q({2, 1});
  for (int i = 1; i <= 5; ++i) q.queue.push(i);
  ASSERT_EQ(q.starts, 1);
  EXPECT_THROW(q.run_drainer([](std::size_t batch) {
    if (batch == 1) throw std::runtime_error("run failed");
  }),
               std::runtime_error);
  EXPECT_EQ(q.starts, 2) << "items were left: a replacement was started";
  q.run_drainer();
  EXPECT_EQ(q.batches, (Batches{{1, 2}, {3, 4}, {5}}));
  EXPECT_EQ(q.queue.stats().active, 0u);
}

// Real threads: producers push while a small pool runs the drainers. Every
// item is run exactly once, no batch exceeds the cap, and no more drainers
// run at once than allowed.
TEST(BatchQueue, EveryItemIsRunOnceUnderConcurrentPushes) {
  constexpr int kProducers = 6;
  constexpr int kItemsEach = 5000;
  constexpr std::size_t kMaxBatch = 16;
  constexpr std::size_t kMaxDrainers = 3;

  // A pool of 4 threads running posted jobs (more threads than drainers).
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> jobs;
  bool stopping = false;
  std::unique_ptr<BatchQueue<int>> queue;

  std::vector<std::atomic<int>> runs(kProducers * kItemsEach);
  std::atomic<int> running{0};
  std::atomic<int> most_running{0};
  std::atomic<int> oversized{0};
  std::atomic<int> batches{0};
  auto run = [&](std::vector<int>& batch) {
    const int now = ++running;
    int seen = most_running.load();
    while (now > seen && !most_running.compare_exchange_weak(seen, now)) {
    }
    if (batch.empty() || batch.size() > kMaxBatch) ++oversized;
    for (int item : batch) ++runs[static_cast<std::size_t>(item)];
    ++batches;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    --running;
  };
  queue = std::make_unique<BatchQueue<int>>(BatchQueueOptions{kMaxBatch, kMaxDrainers}, [&] {
    std::lock_guard<std::mutex> lock(mu);
    jobs.push_back([&] { queue->drain(run); });
    cv.notify_one();
  });

  std::vector<std::thread> pool;
  for (int i = 0; i < 4; ++i) {
    pool.emplace_back([&] {
      for (;;) {
        std::function<void()> job;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return stopping || !jobs.empty(); });
          if (jobs.empty()) return;
          job = std::move(jobs.front());
          jobs.pop_front();
        }
        job();
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kItemsEach; ++i) queue->push(p * kItemsEach + i);
    });
  }
  for (auto& t : producers) t.join();
  // Every pushed item is run by a drainer that is active or ready.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (queue->stats().active != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  for (auto& t : pool) t.join();

  const auto stats = queue->stats();
  EXPECT_EQ(stats.active, 0u);
  EXPECT_EQ(stats.queued, 0u);
  int not_once = 0;
  for (auto& r : runs) not_once += r.load() != 1;
  EXPECT_EQ(not_once, 0) << "every item run exactly once";
  EXPECT_EQ(oversized.load(), 0);
  EXPECT_LE(most_running.load(), static_cast<int>(kMaxDrainers));
  EXPECT_EQ(stats.batches, static_cast<std::uint64_t>(batches.load()));
}

}  // namespace
}  // namespace origin
