#include "exporter/hash_sizing.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace exporter {
namespace {

constexpr std::size_t kPointerSize = 8;
constexpr std::size_t kCacheline = 64;
constexpr std::size_t kMaxBucketSize = 65536 - kCacheline;
// ngx_hash_init starts at max_size - 1000 above this max_size (if max_size / n < 100).
constexpr std::size_t kShortcutThreshold = 10000;
constexpr std::size_t kShortcutSpan = 1000;

std::size_t align_up(std::size_t value, std::size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// Keys reduced to what the trials need.
struct KeyTable {
  std::vector<std::uint64_t> hashes;
  std::vector<std::uint16_t> sizes;
  std::size_t total_size = 0;
  std::size_t largest = 0;
};

KeyTable key_table(const std::vector<std::string>& keys) {
  KeyTable table;
  table.hashes.reserve(keys.size());
  table.sizes.reserve(keys.size());
  for (const std::string& key : keys) {
    const std::size_t size = nginx_hash_element_size(key.size());
    table.hashes.push_back(nginx_hash_key(key));
    table.sizes.push_back(static_cast<std::uint16_t>(std::min<std::size_t>(size, 0xFFFF)));
    table.total_size += size;
    table.largest = std::max(table.largest, size);
  }
  return table;
}

// One trial of ngx_hash_init: does every bucket stay within `usable` bytes?
bool fits(const KeyTable& table, std::size_t size, std::size_t usable,
          std::vector<std::uint32_t>& load) {
  load.assign(size, 0);
  for (std::size_t i = 0; i < table.hashes.size(); ++i) {
    const std::size_t bucket = table.hashes[i] % size;
    const std::uint32_t next = load[bucket] + table.sizes[i];
    if (next > usable) return false;
    load[bucket] = next;
  }
  return true;
}

std::size_t natural_start(std::size_t keys, std::size_t bucket_size) {
  const std::size_t start = keys / ((bucket_size - kPointerSize) / (2 * kPointerSize));
  return start == 0 ? 1 : start;
}

std::size_t trial_start(std::size_t keys, std::size_t bucket_size, std::size_t max_size) {
  if (max_size > kShortcutThreshold && keys != 0 && max_size / keys < 100) {
    return max_size - kShortcutSpan;
  }
  return natural_start(keys, bucket_size);
}

// Bucket pointers plus each used bucket (elements and the 8-byte end marker)
// rounded up to a cache line, as ngx_hash_init allocates them.
std::size_t memory_of(const KeyTable& table, std::size_t size) {
  std::vector<std::uint32_t> load(size, 0);
  for (std::size_t i = 0; i < table.hashes.size(); ++i)
    load[table.hashes[i] % size] += table.sizes[i];
  std::size_t bytes = size * kPointerSize;
  for (const std::uint32_t used : load) {
    if (used != 0) bytes += align_up(used + kPointerSize, kCacheline);
  }
  return bytes;
}

void check_bucket_size(std::size_t bucket_size) {
  if (bucket_size < 128 || bucket_size % kCacheline != 0 || bucket_size > kMaxBucketSize) {
    throw std::invalid_argument("map_hash_bucket_size must be a multiple of 64 in 128.." +
                                std::to_string(kMaxBucketSize) + ", not " +
                                std::to_string(bucket_size));
  }
}

}  // namespace

std::uint64_t nginx_hash_key(std::string_view key) {
  std::uint64_t hash = 0;
  for (const char c : key) {
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 'A' && byte <= 'Z') byte = static_cast<unsigned char>(byte | 0x20);
    hash = hash * 31 + byte;
  }
  return hash;
}

std::size_t nginx_hash_element_size(std::size_t key_length) {
  return kPointerSize + align_up(key_length + 2, kPointerSize);
}

HashInitOutcome simulate_hash_init(const std::vector<std::string>& keys, std::size_t bucket_size,
                                   std::size_t max_size) {
  HashInitOutcome outcome;
  const KeyTable table = key_table(keys);
  if (max_size == 0 || bucket_size > kMaxBucketSize ||
      (!keys.empty() && bucket_size < table.largest + kPointerSize)) {
    return outcome;
  }
  const std::size_t usable = bucket_size - kPointerSize;
  std::vector<std::uint32_t> load;
  for (std::size_t size = trial_start(keys.size(), bucket_size, max_size); size <= max_size;
       ++size) {
    ++outcome.trials;
    if (fits(table, size, usable, load)) {
      outcome.result = HashInitOutcome::Result::kOptimal;
      outcome.size = size;
      return outcome;
    }
  }
  // nginx then fills max_size buckets regardless of bucket_size, and fails only
  // when one bucket would pass 64 KiB.
  std::vector<std::uint32_t> used(max_size, kPointerSize);
  for (std::size_t i = 0; i < table.hashes.size(); ++i) {
    std::uint32_t& bucket = used[table.hashes[i] % max_size];
    bucket += table.sizes[i];
    if (bucket > kMaxBucketSize) return outcome;
  }
  outcome.result = HashInitOutcome::Result::kWarning;
  outcome.size = max_size;
  return outcome;
}

HashSizing size_map_hashes(const std::vector<std::vector<std::string>>& maps,
                           std::size_t bucket_size) {
  check_bucket_size(bucket_size);
  std::vector<KeyTable> tables;
  tables.reserve(maps.size());
  std::size_t largest_map = 0;
  for (const std::vector<std::string>& keys : maps) {
    tables.push_back(key_table(keys));
    if (!keys.empty() && bucket_size < tables.back().largest + kPointerSize) {
      throw std::invalid_argument("a map key is too long for map_hash_bucket_size " +
                                  std::to_string(bucket_size));
    }
    largest_map = std::max(largest_map, keys.size());
  }
  const std::size_t usable = bucket_size - kPointerSize;
  std::vector<std::uint32_t> load;
  HashSizing sizing;
  sizing.bucket_size = bucket_size;
  sizing.max_size = 2048;  // nginx's default

  if (largest_map > 100) {
    // Every map of more than 100 keys must fit the size S where the shortcut
    // starts; smaller maps start low and search (cheaply) below max_size.
    auto all_fit = [&](std::size_t size) {
      for (const KeyTable& table : tables) {
        if (table.hashes.size() > 100 && !fits(table, size, usable, load)) return false;
      }
      return true;
    };
    std::size_t lowest = kShortcutThreshold + 1 - kShortcutSpan;
    for (const KeyTable& table : tables) {
      if (table.hashes.size() > 100) {
        lowest = std::max(lowest, (table.total_size + usable - 1) / usable);
      }
    }
    const std::size_t highest = 100 * largest_map - 1 - kShortcutSpan;
    // Grow by a quarter until a size fits, then bisect between the last size
    // that did not and the one that did. Fitting is not monotonic in the size,
    // so the result is not always the smallest size that fits, but it is
    // always one that was tried and fit.
    std::size_t failed = 0;
    std::size_t size = lowest;
    while (!all_fit(size)) {
      failed = size;
      if (size >= highest) break;
      size = std::min(highest, size + size / 4 + 1);
    }
    if (failed == highest) {
      // Sparse luck (nearly full buckets): try every size, within a budget.
      constexpr std::size_t kBudget = 200'000'000;  // key placements
      failed = 0;
      for (size = lowest; size <= highest; ++size) {
        if ((size - lowest) * largest_map > kBudget) size = highest + 1;
        if (size > highest || all_fit(size)) break;
      }
      if (size > highest) {
        throw std::invalid_argument("no map hash size fits " + std::to_string(largest_map) +
                                    " keys with map_hash_bucket_size " +
                                    std::to_string(bucket_size) + "; use a larger bucket size");
      }
    }
    while (failed != 0 && failed + 1 < size) {
      const std::size_t middle = failed + (size - failed) / 2;
      if (all_fit(middle)) {
        size = middle;
      } else {
        failed = middle;
      }
    }
    sizing.max_size = size + kShortcutSpan;
  } else {
    // All maps are small: the shortcut would need max_size > 100 * n, so each
    // map searches from its natural start; max_size only has to reach the
    // largest size any of them settles on.
    for (const KeyTable& table : tables) {
      const std::size_t n = table.hashes.size();
      if (n == 0) continue;
      std::size_t size = natural_start(n, bucket_size);
      while (size <= kShortcutThreshold && !fits(table, size, usable, load)) ++size;
      if (size > kShortcutThreshold) {
        throw std::invalid_argument("no map hash size up to 10000 fits " + std::to_string(n) +
                                    " keys");
      }
      sizing.max_size = std::max(sizing.max_size, size);
    }
  }

  // What nginx will then do with each map.
  for (const KeyTable& table : tables) {
    const std::size_t n = table.hashes.size();
    if (n == 0) continue;
    const std::size_t start = trial_start(n, bucket_size, sizing.max_size);
    std::size_t size = start;
    while (size <= sizing.max_size && !fits(table, size, usable, load)) ++size;
    if (size > sizing.max_size) {
      throw std::invalid_argument("a map of " + std::to_string(n) +
                                  " keys does not fit map_hash_max_size " +
                                  std::to_string(sizing.max_size));
    }
    const std::size_t trials = size - start + 1;
    sizing.trials = std::max(sizing.trials, trials);
    sizing.placements += trials * n;
    sizing.hash_size = std::max(sizing.hash_size, size);
    sizing.memory_bytes += memory_of(table, size);
  }
  return sizing;
}

HashSizing size_map_hash(const std::vector<std::string>& keys, std::size_t bucket_size) {
  return size_map_hashes({keys}, bucket_size);
}

}  // namespace exporter
