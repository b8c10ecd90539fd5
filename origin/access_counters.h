// Counters of refused requests, for /metrics: plain atomics, incremented with
// relaxed order by the handlers, read by whoever renders the metrics.
// Suggested Prometheus names are given per field; none of them ever carries
// a key or any part of one.
#pragma once

#include <atomic>
#include <cstdint>

namespace origin {

struct AccessCounters {
  // origin_auth_failures_total{reason="missing"}: 401, no key presented
  // where one is needed.
  std::atomic<std::uint64_t> auth_missing{0};
  // origin_auth_failures_total{reason="invalid"}: 401, a key that is unknown
  // or revoked.
  std::atomic<std::uint64_t> auth_invalid{0};
  // origin_auth_failures_total{reason="forbidden"}: 403, a valid key that
  // neither created the link nor is an admin key.
  std::atomic<std::uint64_t> auth_forbidden{0};
  // origin_rate_limit_rejections_total{limit="ip"}: 429 by the per-IP limit.
  std::atomic<std::uint64_t> rate_limited_ip{0};
  // origin_rate_limit_rejections_total{limit="key"}: 429 by the per-key limit.
  std::atomic<std::uint64_t> rate_limited_key{0};
};

}  // namespace origin
