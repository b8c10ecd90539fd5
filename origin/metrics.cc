#include "origin/metrics.h"

#include <stdexcept>

namespace origin::metrics {
namespace {

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

constexpr std::string_view kTotalSuffix = "_total";

}  // namespace

std::string_view route_name(Route route) {
  switch (route) {
    case Route::kRedirect:
      return "redirect";
    case Route::kCreate:
      return "create";
    case Route::kLink:
      return "link";
    case Route::kStats:
      return "stats";
    case Route::kHealth:
      return "health";
    case Route::kReady:
      return "ready";
    case Route::kMetrics:
      return "metrics";
    case Route::kOther:
      break;
  }
  return "other";
}

RequestShard& Registry::add_request_shard() {
  std::lock_guard<std::mutex> lock(mu_);
  shards_.push_back(std::make_unique<RequestShard>());
  return *shards_.back();
}

Counter& Registry::counter(std::string_view name, std::string_view help, core::PromLabels labels) {
  if (!valid_metric_name(name) || name.size() <= kTotalSuffix.size() ||
      name.substr(name.size() - kTotalSuffix.size()) != kTotalSuffix) {
    throw std::invalid_argument("bad counter name " + std::string(name));
  }
  std::lock_guard<std::mutex> lock(mu_);
  CounterFamily& family = counters_[std::string(name)];
  if (family.help.empty()) family.help = std::string(help);
  std::unique_ptr<Counter>& counter = family.by_labels[core::render_prom_labels(labels)];
  if (!counter) counter = std::make_unique<Counter>();
  return *counter;
}

void Registry::add_collector(Collector collector) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  core::PromText out;
  const auto load = [](const std::atomic<std::uint64_t>& cell) {
    return cell.load(std::memory_order_relaxed);
  };

  out.family("origin_http_requests_total", "counter",
             "HTTP requests answered, by route and status code.");
  for (std::size_t r = 0; r < kRouteCount; ++r) {
    const std::string_view route = route_name(static_cast<Route>(r));
    for (std::size_t slot = 0; slot < RequestShard::kStatusSlots; ++slot) {
      std::uint64_t total = 0;
      for (const auto& shard : shards_) total += load(shard->requests_[r][slot]);
      if (total == 0) continue;
      const std::string status =
          slot + 1 == RequestShard::kStatusSlots ? "other" : std::to_string(slot + 100);
      out.sample("origin_http_requests_total", {{"route", route}, {"status", status}}, total);
    }
  }

  constexpr std::string_view kDuration = "origin_http_request_duration_seconds";
  out.family(kDuration, "histogram",
             "Time from a request's first byte to its response handed to the socket.");
  for (std::size_t r = 0; r < kRouteCount; ++r) {
    const std::string_view route = route_name(static_cast<Route>(r));
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b <= kLatencyBounds.size(); ++b) {
      for (const auto& shard : shards_) cumulative += load(shard->buckets_[r][b]);
      const std::string le =
          b == kLatencyBounds.size() ? "+Inf" : core::format_prom_value(kLatencyBounds[b]);
      out.sample(std::string(kDuration) + "_bucket", {{"route", route}, {"le", le}}, cumulative);
    }
    std::uint64_t ns = 0;
    for (const auto& shard : shards_) ns += load(shard->latency_ns_[r]);
    out.sample(std::string(kDuration) + "_sum", {{"route", route}}, static_cast<double>(ns) / 1e9);
    out.sample(std::string(kDuration) + "_count", {{"route", route}}, cumulative);
  }

  std::uint64_t led = 0;
  std::uint64_t joined = 0;
  for (const auto& shard : shards_) {
    led += load(shard->flights_led_);
    joined += load(shard->flights_joined_);
  }
  out.single("origin_redirect_flights_led_total", "counter",
             "Redirect cache misses that started a database lookup.", led);
  out.single("origin_redirect_flights_joined_total", "counter",
             "Redirect cache misses that waited for a lookup of the same code already running.",
             joined);

  for (const auto& [name, family] : counters_) {
    out.family(name, "counter", family.help);
    for (const auto& [labels, counter] : family.by_labels) {
      out.sample_raw(name, labels, std::to_string(counter->value()));
    }
  }
  for (const Collector& collector : collectors_) collector(out);
  return out.take();
}

}  // namespace origin::metrics
