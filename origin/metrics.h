// The origin's metrics, rendered for GET /metrics in the Prometheus text
// format 0.0.4.
//
// Cost on the request path: each io thread owns a RequestShard and is its
// only writer. A shard's counters are atomics updated with a relaxed load and
// store (no locked read-modify-write, no line shared with another thread), so
// counting a request costs a few plain adds; a scrape sums the shards. Other
// counters (Registry::counter) are shared relaxed atomics, meant for events
// that are rare next to redirects (rejections, failures).
//
// Wiring a new counter (e.g. rate-limit rejections, auth failures): take the
// Registry the component is given at construction (main.cc owns it; Api has
// it as metrics_registry()), call counter() once and keep the reference:
//
//   metrics::Counter& rejected_ = registry.counter(
//       "origin_rate_limit_rejections_total", "Requests answered 429.",
//       {{"limit", "ip"}});
//   ...
//   rejected_.inc();
//
// Values that live in a component (pool sizes, cache entries) are read at
// scrape time by a collector (add_collector) instead.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/prom_text.h"

namespace origin::metrics {

// The label set of requests: bounded, whatever the clients send.
enum class Route : std::uint8_t {
  kRedirect,  // GET/HEAD /{code}, known or not
  kCreate,    // POST /api/links, /shorten
  kLink,      // /api/links/{code}
  kStats,     // /api/links/{code}/stats
  kHealth,    // /healthz
  kReady,     // /readyz
  kMetrics,   // /metrics
  kOther,     // anything else, and requests that did not parse
};
inline constexpr std::size_t kRouteCount = 8;
std::string_view route_name(Route route);

// Upper bounds of the latency histogram buckets, in seconds (plus +Inf): from
// a cached redirect (tens of microseconds) to a slow database (seconds).
inline constexpr std::array<double, 16> kLatencyBounds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};

// Requests of one io thread. record() and the flight counters may only be
// called by one thread (the owner); the Registry reads from any thread.
class alignas(64) RequestShard {
 public:
  // One answered request: its route, HTTP status and the time from its first
  // byte to its response being handed to the socket.
  void record(Route route, int status, std::chrono::nanoseconds latency) {
    const std::size_t r = static_cast<std::size_t>(route);
    bump(requests_[r][status_slot(status)], 1);
    std::size_t bucket = 0;
    const auto ns = static_cast<std::uint64_t>(latency.count() < 0 ? 0 : latency.count());
    while (bucket < kBoundsNs.size() && ns > kBoundsNs[bucket]) ++bucket;
    bump(buckets_[r][bucket], 1);
    bump(latency_ns_[r], ns);
  }

  // A cache miss that started a database load (leader) or waited for one
  // already in flight (joined).
  void flight_led() { bump(flights_led_, 1); }
  void flight_joined() { bump(flights_joined_, 1); }

 private:
  friend class Registry;
  static constexpr std::size_t kStatusSlots = 501;  // 100..599, then "other"
  static constexpr std::array<std::uint64_t, 16> kBoundsNs = {
      100'000,       250'000,       500'000,       1'000'000,     2'500'000,   5'000'000,
      10'000'000,    25'000'000,    50'000'000,    100'000'000,   250'000'000, 500'000'000,
      1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
  using Cell = std::atomic<std::uint64_t>;

  static std::size_t status_slot(int status) {
    return status >= 100 && status <= 599 ? static_cast<std::size_t>(status - 100)
                                          : kStatusSlots - 1;
  }
  // The owner is the only writer: a relaxed load and store, not fetch_add.
  static void bump(Cell& cell, std::uint64_t n) {
    cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  Cell requests_[kRouteCount][kStatusSlots] = {};
  Cell buckets_[kRouteCount][kLatencyBounds.size() + 1] = {};
  Cell latency_ns_[kRouteCount] = {};
  Cell flights_led_{0};
  Cell flights_joined_{0};
};

// A monotonically increasing count, safe to bump from any thread.
class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// Every metric of a process. Thread-safe.
class Registry {
 public:
  // Appends families to a rendering; runs under the registry's lock, so it
  // must not call the Registry.
  using Collector = std::function<void(core::PromText&)>;

  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // A new shard for one io thread, owned by the registry (valid for its life).
  RequestShard& add_request_shard();

  // The counter `name` with `labels`, created on first call; later calls with
  // the same name and labels return the same counter. `name` must match
  // [a-zA-Z_:][a-zA-Z0-9_:]* and end in _total; the help of the first call is
  // kept. The reference stays valid for the registry's life.
  Counter& counter(std::string_view name, std::string_view help, core::PromLabels labels = {});

  void add_collector(Collector collector);

  // The whole exposition: requests by route and status, latency histograms,
  // single-flight counters, the registered counters, then every collector.
  std::string render() const;

 private:
  struct CounterFamily {
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>> by_labels;  // rendered labels
  };

  mutable std::mutex mu_;  // guards everything below
  std::vector<std::unique_ptr<RequestShard>> shards_;
  std::map<std::string, CounterFamily> counters_;
  std::vector<Collector> collectors_;
};

}  // namespace origin::metrics
