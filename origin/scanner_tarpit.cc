#include "origin/scanner_tarpit.h"

#include <algorithm>
#include <limits>

namespace origin {
namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

std::int64_t to_ms(ScannerTarpit::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// FNV-1a: the key is 16 bytes, and a scanner cannot choose its address to
// collide with a victim's set at will any better than with any other hash
// of an address it does not control.
std::size_t hash_of(const IpAddress& address) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char b : address.bytes) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return static_cast<std::size_t>(h ^ (h >> 29));
}

}  // namespace

struct ScannerTarpit::Slot {
  IpAddress key;
  bool used = false;
  std::int64_t second = 0;     // the window's current second (ms / 1000)
  std::uint32_t current = 0;   // unknown codes in that second
  std::uint32_t previous = 0;  // in the second before it
  std::int64_t last_seen_ms = 0;
  std::int64_t tarpit_until_ms = kNever;  // end of the episode
};

struct ScannerTarpit::Set {
  std::mutex mu;  // guards slots
  Slot slots[kWays];
};

ScannerTarpit::ScannerTarpit(ScannerTarpitOptions options)
    : options_(options),
      set_count_(std::max<std::size_t>(1, (options.capacity + kWays - 1) / kWays)),
      sets_(new Set[set_count_]) {}

ScannerTarpit::~ScannerTarpit() = default;

ScannerTarpit::Verdict ScannerTarpit::note_unknown(const IpAddress& client, Clock::time_point now) {
  Verdict verdict;
  if (!enabled()) return verdict;
  IpAddress key = client;
  if (!key.is_v4()) std::fill(key.bytes.begin() + 8, key.bytes.end(), 0);
  const std::int64_t now_ms = to_ms(now);
  const std::int64_t second = now_ms / 1000;

  Set& set = sets_[hash_of(key) % set_count_];
  std::lock_guard<std::mutex> lock(set.mu);
  Slot* slot = nullptr;
  for (Slot& s : set.slots) {
    if (s.used && s.key == key) {
      slot = &s;
      break;
    }
  }
  if (slot == nullptr) {
    // Invariant 2: a free slot, else the one least worth keeping.
    auto worth = [now_ms](const Slot& s) {
      return std::make_pair(now_ms < s.tarpit_until_ms ? 1 : 0, s.last_seen_ms);
    };
    slot = &set.slots[0];
    for (Slot& s : set.slots) {
      if (!s.used) {
        slot = &s;
        break;
      }
      if (worth(s) < worth(*slot)) slot = &s;
    }
    if (slot->used) {
      evictions_.fetch_add(1, std::memory_order_relaxed);
    } else {
      tracked_.fetch_add(1, std::memory_order_relaxed);
    }
    *slot = Slot{};
    slot->key = key;
    slot->used = true;
    slot->second = second;
  }

  if (second == slot->second + 1) {
    slot->previous = slot->current;
    slot->current = 0;
  } else if (second != slot->second) {
    slot->previous = 0;
    slot->current = 0;
  }
  slot->second = second;
  if (slot->current < std::numeric_limits<std::uint32_t>::max()) ++slot->current;
  slot->last_seen_ms = now_ms;
  const double elapsed = static_cast<double>(now_ms - second * 1000) / 1000.0;
  verdict.rate_per_s = slot->previous * (1.0 - elapsed) + slot->current;

  if (verdict.rate_per_s > options_.threshold_per_s) {
    if (now_ms >= slot->tarpit_until_ms) {
      verdict.episode_started = true;
      episodes_.fetch_add(1, std::memory_order_relaxed);
    }
    slot->tarpit_until_ms =
        now_ms + std::chrono::duration_cast<std::chrono::milliseconds>(kHold).count();
  }
  if (now_ms < slot->tarpit_until_ms) {
    verdict.delay = options_.delay;
    delayed_.fetch_add(1, std::memory_order_relaxed);
  }
  return verdict;
}

ScannerTarpit::Stats ScannerTarpit::stats(Clock::time_point now) const {
  Stats s;
  s.delayed = delayed_.load(std::memory_order_relaxed);
  s.episodes = episodes_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  s.tracked = tracked_.load(std::memory_order_relaxed);
  s.capacity = set_count_ * kWays;
  const std::int64_t now_ms = to_ms(now);
  for (std::size_t i = 0; i < set_count_; ++i) {
    std::lock_guard<std::mutex> lock(sets_[i].mu);
    for (const Slot& slot : sets_[i].slots) {
      if (slot.used && now_ms < slot.tarpit_until_ms) ++s.tarpitted;
    }
  }
  return s;
}

}  // namespace origin
