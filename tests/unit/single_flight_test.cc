#include "origin/single_flight.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace origin {
namespace {

using Flights = SingleFlight<std::string, int>;

TEST(SingleFlight, TenThousandConcurrentJoinersShareOneLoad) {
  Flights flights;
  constexpr int kThreads = 8;
  constexpr int kJoiners = 10'000;
  std::vector<std::atomic<int>> calls(kJoiners);
  std::atomic<int> wrong_values{0};
  std::atomic<int> loads{0};
  std::atomic<int> joined{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      bool leader = false;
      for (int i = t; i < kJoiners; i += kThreads) {
        const bool first = flights.join("campaign", [&, i](const int& value) {
          ++calls[static_cast<std::size_t>(i)];
          if (value != 42) ++wrong_values;
        });
        ++joined;
        if (first) ++loads;
        leader = leader || first;
      }
      // The load ends only once every request has arrived, as when thousands
      // of first requests for a code come in during one database query.
      if (!leader) return;
      while (joined.load() < kJoiners) std::this_thread::yield();
      flights.complete("campaign", 42);
    });
  }
  go = true;
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ(wrong_values.load(), 0);
  int not_once = 0;
  for (auto& c : calls) not_once += c.load() != 1;
  EXPECT_EQ(not_once, 0) << "every callback is called exactly once";
}

TEST(SingleFlight, EveryCallbackIsCalledOnceWhileFlightsStartAndEndConcurrently) {
  Flights flights;
  constexpr int kThreads = 8;
  constexpr int kJoinsPerThread = 20'000;
  std::vector<std::atomic<int>> calls(kThreads * kJoinsPerThread);
  std::atomic<int> loads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kJoinsPerThread; ++i) {
        const auto slot = static_cast<std::size_t>(t * kJoinsPerThread + i);
        const std::string key = "k" + std::to_string(i % 3);
        if (flights.join(key, [&, slot](const int&) { ++calls[slot]; })) {
          ++loads;
          flights.complete(key, i);  // an instant load
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(flights.in_flight(), 0u);
  int not_once = 0;
  for (auto& c : calls) not_once += c.load() != 1;
  EXPECT_EQ(not_once, 0);
  // Whether any joins coalesce here depends on scheduling (on a loaded
  // machine the threads may run one after another); coalescing is tested
  // with a held flight above.
  EXPECT_GE(loads.load(), 3);
}

TEST(SingleFlight, ANewFlightStartsAfterCompletion) {
  Flights flights;
  std::vector<int> seen;
  EXPECT_TRUE(flights.join("k", [&](const int& v) { seen.push_back(v); }));
  EXPECT_FALSE(flights.join("k", [&](const int& v) { seen.push_back(v); }));
  EXPECT_EQ(flights.complete("k", 1), 2u);
  EXPECT_TRUE(flights.join("k", [&](const int& v) { seen.push_back(v); }));
  EXPECT_EQ(flights.complete("k", 2), 1u);
  EXPECT_EQ(seen, (std::vector<int>{1, 1, 2}));
  EXPECT_EQ(flights.in_flight(), 0u);
}

TEST(SingleFlight, KeysFlyIndependently) {
  Flights flights;
  int a = 0;
  int b = 0;
  EXPECT_TRUE(flights.join("a", [&](const int& v) { a = v; }));
  EXPECT_TRUE(flights.join("b", [&](const int& v) { b = v; }));
  EXPECT_EQ(flights.in_flight(), 2u);
  flights.complete("b", 7);
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 7);
  flights.complete("a", 5);
  EXPECT_EQ(a, 5);
}

TEST(SingleFlight, CompletingAKeyNotInFlightCallsNothing) {
  Flights flights;
  EXPECT_EQ(flights.complete("nobody", 1), 0u);
}

TEST(SingleFlight, CallbacksRunWithoutTheLockHeld) {
  Flights flights;
  bool rejoined_as_leader = false;
  flights.join("k", [&](const int&) {
    // Would deadlock if complete() still held the lock; the finished flight
    // is already forgotten, so this starts a new one.
    rejoined_as_leader = flights.join("k", [](const int&) {});
  });
  flights.complete("k", 1);
  EXPECT_TRUE(rejoined_as_leader);
  EXPECT_EQ(flights.complete("k", 2), 1u);
}

TEST(SingleFlight, AThrowingCallbackDoesNotStopTheOthers) {
  Flights flights;
  int called = 0;
  flights.join("k", [&](const int&) { ++called; });
  flights.join("k", [&](const int&) {
    ++called;
    throw std::runtime_error("first");
  });
  flights.join("k", [&](const int&) {
    ++called;
    throw std::runtime_error("second");
  });
  flights.join("k", [&](const int&) { ++called; });
  try {
    flights.complete("k", 1);
    ADD_FAILURE() << "the exception was swallowed";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "first");
  }
  EXPECT_EQ(called, 4);
  EXPECT_EQ(flights.in_flight(), 0u);
}

TEST(SingleFlight, ValuesMayBeSharedResults) {
  SingleFlight<std::string, std::shared_ptr<const std::string>> flights;
  std::vector<const std::string*> seen;
  for (int i = 0; i < 3; ++i) {
    flights.join("k",
                 [&](const std::shared_ptr<const std::string>& v) { seen.push_back(v.get()); });
  }
  auto value = std::make_shared<const std::string>("https://example.com/");
  flights.complete("k", value);
  ASSERT_EQ(seen.size(), 3u);
  for (const std::string* p : seen) EXPECT_EQ(p, value.get()) << "no copy per waiter";
}

}  // namespace
}  // namespace origin
